//! The command line: one file per subcommand.

mod dlq;
mod run;
mod sql;
mod validate;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::inspect::OutputFormat;
use crate::telemetry::LogFormat;

/// Success.
pub const EXIT_OK: u8 = 0;
/// The pipeline failed while running.
pub const EXIT_FAILED: u8 = 1;
/// The pipeline file, the query or the arguments are invalid.
pub const EXIT_INVALID: u8 = 2;

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
    },
    /// The dead-letter store.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// Vector indexes of a pipeline's sinks.
    Index {
        #[command(subcommand)]
        command: IndexCommand,
    },
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
    match cli.command {
        Command::Run {
            pipeline,
            no_progress,
        } => run::run(&pipeline, !no_progress).await,
        Command::Validate { pipelines } => Ok(validate::validate(&pipelines)),
        Command::Sql {
            pipeline,
            query,
            format,
        } => sql::sql(&pipeline, &query, format).await,
        Command::Dlq { command } => match command {
            DlqCommand::List {
                pipeline,
                filters,
                format,
            } => dlq::list(&pipeline, filters, format).await,
            DlqCommand::Show { pipeline, id } => dlq::show(&pipeline, &id).await,
            DlqCommand::Replay { pipeline, filters } => dlq::replay(&pipeline, filters).await,
        },
        Command::Index {
            command: IndexCommand::Rebuild { pipeline, sink },
        } => rebuild_indexes(&pipeline, sink.as_deref()).await,
    }
}

/// `sluice index rebuild`: every matching sink that has a vector index.
async fn rebuild_indexes(pipeline: &std::path::Path, only: Option<&str>) -> anyhow::Result<u8> {
    let plan = crate::spec::load_file(pipeline).map_err(crate::Error::from)?;
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
