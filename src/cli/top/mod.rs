//! `sluice top [--daemon URL]`: the console's overview in a terminal, for a
//! server without a browser. Every second it reads the daemon's API (the
//! pipeline list, each pipeline's detail and throughput history) and draws
//! every pipeline, then each one's source, stages and sinks with rows per
//! second, queue fill and busy share. `q` or Ctrl-C quits.

mod ansi;

use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Cell, Row, Table};
use ratatui::{Frame, Terminal};
use serde_json::Value;

use super::EXIT_OK;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The daemon's address.
    #[arg(long, env = "SLUICE_DAEMON", default_value = "http://127.0.0.1:8080")]
    pub daemon: String,
    /// The daemon's bearer token.
    #[arg(long, env = "SLUICE_API_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Seconds between refreshes.
    #[arg(long, default_value_t = 1.0)]
    pub interval: f64,
}

pub async fn top(args: Args) -> anyhow::Result<u8> {
    tokio::task::spawn_blocking(move || run(args)).await?
}

/// One refresh's worth of what the daemon says.
struct Snapshot {
    pipelines: Vec<Value>,
    details: Vec<(Value, Value)>,
    error: Option<String>,
    at: chrono::DateTime<chrono::Local>,
}

struct Client {
    agent: ureq::Agent,
    base: String,
    token: Option<String>,
}

impl Client {
    fn get(&self, path: &str) -> anyhow::Result<Value> {
        let mut req = self.agent.get(format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        let mut resp = req
            .call()
            .with_context(|| format!("reaching the daemon at {}", self.base))?;
        let status = resp.status();
        let body: Value = resp.body_mut().read_json().unwrap_or(Value::Null);
        if !status.is_success() {
            let why = body["error"].as_str().unwrap_or("no reason given");
            anyhow::bail!("the daemon answered {status}: {why}");
        }
        Ok(body)
    }

    fn snapshot(&self) -> Snapshot {
        let at = chrono::Local::now();
        let list = match self.get("/v1/pipelines") {
            Ok(l) => l,
            Err(e) => {
                return Snapshot {
                    pipelines: vec![],
                    details: vec![],
                    error: Some(format!("{e:#}")),
                    at,
                }
            }
        };
        let pipelines = list["pipelines"].as_array().cloned().unwrap_or_default();
        let details = pipelines
            .iter()
            .filter_map(|p| p["name"].as_str())
            .map(|name| {
                let enc = super::tail::encode(name);
                let detail = self.get(&format!("/v1/pipelines/{enc}")).unwrap_or(Value::Null);
                let history = self
                    .get(&format!("/v1/pipelines/{enc}/history"))
                    .unwrap_or(Value::Null);
                (detail, history)
            })
            .collect();
        Snapshot {
            pipelines,
            details,
            error: None,
            at,
        }
    }
}

fn run(args: Args) -> anyhow::Result<u8> {
    let client = Client {
        agent: ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(5)))
            .build()
            .into(),
        base: args.daemon.trim_end_matches('/').to_string(),
        token: args.token.filter(|t| !t.is_empty()),
    };
    // Fail before taking over the screen when the daemon cannot be reached.
    client.get("/v1/pipelines")?;
    let quit = Arc::new(AtomicBool::new(false));
    let keys = quit.clone();
    std::thread::spawn(move || {
        let mut byte = [0u8; 1];
        let mut stdin = std::io::stdin();
        while let Ok(1) = stdin.read(&mut byte) {
            if matches!(byte[0], b'q' | b'Q' | 3 | 4) {
                keys.store(true, Ordering::Relaxed);
                return;
            }
        }
    });
    let backend = ansi::AnsiBackend::enter(std::io::stdout().lock())?;
    let mut terminal = Terminal::new(backend)?;
    let interval = Duration::from_secs_f64(args.interval.clamp(0.1, 3600.0));
    while !quit.load(Ordering::Relaxed) {
        let snapshot = client.snapshot();
        terminal.draw(|f| draw(f, &snapshot))?;
        let next = Instant::now() + interval;
        while Instant::now() < next && !quit.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Ok(EXIT_OK)
}

fn num(v: &Value) -> String {
    match v.as_f64() {
        Some(f) if f >= 100.0 => format!("{f:.0}"),
        Some(f) => format!("{f:.1}"),
        None => "–".into(),
    }
}

fn pct(v: &Value) -> String {
    v.as_f64()
        .map(|f| format!("{:.0}%", f * 100.0))
        .unwrap_or_else(|| "–".into())
}

/// The fill as a ten-character bar.
fn bar(v: &Value) -> String {
    let f = v.as_f64().unwrap_or(0.0).clamp(0.0, 1.0);
    let full = (f * 10.0).round() as usize;
    format!("{}{}", "█".repeat(full), "·".repeat(10 - full))
}

fn state_style(state: &str) -> Style {
    let c = match state {
        "running" => Color::Green,
        "paused" | "starting" => Color::Yellow,
        "finished" => Color::Cyan,
        _ => Color::Red,
    };
    Style::default().fg(c).add_modifier(Modifier::BOLD)
}

fn age(iso: &Value) -> String {
    let Some(t) = iso
        .as_str()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
    else {
        return "never".into();
    };
    let s = (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
        .num_seconds()
        .max(0);
    if s < 120 {
        format!("{s} s ago")
    } else {
        format!("{} min ago", s / 60)
    }
}

fn draw(f: &mut Frame<'_>, s: &Snapshot) {
    let area = f.area();
    let [head, list, nodes] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(s.pipelines.len() as u16 + 3),
        Constraint::Min(0),
    ])
    .areas(area);
    let title = match &s.error {
        Some(e) => Line::styled(format!(" sluice top · {e}"), Style::default().fg(Color::Red)),
        None => Line::styled(
            format!(" sluice top · {} · q quits", s.at.format("%H:%M:%S")),
            Style::default().add_modifier(Modifier::BOLD),
        ),
    };
    f.render_widget(title, head);
    let header = Row::new([
        "pipeline",
        "state",
        "epoch",
        "checkpoint",
        "rows/s",
        "dead letters",
        "error",
    ])
    .style(Style::default().add_modifier(Modifier::BOLD));
    let rows = s.pipelines.iter().map(|p| {
        let state = p["state"].as_str().unwrap_or("?");
        let error = p["config_errors"]
            .as_str()
            .or(p["last_error"].as_str())
            .unwrap_or("");
        Row::new(vec![
            Cell::from(p["name"].as_str().unwrap_or("?").to_string()),
            Cell::from(state.to_string()).style(state_style(state)),
            Cell::from(p["epoch"].to_string()),
            Cell::from(age(&p["last_checkpoint_at"])),
            Cell::from(num(&p["rows_per_second"])),
            Cell::from(p["dead_letters"].to_string()),
            Cell::from(error.chars().take(60).collect::<String>()).style(Style::default().fg(Color::Red)),
        ])
    });
    let widths = [
        Constraint::Length(20),
        Constraint::Length(10),
        Constraint::Length(7),
        Constraint::Length(12),
        Constraint::Length(9),
        Constraint::Length(13),
        Constraint::Min(10),
    ];
    let table = Table::new(rows, widths)
        .header(header)
        .block(Block::default().borders(Borders::ALL).title(" pipelines "));
    f.render_widget(table, list);
    f.render_widget(node_table(s), nodes);
}

/// Every pipeline's nodes: rows/s, the fill of the queue into it, busy share.
fn node_table(s: &Snapshot) -> Table<'static> {
    let mut rows = Vec::new();
    for (detail, history) in &s.details {
        let Some(name) = detail["name"].as_str() else {
            continue;
        };
        let last = history["points"]
            .as_array()
            .and_then(|p| p.last())
            .cloned()
            .unwrap_or(Value::Null);
        let mut nodes: Vec<(String, String)> = vec![("source".into(), "source".into())];
        for st in detail["stages"].as_array().into_iter().flatten() {
            let n = st["name"].as_str().unwrap_or("?").to_string();
            nodes.push((n, st["kind"].as_str().unwrap_or("stage").to_string()));
        }
        for sk in detail["sinks"].as_array().into_iter().flatten() {
            let n = sk["name"].as_str().unwrap_or("?");
            if !n.contains(':') {
                nodes.push((
                    n.to_string(),
                    format!("sink {}", sk["kind"].as_str().unwrap_or("")),
                ));
            }
        }
        for (node, kind) in nodes {
            let fill = &last["fill"][&node];
            rows.push(Row::new(vec![
                Cell::from(name.to_string()),
                Cell::from(node.clone()).style(Style::default().add_modifier(Modifier::BOLD)),
                Cell::from(kind),
                Cell::from(num(&last["rows"][&node])),
                Cell::from(format!("{} {}", bar(fill), pct(fill))),
                Cell::from(pct(&last["busy"][&node])),
            ]));
        }
    }
    let header = Row::new(["pipeline", "node", "kind", "rows/s", "queue in", "busy"])
        .style(Style::default().add_modifier(Modifier::BOLD));
    let widths = [
        Constraint::Length(20),
        Constraint::Length(18),
        Constraint::Length(20),
        Constraint::Length(9),
        Constraint::Length(16),
        Constraint::Length(6),
    ];
    Table::new(rows, widths)
        .header(header)
        .block(Block::default().borders(Borders::ALL).title(" stages and sinks "))
}
