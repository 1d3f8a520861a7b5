//! `sluice tail --pipeline P POINT [--where SQL] [--limit N] [--format table|json]`
//!
//! Follows the rows passing a point of a running pipeline: through the run's
//! tail socket (`--pipeline FILE`, any process that runs it), or through a
//! daemon's Server-Sent Events route (`--daemon URL --pipeline NAME`).

use std::io::{BufRead, Write};
use std::path::Path;

use anyhow::Context;
use serde_json::{Map, Value};

use super::{EXIT_INVALID, EXIT_OK};
use crate::inspect::tail_socket::{self, Answer, Ask};
use crate::inspect::OutputFormat;

/// What to follow, and where.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pipeline: its file, or with --daemon its name.
    #[arg(long, short)]
    pub pipeline: String,
    /// The point: `source`, a stage's name (its output) or a sink's (its input).
    pub point: String,
    /// Only rows for which this SQL predicate holds, e.g. "chunk_index = 0".
    #[arg(long = "where", value_name = "SQL")]
    pub predicate: Option<String>,
    /// Stop after this many rows.
    #[arg(long)]
    pub limit: Option<u64>,
    /// Characters of each value shown; longer ones are cut.
    #[arg(long, default_value_t = crate::inspect::tail::DEFAULT_WIDTH)]
    pub width: usize,
    #[arg(long, value_enum, default_value = "table")]
    pub format: OutputFormat,
    /// Follow the pipeline's running backfill (`sluice backfill`) rather than
    /// its stream.
    #[arg(long, conflicts_with = "daemon")]
    pub backfill: bool,
    /// Follow through this daemon (e.g. http://127.0.0.1:8080).
    #[arg(long, env = "SLUICE_DAEMON")]
    pub daemon: Option<String>,
    /// The daemon's bearer token.
    #[arg(long, env = "SLUICE_API_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

pub async fn tail(args: Args, state: Option<&Path>) -> anyhow::Result<u8> {
    let ask = Ask {
        point: args.point.clone(),
        predicate: args.predicate.clone(),
        limit: args.limit,
        width: Some(args.width),
    };
    let mut printer = Printer::new(args.format);
    let outcome = match &args.daemon {
        Some(url) => {
            let (url, token) = (url.clone(), args.token.clone());
            let pipeline = args.pipeline.clone();
            tokio::task::spawn_blocking(move || over_http(&url, token.as_deref(), &pipeline, &ask, printer))
                .await??
        }
        None => {
            let plan = super::load(Path::new(&args.pipeline), state)?;
            let state_dir = match args.backfill {
                true => plan.state_dir.join(crate::plan::BACKFILL_DIR),
                false => plan.state_dir.clone(),
            };
            let socket = tail_socket::path(&state_dir);
            let mut outcome = Outcome::Ended;
            tail_socket::ask(&state_dir, &ask, |a| printer.show(a, &mut outcome))
                .await
                .map_err(|e| not_running(e, &socket))?;
            outcome
        }
    };
    Ok(match outcome {
        Outcome::Ended => EXIT_OK,
        Outcome::Refused => EXIT_INVALID,
    })
}

fn not_running(e: std::io::Error, socket: &Path) -> anyhow::Error {
    use std::io::ErrorKind::*;
    match e.kind() {
        NotFound | ConnectionRefused => anyhow::anyhow!(
            "the pipeline is not running (no process listens on {}); start it with `sluice run` or the daemon",
            socket.display()
        ),
        _ => anyhow::Error::new(e).context(format!("reading the tail from {}", socket.display())),
    }
}

/// How a tail ended.
enum Outcome {
    Ended,
    Refused,
}

/// Follow `GET /v1/pipelines/{name}/tail/{point}` and print its events.
fn over_http(
    url: &str,
    token: Option<&str>,
    pipeline: &str,
    ask: &Ask,
    mut printer: Printer,
) -> anyhow::Result<Outcome> {
    let mut request = ureq::get(format!(
        "{}/v1/pipelines/{}/tail/{}",
        url.trim_end_matches('/'),
        encode(pipeline),
        encode(&ask.point)
    ))
    .query("width", ask.width.unwrap_or_default().to_string());
    if let Some(p) = &ask.predicate {
        request = request.query("where", p);
    }
    if let Some(n) = ask.limit {
        request = request.query("limit", n.to_string());
    }
    if let Some(t) = token {
        request = request.header("Authorization", format!("Bearer {t}"));
    }
    let response = request
        .config()
        .http_status_as_error(false)
        .build()
        .call()
        .with_context(|| format!("reaching the daemon at {url}"))?;
    let status = response.status();
    let mut body = response.into_body();
    if !status.is_success() {
        let text = body.read_to_string().unwrap_or_default();
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or(text);
        eprintln!("error: {message}");
        return Ok(Outcome::Refused);
    }
    let mut outcome = Outcome::Ended;
    let mut event = String::new();
    for line in std::io::BufReader::new(body.as_reader()).lines() {
        let line = line.context("reading the daemon's events")?;
        if let Some(name) = line.strip_prefix("event: ") {
            event = name.to_string();
        } else if let Some(data) = line.strip_prefix("data: ") {
            let value: Value = serde_json::from_str(data).context("an event from the daemon")?;
            let answer = match event.as_str() {
                "rows" => serde_json::from_value(value).map(Answer::Rows),
                "dropped" => serde_json::from_value(value).map(Answer::Dropped),
                "restarted" => Ok(Answer::Restarted),
                _ => Ok(Answer::End(value.as_str().unwrap_or("").to_string())),
            }
            .context("an event from the daemon")?;
            if !printer.show(answer, &mut outcome) {
                break;
            }
        }
    }
    Ok(outcome)
}

/// A path segment, percent-encoded.
pub(super) fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// Prints answers as they come: rows to stdout, the rest to stderr.
struct Printer {
    format: OutputFormat,
}

impl Printer {
    fn new(format: OutputFormat) -> Self {
        Printer { format }
    }

    /// Show one answer; false once it was the last.
    fn show(&mut self, answer: Answer, outcome: &mut Outcome) -> bool {
        match answer {
            Answer::Rows(rows) => {
                let text = match self.format {
                    OutputFormat::Table => table(&rows),
                    _ => rows
                        .iter()
                        .map(|r| serde_json::to_string(r).unwrap_or_default())
                        .collect::<Vec<_>>()
                        .join("\n"),
                };
                let mut out = std::io::stdout().lock();
                // A closed pipe (`| head`) ends the tail.
                return writeln!(out, "{text}").and_then(|()| out.flush()).is_ok();
            }
            Answer::Dropped(n) => eprintln!("… {n} rows dropped: the tail could not keep up"),
            Answer::Restarted => eprintln!("… the pipeline started a new run"),
            Answer::End(why) => {
                eprintln!("tail ended: {why}");
                return false;
            }
            Answer::Refused(why) => {
                eprintln!("error: {why}");
                *outcome = Outcome::Refused;
                return false;
            }
        }
        true
    }
}

/// Rows as a table, the columns of the first row.
fn table(rows: &[Map<String, Value>]) -> String {
    use arrow::array::{ArrayRef, StringArray};
    let Some(first) = rows.first() else {
        return String::new();
    };
    let columns: Vec<(arrow::datatypes::Field, ArrayRef)> = first
        .keys()
        .map(|k| {
            let values: StringArray = rows
                .iter()
                .map(|r| match r.get(k) {
                    Some(Value::String(s)) => Some(s.clone()),
                    Some(Value::Null) | None => None,
                    Some(v) => Some(v.to_string()),
                })
                .collect();
            (
                arrow::datatypes::Field::new(k, arrow::datatypes::DataType::Utf8, true),
                std::sync::Arc::new(values) as ArrayRef,
            )
        })
        .collect();
    let (fields, arrays): (Vec<_>, Vec<_>) = columns.into_iter().unzip();
    let schema = std::sync::Arc::new(arrow::datatypes::Schema::new(fields));
    match arrow::record_batch::RecordBatch::try_new(schema, arrays) {
        Ok(b) => arrow::util::pretty::pretty_format_batches(&[b])
            .map(|t| t.to_string())
            .unwrap_or_default(),
        Err(_) => String::new(),
    }
}
