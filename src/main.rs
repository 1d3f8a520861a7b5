//! The `sluice` command line. Exit codes: 0 success (also after Ctrl-C, once the
//! final checkpoint is written); 1 the pipeline failed; 2 an invalid pipeline,
//! query or arguments; 3 a step refused for what it found (a migration's
//! evaluation gate).

use std::process::ExitCode;

use clap::Parser;
use sluice::cli::{Cli, EXIT_FAILED, EXIT_INVALID};

/// glibc gives each thread that allocates its own arena (up to 8 per core), and
/// the tokio workers and the blocking pool's parser threads all allocate: peak
/// RSS then creeps with the length of a run (benches/README.md, peak RSS). Two
/// arenas keep it flat at no measurable cost in throughput.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

fn main() -> ExitCode {
    limit_malloc_arenas();
    // A parser worker (see sluice::stages::parse::worker), not the CLI.
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() == Some(sluice::stages::parse::worker::WORKER_ARG) {
        let code = sluice::stages::parse::worker::main(&args.next().unwrap_or_default());
        return ExitCode::from(code as u8);
    }
    // SLUICE_PARSE_WORKERS=0 parses in-process (on threads with a deadline),
    // where starting processes is not allowed; and for measuring the workers' cost.
    let workers = std::env::var("SLUICE_PARSE_WORKERS").map_or(true, |v| v != "0");
    if let (true, Ok(exe)) = (workers, std::env::current_exe()) {
        sluice::stages::parse::worker::enable(exe);
    }
    let cli = Cli::parse();
    sluice::telemetry::init(cli.log_format, cli.verbose);
    sluice::stages::parse::install_panic_hook();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    match runtime.block_on(sluice::cli::execute(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let code = match e.downcast_ref::<sluice::Error>() {
                Some(err) if err.is_user_error() => EXIT_INVALID,
                _ => EXIT_FAILED,
            };
            eprintln!("error: {}", sluice::telemetry::secrets::scrub(&describe(&e)));
            ExitCode::from(code)
        }
    }
}

/// The error and its causes, each said once: several error types already include
/// their cause in their own message.
fn describe(e: &anyhow::Error) -> String {
    let mut message = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !message.contains(&text) {
            if !message.is_empty() {
                message.push_str(": ");
            }
            message.push_str(&text);
        }
    }
    message
}
