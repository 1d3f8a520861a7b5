//! `sluice top` in a pseudo-terminal (util-linux `script`), against a real
//! daemon: what it draws is replayed onto a screen grid and read back.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::{self, watched, Feeder};
use crate::util::Workspace;

const COLS: usize = 120;
const ROWS: usize = 36;

/// Replay cursor moves and text onto a grid; other escapes are skipped.
fn screen(bytes: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes);
    let chars: Vec<char> = text.chars().collect();
    let mut grid = vec![vec![' '; COLS]; ROWS];
    let (mut x, mut y) = (0usize, 0usize);
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '\x1b' && chars.get(i + 1) == Some(&'[') {
            let mut j = i + 2;
            while j < chars.len() && !chars[j].is_ascii_alphabetic() {
                j += 1;
            }
            if chars.get(j) == Some(&'H') {
                let args: String = chars[i + 2..j].iter().collect();
                let mut parts = args.split(';').map(|p| p.parse::<usize>().unwrap_or(1));
                y = parts.next().unwrap_or(1).saturating_sub(1);
                x = parts.next().unwrap_or(1).saturating_sub(1);
            }
            i = j + 1;
            continue;
        }
        if !chars[i].is_control() && y < ROWS && x < COLS {
            grid[y][x] = chars[i];
            x += 1;
        }
        i += 1;
    }
    grid.into_iter()
        .map(|r| r.into_iter().collect::<String>().trim_end().to_string())
        .collect()
}

#[test]
fn top_draws_the_pipelines_and_their_stages_in_a_terminal_and_quits_on_q() {
    let ws = Workspace::new();
    ws.write("pipelines/docs.yaml", watched("docs", 8));
    let _feed = Feeder::start(vec![ws.path("data/docs")], Duration::from_millis(50));
    let d = harness::start(ws.dir.path(), &[], &[("SLUICE_API_TOKEN", "top-token")]);
    d.wait("docs", 30, "wrote rows", |p| {
        p["sinks"][0]["rows"].as_u64().unwrap_or(0) > 0
    });

    let command = format!(
        "stty cols {COLS} rows {ROWS}; exec '{}' top --daemon {} --interval 0.3",
        env!("CARGO_BIN_EXE_sluice"),
        d.url
    );
    let mut child = Command::new("script")
        .args(["-qfec", &command, "/dev/null"])
        .env("SLUICE_API_TOKEN", "top-token")
        .env("TERM", "xterm-256color")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script (util-linux)");
    let drawn = Arc::new(Mutex::new(Vec::new()));
    let sink = drawn.clone();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    // The history needs two samples (a few seconds) before rates show.
    let deadline = Instant::now() + Duration::from_secs(30);
    let lines = loop {
        let lines = screen(&drawn.lock().unwrap());
        let source = lines
            .iter()
            .find(|l| l.contains("docs") && l.contains(" source "))
            .cloned()
            .unwrap_or_default();
        let rate: f64 = source
            .split_whitespace()
            .nth(3)
            .and_then(|r| r.parse().ok())
            .unwrap_or(0.0);
        if rate > 0.0 {
            break lines;
        }
        assert!(
            Instant::now() < deadline,
            "no source rate drawn; the screen:\n{}",
            lines.join("\n")
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let all = lines.join("\n");
    for want in ["sluice top", "pipeline", "rows/s", "running", "queue in", "busy"] {
        assert!(all.contains(want), "no `{want}` on the screen:\n{all}");
    }
    for node in ["source", "parse", "chunks", "out"] {
        assert!(
            lines
                .iter()
                .any(|l| l.contains("docs") && l.contains(&format!(" {node} "))),
            "no row for {node}:\n{all}"
        );
    }
    child.stdin.as_mut().unwrap().write_all(b"q").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "`q` did not quit; the screen:\n{all}");
        std::thread::sleep(Duration::from_millis(50));
    };
    reader.join().unwrap();
    assert!(status.success(), "{status}");
    // The screen was given back: the alternate screen left, the cursor shown.
    let raw = drawn.lock().unwrap();
    let tail = String::from_utf8_lossy(&raw[raw.len().saturating_sub(64)..]).to_string();
    assert!(
        tail.contains("\x1b[?1049l") && tail.contains("\x1b[?25h"),
        "{tail:?}"
    );

    // A daemon that cannot be reached is an error before the screen is taken.
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["top", "--daemon", "http://127.0.0.1:9"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("reaching the daemon"));
    assert!(out.stdout.is_empty());
}
