//! The tail socket: how `sluice tail --pipeline FILE` reaches whichever
//! process runs that pipeline (a `sluice run`, a backfill or the daemon).
//!
//! Every run listens on `state_dir/tail.sock` (mode 0600: only its owner may
//! read the data) while it holds the state folder's lock, so the socket always
//! belongs to the process that runs the pipeline. A client writes one JSON
//! line, [`Ask`]; the run answers with one JSON line per [`TailEvent`] and
//! closes after the last (`end`) or when the client leaves.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;

use super::tail::{follow, Follower, PointSchemas, TailEvent, TailOptions, DEFAULT_WIDTH};
use crate::plan::Plan;
use crate::telemetry::PipelineMetrics;

/// The socket's name in a state folder.
pub const SOCKET: &str = "tail.sock";

/// The longest path a Unix socket may have (`sun_path`, less its NUL).
const MAX_SOCKET_PATH: usize = 107;

/// What a client asks for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ask {
    pub point: String,
    #[serde(default, rename = "where")]
    pub predicate: Option<String>,
    #[serde(default)]
    pub limit: Option<u64>,
    #[serde(default)]
    pub width: Option<usize>,
}

impl Ask {
    pub fn options(&self) -> TailOptions {
        TailOptions {
            predicate: self.predicate.clone(),
            limit: self.limit,
            width: self.width.unwrap_or(DEFAULT_WIDTH),
        }
    }
}

/// One line of the answer: an event, or why the ask was refused.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    Rows(Vec<serde_json::Map<String, serde_json::Value>>),
    Dropped(u64),
    Restarted,
    End(String),
    Refused(String),
}

impl From<TailEvent> for Answer {
    fn from(e: TailEvent) -> Self {
        match e {
            TailEvent::Rows(r) => Answer::Rows(r),
            TailEvent::Dropped(n) => Answer::Dropped(n),
            TailEvent::Restarted => Answer::Restarted,
            TailEvent::End(why) => Answer::End(why),
        }
    }
}

/// Where the socket of the pipeline kept in `state_dir` is.
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(SOCKET)
}

/// Listens while it lives; the socket file goes with it.
pub struct Listening {
    task: tokio::task::JoinHandle<()>,
    path: PathBuf,
}

impl Drop for Listening {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Listen for tails of `plan`'s run. The caller holds the state lock, so a
/// socket file left there is a dead run's and is replaced. A run without a
/// socket still runs: the reason is logged.
pub fn listen(plan: &Plan, metrics: &Arc<PipelineMetrics>) -> Option<Listening> {
    let path = path(&plan.state_dir);
    if path.as_os_str().len() > MAX_SOCKET_PATH {
        tracing::warn!(
            "no live tail for this run: {} is longer than a Unix socket path may be",
            path.display()
        );
        return None;
    }
    let _ = std::fs::remove_file(&path);
    let listener = match bind(&path) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!("no live tail for this run: {}: {e}", path.display());
            return None;
        }
    };
    let schemas = Arc::new(PointSchemas::of(plan));
    let metrics = metrics.clone();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream, schemas.clone(), metrics.clone()));
        }
    });
    Some(Listening { task, path })
}

fn bind(path: &Path) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// The longest ask line read.
const MAX_ASK: u64 = 16 * 1024;

async fn serve(stream: UnixStream, schemas: Arc<PointSchemas>, metrics: Arc<PipelineMetrics>) {
    use tokio::io::AsyncReadExt;
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(read.take(MAX_ASK));
    if reader.read_line(&mut line).await.is_err() {
        return;
    }
    let ask: Ask = match serde_json::from_str(&line) {
        Ok(a) => a,
        Err(e) => return refuse(&mut write, format!("cannot read the request: {e}")).await,
    };
    let follower = match schemas
        .get(&ask.point)
        .and_then(|s| Follower::new(&s, &ask.options()))
    {
        Ok(f) => f,
        Err(e) => return refuse(&mut write, e.to_string()).await,
    };
    let (tx, mut rx) = mpsc::channel(16);
    let point = ask.point.clone();
    let following = tokio::spawn(follow(move || metrics.tails.point(&point).cloned(), follower, tx));
    // The client's half: when it closes, the follower stops.
    let mut rest = reader.into_inner().into_inner();
    let mut sink = [0u8; 64];
    loop {
        tokio::select! {
            event = rx.recv() => {
                let Some(event) = event else { break };
                if send(&mut write, &Answer::from(event)).await.is_err() {
                    break;
                }
            }
            read = rest.read(&mut sink) => {
                if matches!(read, Ok(0) | Err(_)) {
                    break;
                }
            }
        }
    }
    following.abort();
}

async fn refuse(write: &mut tokio::net::unix::OwnedWriteHalf, why: String) {
    let _ = send(write, &Answer::Refused(why)).await;
}

async fn send(write: &mut tokio::net::unix::OwnedWriteHalf, answer: &Answer) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(answer).map_err(std::io::Error::other)?;
    line.push(b'\n');
    write.write_all(&line).await
}

/// Connect to the run keeping `state_dir`, ask, and hand each answer to
/// `each` until it returns false or the run ends the answer.
pub async fn ask(state_dir: &Path, ask: &Ask, mut each: impl FnMut(Answer) -> bool) -> std::io::Result<()> {
    let stream = UnixStream::connect(path(state_dir)).await?;
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_vec(ask).map_err(std::io::Error::other)?;
    line.push(b'\n');
    write.write_all(&line).await?;
    let mut lines = BufReader::new(read).lines();
    while let Some(line) = lines.next_line().await? {
        let answer: Answer = serde_json::from_str(&line).map_err(std::io::Error::other)?;
        let last = matches!(answer, Answer::End(_) | Answer::Refused(_));
        if !each(answer) || last {
            break;
        }
    }
    Ok(())
}
