//! Logging and the counters every task updates.

pub mod metrics;
pub mod secrets;
pub mod tail;

pub use metrics::{ChannelStats, PipelineMetrics};

use std::io::Write;
use std::sync::Mutex;

use indicatif::ProgressBar;

/// The process's peak resident memory so far (Linux `VmHWM`), in bytes.
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Hand freed heap pages back to the system. glibc keeps the pages of freed
/// blocks that sit below live ones, so without this the resident set creeps
/// up by fragmentation over a long run even when the live heap stays flat
/// (benches/README.md, peak RSS). Called after each checkpoint; it costs a walk
/// of the free lists, a millisecond or so at this heap size.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns unused pages; it is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The progress bar on screen, if any. Log lines are written around it, so they
/// never land in the middle of the bar.
static PROGRESS: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Show log lines above `bar` until [`clear_progress`].
pub fn set_progress(bar: ProgressBar) {
    *PROGRESS.lock().unwrap_or_else(|e| e.into_inner()) = Some(bar);
}

pub fn clear_progress() {
    PROGRESS.lock().unwrap_or_else(|e| e.into_inner()).take();
}

/// Stderr, suspending the progress bar for each log line.
struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // Each log line comes whole in one write: scrubbed of secrets here.
        let text = String::from_utf8_lossy(buf);
        let clean = secrets::scrub(&text);
        let bar = PROGRESS.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match bar {
            Some(bar) => bar.suspend(|| std::io::stderr().write_all(clean.as_bytes()))?,
            None => std::io::stderr().write_all(clean.as_bytes())?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

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
        .with_writer(|| LogWriter);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
