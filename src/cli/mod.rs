//! The command line: one file per subcommand.

mod backfill;
mod daemon;
mod dlq;
mod eval;
mod guard;
mod migrate;
mod run;
mod search;
mod sql;
mod tail;
#[cfg(unix)]
mod top;
mod validate;

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

use crate::inspect::OutputFormat;
use crate::telemetry::LogFormat;

/// Success.
pub const EXIT_OK: u8 = 0;
/// The pipeline failed while running.
pub const EXIT_FAILED: u8 = 1;
/// The pipeline file, the query or the arguments are invalid.
pub const EXIT_INVALID: u8 = 2;
/// A step was refused for what it found: a migration's evaluation gate does
/// not hold, or its shadow has not caught up.
pub const EXIT_REFUSED: u8 = 3;

#[derive(Debug, Parser)]
#[command(
    name = "sluice",
    version,
    about = "Streaming ingest for AI data: documents into chunks, vectors and features"
)]
pub struct Cli {
    /// Log line format (logs go to stderr).
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// More logging (-v, -vv). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Keep each pipeline's state (checkpoint, taps, dead letters) in
    /// STATE/<pipeline name> instead of the file's `state_dir`: the daemon's layout.
    #[arg(long, global = true, env = "SLUICE_STATE")]
    pub state: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a pipeline: to the end for a bounded source, until Ctrl-C otherwise.
    Run {
        /// The pipeline file.
        pipeline: PathBuf,
        /// Hide the progress bar even on a terminal.
        #[arg(long)]
        no_progress: bool,
    },
    /// Serve a folder of pipeline files: one supervisor each, reloaded when the
    /// file changes, with an HTTP API and Prometheus metrics. SIGTERM checkpoints
    /// every pipeline and exits 0.
    Daemon {
        /// The folder of pipeline files (*.yaml, *.yml).
        #[arg(long)]
        pipelines: PathBuf,
        /// Where the API listens. Anything but loopback requires SLUICE_API_TOKEN.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// The bearer token API clients must send.
        #[arg(long, env = "SLUICE_API_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// A host name clients reach the API by (repeatable, or comma-separated
        /// in SLUICE_ALLOWED_HOSTS). IP addresses and localhost always work; any
        /// other name is refused, so a web page cannot rebind its own name here.
        #[arg(
            long = "allow-host",
            value_name = "NAME",
            env = "SLUICE_ALLOWED_HOSTS",
            value_delimiter = ','
        )]
        allowed_hosts: Vec<String>,
        /// How often the folder is scanned for changes.
        #[arg(long, default_value = "1s", value_parser = sluice_connector_sdk::units::parse_positive_duration)]
        poll: std::time::Duration,
        #[command(flatten)]
        limits: SqlLimits,
    },
    /// Ingest a pipeline's history: its source bounded and narrowed, resumable,
    /// in a checkpoint namespace of its own (state_dir/backfill), so it can run
    /// beside a daemon streaming the same pipeline.
    Backfill {
        /// The pipeline file.
        pipeline: PathBuf,
        /// Only objects whose path inside the source folder starts with this.
        #[arg(long)]
        prefix: Option<String>,
        /// Only objects modified at or after this time (RFC 3339 or YYYY-MM-DD, UTC).
        #[arg(long, value_parser = parse_time)]
        since: Option<i64>,
        /// Only objects modified before this time (RFC 3339 or YYYY-MM-DD, UTC).
        #[arg(long, value_parser = parse_time)]
        until: Option<i64>,
        /// Kafka: read every partition from its earliest offset.
        #[arg(long)]
        from_beginning: bool,
        /// Objects read at once (the files source's read_concurrency).
        #[arg(long)]
        concurrency: Option<usize>,
        /// Print the documents and bytes, and estimate the tokens and the time; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// List the objects into a Kafka topic as object events instead:
        /// kafka://TOPIC or kafka://BROKERS/TOPIC.
        #[arg(long, value_name = "kafka://TOPIC")]
        emit_to: Option<String>,
        /// Brokers for --emit-to kafka://TOPIC.
        #[arg(long, env = "SLUICE_KAFKA_BROKERS")]
        brokers: Option<String>,
        /// A librdkafka producer property for --emit-to (KEY=VALUE, repeatable),
        /// e.g. security.protocol=SASL_SSL.
        #[arg(long = "kafka-option", value_name = "KEY=VALUE", value_parser = parse_key_value)]
        kafka_options: Vec<(String, String)>,
        /// Hide the progress bar even on a terminal.
        #[arg(long)]
        no_progress: bool,
    },
    /// Check pipeline files and print every error with file:line:column.
    Validate {
        #[arg(required = true)]
        pipelines: Vec<PathBuf>,
    },
    /// Query the stage taps, the sinks and the dead letters of a pipeline.
    Sql {
        /// The pipeline file whose tables to query.
        #[arg(long, short)]
        pipeline: PathBuf,
        /// One read-only query.
        query: String,
        #[arg(long, value_enum, default_value = "table")]
        format: OutputFormat,
        #[command(flatten)]
        limits: SqlLimits,
    },
    /// Where a chunk came from (its document and version, the settings and
    /// model that made it, the epoch) and which sinks hold it.
    Lineage {
        #[arg(long, short)]
        pipeline: PathBuf,
        /// The chunk's `chunk_id`.
        chunk_id: String,
        /// `table` (readable) or `json`.
        #[arg(long, value_enum, default_value = "table")]
        format: OutputFormat,
    },
    /// The rows of a vector sink that best answer a query: by vector, by
    /// full text (the sink's `full_text` index) or both fused, with their
    /// scores and lineage.
    Search {
        #[arg(long, short)]
        pipeline: PathBuf,
        /// The sink to search (by default the only searchable one).
        #[arg(long)]
        sink: Option<String>,
        /// How many rows.
        #[arg(short = 'k', long = "k", default_value_t = 10)]
        k: usize,
        /// vector, text or hybrid (default: hybrid where the sink has a
        /// full-text index, else vector).
        #[arg(long, value_enum)]
        mode: Option<crate::search::Mode>,
        /// A predicate on the sink's columns, applied by the store before it
        /// ranks, e.g. "content_type = 'text/markdown' AND token_count > 20".
        #[arg(long = "where", value_name = "PREDICATE")]
        filter: Option<String>,
        /// `table` (readable) or `json` (every column, with scores and lineage).
        #[arg(long, value_enum, default_value = "table")]
        format: OutputFormat,
        /// The query text.
        query: String,
    },
    /// How well a vector sink answers questions with known answers:
    /// recall@k, MRR@k, nDCG@k and latency per search mode, stored with the
    /// pipeline version and model (`--history` shows them over time).
    Eval {
        #[arg(long, short)]
        pipeline: PathBuf,
        /// JSON lines: {"question": "...", "relevant": ["doc_id or its path end",
        /// "chunk_id", {"contains": "text"}]}.
        #[arg(long, required_unless_present = "history")]
        questions: Option<PathBuf>,
        #[arg(long)]
        sink: Option<String>,
        /// Cutoffs.
        #[arg(short = 'k', long = "k", value_delimiter = ',', default_value = "1,5,10")]
        k: Vec<usize>,
        /// Modes to measure (default: every mode the sink can search by).
        #[arg(long, value_enum, value_delimiter = ',')]
        mode: Vec<crate::search::Mode>,
        /// A predicate on the sink's columns, as for `sluice search`.
        #[arg(long = "where", value_name = "PREDICATE")]
        filter: Option<String>,
        /// Show the runs recorded for this pipeline instead of running.
        #[arg(long, conflicts_with = "questions")]
        history: bool,
        #[arg(long, value_enum, default_value = "table")]
        format: OutputFormat,
    },
    /// Move a vector sink to another embedding model: a shadow table filled
    /// while the stream writes both, compared by eval, promoted behind a gate.
    Migrate {
        #[command(subcommand)]
        command: migrate::MigrateCommand,
    },
    /// The dead-letter store.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// Follow the rows passing a stage (or the source, or a sink's input) of a
    /// running pipeline, sampled: a tail that cannot keep up drops rows and says
    /// how many, and never slows the pipeline.
    Tail(tail::Args),
    /// A live overview of a daemon's pipelines in the terminal: state, epoch,
    /// rows per second, and each stage's and sink's rate, queue fill and busy share.
    #[cfg(unix)]
    Top(top::Args),
    /// What a pipeline's guard stages found (PII, secrets, prompt injection).
    Guard {
        #[command(subcommand)]
        command: GuardCommand,
    },
    /// Vector indexes of a pipeline's sinks.
    Index {
        #[command(subcommand)]
        command: IndexCommand,
    },
}

/// Bounds on one query (`sluice sql`, and `POST /v1/sql` in the daemon).
#[derive(Debug, Clone, clap::Args)]
pub struct SqlLimits {
    /// The most rows a result may hold.
    #[arg(long = "max-rows", value_name = "N", default_value_t = 100_000)]
    pub max_rows: usize,
    /// How long a query may run.
    #[arg(long = "query-timeout", value_name = "DURATION", default_value = "60s", value_parser = sluice_connector_sdk::units::parse_positive_duration)]
    pub timeout: std::time::Duration,
    /// The memory a query's operators may use, and the most a result may hold.
    #[arg(long = "query-memory", value_name = "SIZE", default_value = "512MiB", value_parser = sluice_connector_sdk::units::parse_size)]
    pub memory: u64,
}

impl SqlLimits {
    pub fn limits(&self) -> crate::Result<crate::inspect::QueryLimits> {
        if self.max_rows == 0 || self.memory == 0 {
            return Err(crate::Error::Usage(
                "--max-rows and --query-memory must be above 0".into(),
            ));
        }
        Ok(crate::inspect::QueryLimits {
            memory: self.memory,
            timeout: self.timeout,
            max_rows: self.max_rows,
        })
    }
}

#[derive(Debug, Subcommand)]
pub enum IndexCommand {
    /// Build (or replace) the vector index of each sink that has one, now.
    Rebuild {
        #[arg(long, short)]
        pipeline: PathBuf,
        /// Only this sink.
        #[arg(long)]
        sink: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum GuardCommand {
    /// Counts by kind and action, and the documents with the most findings.
    Report {
        #[arg(long, short)]
        pipeline: PathBuf,
        /// How many documents to list.
        #[arg(long, default_value_t = 10)]
        top: usize,
        #[arg(long, value_enum, default_value = "table")]
        format: OutputFormat,
    },
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List the open dead letters, oldest first.
    List {
        #[arg(long, short)]
        pipeline: PathBuf,
        #[command(flatten)]
        filters: dlq::Filters,
        #[arg(long, value_enum, default_value = "table")]
        format: OutputFormat,
    },
    /// Show one dead letter whole, by the id `list` prints.
    Show {
        #[arg(long, short)]
        pipeline: PathBuf,
        id: String,
    },
    /// Run the dead-lettered documents through the current pipeline again. Those
    /// that now succeed leave the list; those that fail again stay, with the new error.
    Replay {
        #[arg(long, short)]
        pipeline: PathBuf,
        #[command(flatten)]
        filters: dlq::Filters,
    },
}

/// Run the parsed command; returns the exit code.
pub async fn execute(cli: Cli) -> anyhow::Result<u8> {
    let state = cli.state.as_deref();
    match cli.command {
        Command::Run {
            pipeline,
            no_progress,
        } => run::run(&pipeline, state, !no_progress).await,
        Command::Validate { pipelines } => Ok(validate::validate(&pipelines)),
        Command::Backfill {
            pipeline,
            prefix,
            since,
            until,
            from_beginning,
            concurrency,
            dry_run,
            emit_to,
            brokers,
            kafka_options,
            no_progress,
        } => {
            let options = sluice_connector_sdk::BackfillOptions {
                prefix,
                since_ms: since,
                until_ms: until,
                from_beginning,
                concurrency,
            };
            let args = backfill::Args {
                options,
                dry_run,
                emit_to,
                brokers,
                kafka_options,
                show_progress: !no_progress,
            };
            backfill::backfill(&pipeline, state, args).await
        }
        Command::Daemon {
            pipelines,
            listen,
            token,
            allowed_hosts,
            poll,
            limits,
        } => {
            daemon::daemon(daemon::Args {
                pipelines,
                state: cli.state.clone(),
                listen,
                token,
                allowed_hosts,
                poll,
                sql_limits: limits.limits()?,
            })
            .await
        }
        Command::Sql {
            pipeline,
            query,
            format,
            limits,
        } => sql::sql(&pipeline, state, &query, format, limits.limits()?).await,
        Command::Lineage {
            pipeline,
            chunk_id,
            format,
        } => {
            let plan = load(&pipeline, state)?;
            let found = crate::inspect::lineage::find(&plan, &chunk_id).await?;
            match format {
                OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&found)?),
                _ => print!("{}", found.render()),
            }
            Ok(EXIT_OK)
        }
        Command::Search {
            pipeline,
            sink,
            k,
            mode,
            filter,
            format,
            query,
        } => {
            let request = crate::search::Request {
                query,
                sink,
                k,
                mode,
                filter,
            };
            search::search(&pipeline, state, &request, format).await
        }
        Command::Eval {
            pipeline,
            questions,
            sink,
            k,
            mode,
            filter,
            history,
            format,
        } => {
            let request = crate::eval::Request {
                sink,
                ks: k,
                modes: Some(mode),
                filter,
            };
            let what = match (history, questions) {
                (true, _) | (false, None) => eval::What::History,
                (false, Some(q)) => eval::What::Run(q, request),
            };
            eval::eval(&pipeline, state, what, format).await
        }
        Command::Migrate { command } => migrate::migrate(command, state).await,
        Command::Dlq { command } => match command {
            DlqCommand::List {
                pipeline,
                filters,
                format,
            } => dlq::list(&pipeline, state, filters, format).await,
            DlqCommand::Show { pipeline, id } => dlq::show(&pipeline, state, &id).await,
            DlqCommand::Replay { pipeline, filters } => dlq::replay(&pipeline, state, filters).await,
        },
        Command::Guard {
            command:
                GuardCommand::Report {
                    pipeline,
                    top,
                    format,
                },
        } => guard::report(&pipeline, state, top, format).await,
        Command::Tail(args) => tail::tail(args, state).await,
        #[cfg(unix)]
        Command::Top(args) => top::top(args).await,
        Command::Index {
            command: IndexCommand::Rebuild { pipeline, sink },
        } => rebuild_indexes(&pipeline, state, sink.as_deref()).await,
    }
}

/// `sluice index rebuild`: every matching sink that has a vector index.
async fn rebuild_indexes(pipeline: &Path, state: Option<&Path>, only: Option<&str>) -> anyhow::Result<u8> {
    let plan = load(pipeline, state)?;
    // A rebuild beside a run of the same pipeline would race its writes.
    let _lock = crate::checkpoint::StateLock::acquire(&plan.state_dir)?;
    let mut built = 0;
    for sink in plan.sinks.iter().filter(|s| only.is_none_or(|n| n == s.name)) {
        if let Some(job) = sink.config.rebuild_index(&plan.sink_context(sink)) {
            let what = job
                .await
                .map_err(|e| crate::Error::connector(format!("sink `{}`", sink.name), e))?;
            println!("{}: {what}", sink.name);
            built += 1;
        }
    }
    if built == 0 {
        return Err(crate::Error::Sql(format!(
            "no sink{} of {} has a vector index to rebuild (LanceDB and pgvector sinks do)",
            only.map(|n| format!(" named `{n}`")).unwrap_or_default(),
            pipeline.display()
        ))
        .into());
    }
    Ok(EXIT_OK)
}

/// Load and validate a pipeline file; with `--state`, its state lives in
/// `STATE/<name>`. A model migration under way adds its shadow sink.
pub fn load(pipeline: &Path, state: Option<&Path>) -> crate::Result<crate::plan::Plan> {
    let mut plan = load_without_migrations(pipeline, state)?;
    crate::migrate::plan::apply(&mut plan)?;
    Ok(plan)
}

/// [`load`] without a migration's shadow (for `sluice migrate abort`).
pub fn load_without_migrations(pipeline: &Path, state: Option<&Path>) -> crate::Result<crate::plan::Plan> {
    let plan = crate::spec::load_file(pipeline)?;
    Ok(match state {
        Some(root) => plan.with_state_root(root),
        None => plan,
    })
}

/// `2024-05-01` (midnight UTC) or an RFC 3339 time, as Unix milliseconds.
fn parse_time(s: &str) -> Result<i64, ArgError> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_millis())
        .ok_or_else(|| ArgError::NotTime(s.to_string()))
}

/// An argument clap could not convert (clap prints it with the flag).
#[derive(Debug, thiserror::Error)]
enum ArgError {
    #[error("`{0}` is not a date (YYYY-MM-DD) or an RFC 3339 time")]
    NotTime(String),
    #[error("`{0}` is not KEY=VALUE")]
    NotKeyValue(String),
}

/// `KEY=VALUE`
fn parse_key_value(s: &str) -> Result<(String, String), ArgError> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| ArgError::NotKeyValue(s.to_string()))
}
