//! Parsers that hostile input can take over (PDF, HTML) run in worker
//! processes, so that nothing a document does can take sluice down.
//!
//! A worker is the `sluice` binary itself, started as `sluice __parse-worker`,
//! with its address space capped (`RLIMIT_AS`, the parse stage's
//! `max_memory`). It reads one request at a time on stdin and answers on stdout.
//! A document that makes the parser loop is stopped at the stage's `timeout` by
//! killing the worker; one that inflates to gigabytes (a Flate bomb) makes the
//! worker's allocation fail, which aborts it; a stack overflow does the same.
//! Each of these is a dead letter with its reason, the worker is replaced, and
//! no thread or memory is left behind in sluice.
//!
//! Idle workers are kept for the next document (at most [`MAX_IDLE`] per
//! memory cap), so a worker's start-up is paid once, not per document.
//!
//! Processes that are not the `sluice` binary (benches, unit tests) have no
//! worker executable: [`super::deadline`] runs the parser on a thread there.
//!
//! Wire format, both ways: one byte (the parser, or 0 = ok / 1 = error /
//! 2 = ready), a little-endian u64 length, then that many bytes (the document;
//! the text and title as JSON; or the error message). A new worker says ready
//! (an empty frame) before its first request, so that a document's `timeout`
//! counts its parse, never the worker's start-up.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::Duration;

use super::{ParseError, Parsed};

/// The argument that starts a worker instead of the CLI.
pub const WORKER_ARG: &str = "__parse-worker";
/// How many idle workers are kept per memory cap.
pub const MAX_IDLE: usize = 8;
/// How long a new worker may take to start. Its start-up is not part of any
/// document's `timeout`: on a loaded machine it can take longer than a parse.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// The frame a worker sends once it is ready for documents.
const READY: u8 = 2;

/// Which parser a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parser {
    /// PDF through `pdf-extract`.
    Pdf = 1,
    Html = 2,
    /// PDF through `lopdf` (`pdf_engine: lopdf`).
    PdfLopdf = 3,
}

impl Parser {
    pub fn name(self) -> &'static str {
        match self {
            Parser::Pdf => "PDF",
            Parser::Html => "HTML",
            Parser::PdfLopdf => "PDF (lopdf)",
        }
    }

    fn from_byte(b: u8) -> Option<Parser> {
        match b {
            1 => Some(Parser::Pdf),
            2 => Some(Parser::Html),
            3 => Some(Parser::PdfLopdf),
            _ => None,
        }
    }

    /// Run the parser here, in this process.
    pub fn parse(self, bytes: &[u8]) -> Result<Parsed, ParseError> {
        match self {
            Parser::Pdf => super::pdf::extract(bytes),
            Parser::Html => super::html::parse(bytes),
            Parser::PdfLopdf => super::pdf::extract_lopdf(bytes),
        }
    }
}

static EXECUTABLE: OnceLock<PathBuf> = OnceLock::new();

/// Parse in worker processes started from `exe` (the `sluice` binary). Called
/// once at start by the CLI; without it, parsers run on threads.
pub fn enable(exe: PathBuf) {
    let _ = EXECUTABLE.set(exe);
}

/// Whether parsers run in worker processes in this process.
pub fn enabled() -> bool {
    EXECUTABLE.get().is_some()
}

struct Worker {
    child: Child,
    stdin: ChildStdin,
    answers: mpsc::Receiver<std::io::Result<(u8, Vec<u8>)>>,
    /// The last of what the worker wrote on stderr (why it died).
    stderr: Arc<Mutex<String>>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Reaped, never left a zombie; the reader threads see EOF and end.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn idle() -> &'static Mutex<HashMap<u64, Vec<Worker>>> {
    static IDLE: OnceLock<Mutex<HashMap<u64, Vec<Worker>>>> = OnceLock::new();
    IDLE.get_or_init(Default::default)
}

fn read_frame(r: &mut impl Read) -> std::io::Result<(u8, Vec<u8>)> {
    let mut head = [0u8; 9];
    r.read_exact(&mut head)?;
    let len = u64::from_le_bytes(head[1..].try_into().expect("8 bytes"));
    let mut body = vec![0u8; usize::try_from(len).map_err(std::io::Error::other)?];
    r.read_exact(&mut body)?;
    Ok((head[0], body))
}

fn write_frame(w: &mut impl Write, tag: u8, body: &[u8]) -> std::io::Result<()> {
    let mut head = [0u8; 9];
    head[0] = tag;
    head[1..].copy_from_slice(&(body.len() as u64).to_le_bytes());
    w.write_all(&head)?;
    w.write_all(body)?;
    w.flush()
}

fn start_failed(what: impl Into<String>, source: Option<std::io::Error>) -> ParseError {
    ParseError::WorkerStart {
        what: what.into(),
        source,
    }
}

fn spawn(max_memory: u64) -> Result<Worker, ParseError> {
    let exe = EXECUTABLE
        .get()
        .ok_or_else(|| start_failed("no worker executable", None))?;
    let mut child = Command::new(exe)
        .arg(WORKER_ARG)
        .arg(max_memory.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| start_failed(format!("{}: {e}", exe.display()), Some(e)))?;
    let pipe = |what: &str| start_failed(format!("the worker has no {what}"), None);
    let stdin = child.stdin.take().ok_or_else(|| pipe("stdin"))?;
    let mut stdout = child.stdout.take().ok_or_else(|| pipe("stdout"))?;
    let mut err = child.stderr.take().ok_or_else(|| pipe("stderr"))?;
    let (tx, answers) = mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("sluice-parse-io".into())
        .spawn(move || loop {
            let frame = read_frame(&mut stdout);
            let done = frame.is_err();
            if tx.send(frame).is_err() || done {
                return;
            }
        })
        .map_err(|e| start_failed(format!("its reader: {e}"), Some(e)))?;
    let stderr = Arc::new(Mutex::new(String::new()));
    let tail = stderr.clone();
    std::thread::Builder::new()
        .name("sluice-parse-err".into())
        .spawn(move || {
            let mut buf = [0u8; 1024];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    return;
                }
                let mut t = tail.lock().unwrap_or_else(|p| p.into_inner());
                t.push_str(&String::from_utf8_lossy(&buf[..n]));
                let excess = t.len().saturating_sub(2048);
                if excess > 0 {
                    let cut = (excess..t.len())
                        .find(|i| t.is_char_boundary(*i))
                        .unwrap_or(t.len());
                    t.drain(..cut);
                }
            }
        })
        .map_err(|e| start_failed(format!("its reader: {e}"), Some(e)))?;
    let mut worker = Worker {
        child,
        stdin,
        answers,
        stderr,
    };
    match worker.answers.recv_timeout(START_TIMEOUT) {
        Ok(Ok((READY, _))) => Ok(worker),
        Err(mpsc::RecvTimeoutError::Timeout) => Err(ParseError::WorkerSlow(START_TIMEOUT)),
        _ => Err(death("a new", &mut worker, max_memory)),
    }
}

/// Why a worker that stopped answering is gone, in a user's words.
fn death(what: &str, w: &mut Worker, max_memory: u64) -> ParseError {
    let status = w.child.wait().ok();
    // Give the stderr reader a moment to collect the last words.
    std::thread::sleep(Duration::from_millis(20));
    let said = w.stderr.lock().map(|s| s.clone()).unwrap_or_default();
    let memory = sluice_connector_sdk::ByteSize(max_memory);
    let parser = what.to_string();
    // What the Rust runtime prints as it aborts is all a dead process leaves.
    if said.contains("memory allocation") || said.contains("capacity overflow") {
        ParseError::OutOfMemory { parser, memory }
    } else if said.contains("overflowed its stack") {
        ParseError::StackOverflow { parser }
    } else {
        let last = said.lines().last().unwrap_or("").trim().to_string();
        ParseError::Crashed {
            parser,
            status: status
                .map(|s| s.to_string())
                .unwrap_or_else(|| "no status".into()),
            said: (!last.is_empty()).then_some(last),
        }
    }
}

/// Parse `bytes` with `parser` in a worker process capped at `max_memory`,
/// stopped after `timeout`. Every failure is the document's, as a message.
pub fn parse(parser: Parser, bytes: &[u8], timeout: Duration, max_memory: u64) -> Result<Parsed, ParseError> {
    let what = parser.name();
    let pooled = idle()
        .lock()
        .ok()
        .and_then(|mut m| m.get_mut(&max_memory).and_then(Vec::pop));
    // A pooled worker that died meanwhile is not this document's fault: take a
    // fresh one then.
    let reused = pooled.and_then(|mut w| {
        write_frame(&mut w.stdin, parser as u8, bytes)
            .is_ok()
            .then_some(w)
    });
    let mut worker = match reused {
        Some(w) => w,
        None => {
            let mut fresh = spawn(max_memory)?;
            if write_frame(&mut fresh.stdin, parser as u8, bytes).is_err() {
                return Err(death(what, &mut fresh, max_memory));
            }
            fresh
        }
    };
    let answer = match worker.answers.recv_timeout(timeout) {
        Ok(Ok(answer)) => answer,
        Ok(Err(_)) | Err(mpsc::RecvTimeoutError::Disconnected) => {
            return Err(death(what, &mut worker, max_memory));
        }
        // Dropping the worker kills it: nothing of the parse is left running.
        Err(mpsc::RecvTimeoutError::Timeout) => {
            return Err(ParseError::TimedOut {
                parser: what,
                timeout,
            });
        }
    };
    if let Ok(mut m) = idle().lock() {
        let list = m.entry(max_memory).or_default();
        if list.len() < MAX_IDLE {
            list.push(worker);
        }
    }
    match answer {
        (0, body) => serde_json::from_slice::<(String, Option<String>)>(&body)
            .map(|(text, title)| Parsed { text, title })
            .map_err(|source| ParseError::Garbage { parser: what, source }),
        (_, body) => Err(ParseError::Worker(String::from_utf8_lossy(&body).into_owned())),
    }
}

/// The worker's main loop: `sluice __parse-worker MAX_MEMORY`. Returns the
/// process exit code.
pub fn main(max_memory: &str) -> i32 {
    if let Ok(bytes) = max_memory.parse::<u64>() {
        limit_memory(bytes);
    }
    let (mut input, mut output) = (std::io::stdin().lock(), std::io::stdout().lock());
    if write_frame(&mut output, READY, &[]).is_err() {
        return 0;
    }
    loop {
        let (tag, body) = match read_frame(&mut input) {
            Ok(frame) => frame,
            // The parent went away or closed the pipe: done.
            Err(_) => return 0,
        };
        let result = match Parser::from_byte(tag) {
            Some(p) => super::catch_parser_panic(|| p.parse(&body)),
            None => Err(ParseError::UnknownParser(tag)),
        };
        let written = match result {
            Ok(parsed) => {
                let json = serde_json::to_vec(&(parsed.text, parsed.title)).unwrap_or_default();
                write_frame(&mut output, 0, &json)
            }
            Err(e) => write_frame(&mut output, 1, e.to_string().as_bytes()),
        };
        if written.is_err() {
            return 0;
        }
    }
}

/// Cap this process's address space, so a bomb fails an allocation (and the
/// worker aborts) instead of the machine running out of memory.
fn limit_memory(bytes: u64) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let limit = libc::rlimit {
            rlim_cur: bytes as libc::rlim_t,
            rlim_max: bytes as libc::rlim_t,
        };
        // SAFETY: setrlimit reads the struct we pass; it only changes limits.
        unsafe {
            libc::setrlimit(libc::RLIMIT_AS, &limit);
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = bytes;
}
