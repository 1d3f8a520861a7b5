//! `sluice daemon --pipelines DIR [--listen ADDR]`

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use super::EXIT_OK;
use crate::daemon::supervisor::Backoff;
use crate::daemon::{api, Daemon, DaemonOptions};

/// What the `daemon` subcommand was given.
pub struct Args {
    pub pipelines: PathBuf,
    pub state: Option<PathBuf>,
    pub listen: SocketAddr,
    pub token: Option<String>,
    pub allowed_hosts: Vec<String>,
    pub poll: Duration,
    pub sql_limits: crate::inspect::QueryLimits,
}

/// The API is open on loopback; anywhere else it needs a token.
pub fn check_listen(listen: &SocketAddr, token: Option<&str>) -> crate::Result<()> {
    if listen.ip().is_loopback() || token.is_some_and(|t| !t.is_empty()) {
        return Ok(());
    }
    Err(crate::Error::Usage(format!(
        "--listen {listen} is reachable from other machines: set SLUICE_API_TOKEN to the bearer token \
         clients must send, or listen on 127.0.0.1"
    )))
}

pub async fn daemon(args: Args) -> anyhow::Result<u8> {
    check_listen(&args.listen, args.token.as_deref())?;
    if !args.pipelines.is_dir() {
        return Err(crate::Error::Usage(format!(
            "--pipelines {} is not a folder",
            args.pipelines.display()
        ))
        .into());
    }
    let state = args.state.unwrap_or_else(|| args.pipelines.join(".sluice"));
    // One daemon per state folder; each pipeline's own folder is locked again
    // by its run, so a `sluice run` beside the daemon is refused too.
    let _lock = crate::checkpoint::StateLock::acquire(&state)?;
    let daemon = Daemon::new(DaemonOptions {
        pipelines: args.pipelines.clone(),
        state,
        poll: args.poll,
        backoff: Backoff::default(),
    });
    // The first scan before the API answers: from its first request it lists
    // every pipeline of the folder.
    daemon.scan();
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let bound = listener.local_addr()?;
    // The line a supervisor (or a test) waits for.
    println!(
        "sluice daemon: serving {} on http://{bound}",
        args.pipelines.display()
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    super::run::on_signal(stop_tx);
    let access = api::Access {
        token: args.token,
        allowed_hosts: args.allowed_hosts,
        sql_limits: args.sql_limits,
    };
    let app = api::router(daemon.clone(), access);
    let server = tokio::spawn(crate::daemon::http::serve(listener, app, stop_rx.clone()));
    daemon.serve(stop_rx).await;
    server.await.context("the HTTP server")?;
    println!("sluice daemon: every pipeline checkpointed; exiting");
    Ok(EXIT_OK)
}
