//! Logging and the counters every task updates.

pub mod metrics;

pub use metrics::{ChannelStats, PipelineMetrics};

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Install the global tracing subscriber. `verbosity` counts `-v` flags; `RUST_LOG`
/// overrides it.
pub fn init(format: LogFormat, verbosity: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbosity {
        0 => "warn,sluice=info",
        1 => "info,sluice=debug",
        _ => "debug,sluice=trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
