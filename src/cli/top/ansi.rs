//! A ratatui backend that writes ANSI escape sequences to stdout, with the
//! terminal put in raw mode through termios. (The crossterm backend would pull
//! in features of mio and rustix that rebuild tokio and everything above it:
//! about an hour on a fresh two-core machine, for a screen of text.)

use std::io::{self, Write};

use ratatui::backend::{Backend, ClearType, WindowSize};
use ratatui::buffer::Cell;
use ratatui::layout::{Position, Size};
use ratatui::style::{Color, Modifier};

pub struct AnsiBackend<W: Write> {
    out: W,
    /// termios to restore, when raw mode was entered.
    saved: Option<libc::termios>,
}

impl<W: Write> AnsiBackend<W> {
    /// Raw mode (when stdin is a terminal), the alternate screen, no cursor.
    pub fn enter(mut out: W) -> io::Result<Self> {
        let saved = raw_mode();
        out.write_all(b"\x1b[?1049h\x1b[?25l\x1b[2J")?;
        out.flush()?;
        Ok(AnsiBackend { out, saved })
    }
}

impl<W: Write> Drop for AnsiBackend<W> {
    fn drop(&mut self) {
        let _ = self.out.write_all(b"\x1b[0m\x1b[?25h\x1b[?1049l");
        let _ = self.out.flush();
        if let Some(t) = self.saved.take() {
            // SAFETY: restoring the attributes read from the same descriptor.
            unsafe {
                libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &t);
            }
        }
    }
}

fn raw_mode() -> Option<libc::termios> {
    // SAFETY: plain termios calls on stdin with a zeroed struct they fill.
    unsafe {
        if libc::isatty(libc::STDIN_FILENO) != 1 {
            return None;
        }
        let mut t: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(libc::STDIN_FILENO, &mut t) != 0 {
            return None;
        }
        let saved = t;
        libc::cfmakeraw(&mut t);
        // Keep output processing, so a stray newline still returns the carriage.
        t.c_oflag |= libc::OPOST;
        (libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &t) == 0).then_some(saved)
    }
}

/// The terminal's size, from stdout (or stdin); 100×30 when neither is a terminal.
fn terminal_size() -> Size {
    for fd in [libc::STDOUT_FILENO, libc::STDIN_FILENO] {
        // SAFETY: TIOCGWINSZ fills the zeroed winsize it is given.
        unsafe {
            let mut ws: libc::winsize = std::mem::zeroed();
            if libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) == 0 && ws.ws_col > 0 && ws.ws_row > 0 {
                return Size::new(ws.ws_col, ws.ws_row);
            }
        }
    }
    Size::new(100, 30)
}

fn colour(c: Color, fg: bool) -> String {
    let base = if fg { 30 } else { 40 };
    match c {
        Color::Reset => format!("{}", base + 9),
        Color::Black => format!("{base}"),
        Color::Red => format!("{}", base + 1),
        Color::Green => format!("{}", base + 2),
        Color::Yellow => format!("{}", base + 3),
        Color::Blue => format!("{}", base + 4),
        Color::Magenta => format!("{}", base + 5),
        Color::Cyan => format!("{}", base + 6),
        Color::Gray | Color::White => format!("{}", base + 7),
        Color::DarkGray => format!("{}", base + 60),
        Color::LightRed => format!("{}", base + 61),
        Color::LightGreen => format!("{}", base + 62),
        Color::LightYellow => format!("{}", base + 63),
        Color::LightBlue => format!("{}", base + 64),
        Color::LightMagenta => format!("{}", base + 65),
        Color::LightCyan => format!("{}", base + 66),
        Color::Indexed(i) => format!("{};5;{i}", base + 8),
        Color::Rgb(r, g, b) => format!("{};2;{r};{g};{b}", base + 8),
    }
}

fn sgr(cell: &Cell) -> String {
    let mut codes = vec!["0".to_string()];
    let m = cell.modifier;
    for (flag, code) in [
        (Modifier::BOLD, "1"),
        (Modifier::DIM, "2"),
        (Modifier::ITALIC, "3"),
        (Modifier::UNDERLINED, "4"),
        (Modifier::REVERSED, "7"),
    ] {
        if m.contains(flag) {
            codes.push(code.into());
        }
    }
    codes.push(colour(cell.fg, true));
    codes.push(colour(cell.bg, false));
    format!("\x1b[{}m", codes.join(";"))
}

impl<W: Write> Backend for AnsiBackend<W> {
    type Error = io::Error;

    fn draw<'a, I>(&mut self, content: I) -> io::Result<()>
    where
        I: Iterator<Item = (u16, u16, &'a Cell)>,
    {
        let mut at: Option<(u16, u16)> = None;
        let mut style = String::new();
        for (x, y, cell) in content {
            if at != Some((x, y)) {
                write!(self.out, "\x1b[{};{}H", y + 1, x + 1)?;
            }
            let s = sgr(cell);
            if s != style {
                self.out.write_all(s.as_bytes())?;
                style = s;
            }
            self.out.write_all(cell.symbol().as_bytes())?;
            let w = unicode_width(cell.symbol());
            at = Some((x + w, y));
        }
        self.out.write_all(b"\x1b[0m")?;
        Ok(())
    }

    fn hide_cursor(&mut self) -> io::Result<()> {
        self.out.write_all(b"\x1b[?25l")
    }

    fn show_cursor(&mut self) -> io::Result<()> {
        self.out.write_all(b"\x1b[?25h")
    }

    fn get_cursor_position(&mut self) -> io::Result<Position> {
        Ok(Position::ORIGIN)
    }

    fn set_cursor_position<P: Into<Position>>(&mut self, position: P) -> io::Result<()> {
        let p = position.into();
        write!(self.out, "\x1b[{};{}H", p.y + 1, p.x + 1)
    }

    fn clear(&mut self) -> io::Result<()> {
        self.out.write_all(b"\x1b[2J")
    }

    fn clear_region(&mut self, clear_type: ClearType) -> io::Result<()> {
        let code: &[u8] = match clear_type {
            ClearType::All => b"\x1b[2J",
            ClearType::AfterCursor => b"\x1b[0J",
            ClearType::BeforeCursor => b"\x1b[1J",
            ClearType::CurrentLine => b"\x1b[2K",
            ClearType::UntilNewLine => b"\x1b[0K",
        };
        self.out.write_all(code)
    }

    fn size(&self) -> io::Result<Size> {
        Ok(terminal_size())
    }

    fn window_size(&mut self) -> io::Result<WindowSize> {
        Ok(WindowSize {
            columns_rows: terminal_size(),
            pixels: Size::new(0, 0),
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Columns a cell's symbol takes (wide characters take two).
fn unicode_width(s: &str) -> u16 {
    s.chars()
        .map(|c| if (c as u32) >= 0x1100 && is_wide(c) { 2 } else { 1 })
        .sum::<u16>()
        .max(1)
}

fn is_wide(c: char) -> bool {
    matches!(c as u32, 0x1100..=0x115F | 0x2E80..=0xA4CF | 0xAC00..=0xD7A3 | 0xF900..=0xFAFF | 0xFE30..=0xFE4F | 0xFF00..=0xFF60 | 0xFFE0..=0xFFE6 | 0x1F300..=0x1FAFF | 0x20000..=0x3FFFD)
}
