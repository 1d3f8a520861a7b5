//! The API routes the console stands on (all behind the token, like the rest):
//!
//! | route | what |
//! |---|---|
//! | `GET /v1/pipelines/{name}/tail/{point}?where=&limit=&width=` | Server-Sent Events: `rows`, `dropped`, `restarted`, `end` |
//! | `GET /v1/pipelines/{name}/history` | the last minutes of rows/s, queue fill and busy share per node |
//! | `GET /v1/pipelines/{name}/tables` | the tables `POST /v1/sql` sees, with their columns |
//! | `POST /v1/pipelines/{name}/dead_letters/replay` | `{"ids": [...]}` or `{"all": true}`: read those documents again |
//! | `GET /v1/pipelines/{name}/eval` | the pipeline's evaluation history |

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::api::{error, not_found, require_json, Api};
use super::supervisor::{Command, PipelineHandle};
use crate::inspect::tail::{follow, schema_of, Follower, TailEvent, TailOptions, DEFAULT_WIDTH};
use crate::plan::Plan;

pub(super) fn routes() -> Router<Api> {
    Router::new()
        .route("/v1/pipelines/{name}/tail/{point}", get(tail))
        .route("/v1/pipelines/{name}/history", get(history))
        .route("/v1/pipelines/{name}/tables", get(tables))
        .route("/v1/pipelines/{name}/dead_letters/replay", post(replay))
        .route("/v1/pipelines/{name}/eval", get(eval))
}

/// The pipeline and the version it runs, or the answer saying why not.
#[allow(clippy::result_large_err)]
fn planned(api: &Api, name: &str) -> Result<(Arc<PipelineHandle>, Arc<Plan>), Response> {
    let Some(p) = api.daemon.pipeline(name) else {
        return Err(not_found(name));
    };
    match p.plan() {
        Some(plan) => Ok((p, plan)),
        None => Err(error(
            StatusCode::CONFLICT,
            format!("pipeline `{name}` has no valid version"),
        )),
    }
}

#[derive(Deserialize)]
struct TailQuery {
    #[serde(rename = "where")]
    predicate: Option<String>,
    limit: Option<u64>,
    width: Option<usize>,
}

/// How often an idle stream says it is alive (and learns its client left).
const PING: Duration = Duration::from_secs(5);

async fn tail(
    State(api): State<Api>,
    Path((name, point)): Path<(String, String)>,
    Query(q): Query<TailQuery>,
) -> Response {
    let (p, plan) = match planned(&api, &name) {
        Ok(found) => found,
        Err(r) => return r,
    };
    let schema = match schema_of(&plan, &point) {
        Ok(s) => s,
        Err(e) => return error(StatusCode::NOT_FOUND, e.to_string()),
    };
    let options = TailOptions {
        predicate: q.predicate,
        limit: q.limit,
        width: q.width.unwrap_or(DEFAULT_WIDTH).min(10_000),
    };
    let follower = match Follower::new(&schema, &options) {
        Ok(f) => f,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(follow(
        move || p.metrics().tails.point(&point).cloned(),
        follower,
        tx,
    ));
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING, PING);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Ends when the follower does; dropped (and the follower with it) when
    // the client goes away.
    let events = futures::stream::unfold((rx, ping), |(mut rx, mut ping)| async move {
        let chunk = tokio::select! {
            event = rx.recv() => sse(&event?),
            _ = ping.tick() => Bytes::from_static(b": ping\n\n"),
        };
        Some((Ok::<_, Infallible>(chunk), (rx, ping)))
    });
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(events),
    )
        .into_response()
}

/// One event in the Server-Sent Events format.
fn sse(event: &TailEvent) -> Bytes {
    let data = match event {
        TailEvent::Rows(rows) => json!(rows),
        TailEvent::Dropped(n) => json!(n),
        TailEvent::Restarted => Value::Null,
        TailEvent::End(why) => json!(why),
    };
    Bytes::from(format!("event: {}\ndata: {data}\n\n", event.name()))
}

async fn history(State(api): State<Api>, Path(name): Path<String>) -> Response {
    let Some(p) = api.daemon.pipeline(&name) else {
        return not_found(&name);
    };
    let points = p.history().points();
    Json(json!({
        "step_seconds": super::history::STEP.as_secs(),
        "points": points,
    }))
    .into_response()
}

async fn tables(State(api): State<Api>, Path(name): Path<String>) -> Response {
    let plan = match planned(&api, &name) {
        Ok((_, plan)) => plan,
        Err(r) => return r,
    };
    let listed = tokio::time::timeout(api.sql_limits.timeout, list_tables(&plan)).await;
    match listed {
        Ok(Ok(tables)) => Json(json!({ "tables": tables })).into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(_) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("listing the tables took over {:?}", api.sql_limits.timeout),
        ),
    }
}

/// Every table `sluice sql` registers for `plan`, with its columns.
async fn list_tables(plan: &Plan) -> crate::Result<Vec<Value>> {
    let ctx = crate::inspect::session(plan).await?;
    let mut names = ctx
        .catalog("datafusion")
        .and_then(|c| c.schema("public"))
        .map(|s| s.table_names())
        .unwrap_or_default();
    names.sort();
    let mut tables = Vec::new();
    for name in names {
        let Ok(provider) = ctx.table_provider(name.as_str()).await else {
            continue;
        };
        let columns: Vec<Value> = provider
            .schema()
            .fields()
            .iter()
            .map(|f| json!({"name": f.name(), "type": f.data_type().to_string()}))
            .collect();
        tables.push(json!({"name": name, "columns": columns}));
    }
    Ok(tables)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayRequest {
    #[serde(default)]
    ids: Vec<String>,
    #[serde(default)]
    all: bool,
}

/// The most letters one replay names.
const MAX_REPLAY_IDS: usize = 10_000;

async fn replay(
    State(api): State<Api>,
    Path(name): Path<String>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refused) = require_json(&headers) {
        return refused;
    }
    const SHAPE: &str = "the body must be {\"ids\": [letter ids]} or {\"all\": true}";
    let request: ReplayRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("{SHAPE}: {e}")),
    };
    if request.all != request.ids.is_empty() || request.ids.len() > MAX_REPLAY_IDS {
        return error(
            StatusCode::BAD_REQUEST,
            format!("{SHAPE}, with at most {MAX_REPLAY_IDS} ids"),
        );
    }
    let (p, plan) = match planned(&api, &name) {
        Ok(found) => found,
        Err(r) => return r,
    };
    let docs = match letter_documents(&plan, &request).await {
        Ok(d) if d.is_empty() => return error(StatusCode::NOT_FOUND, "no open dead letter matches"),
        Ok(d) => d,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    if !p.send(Command::Replay(docs, done_tx)) {
        return error(
            StatusCode::CONFLICT,
            format!("pipeline `{name}` is not supervised (stopped, or never valid)"),
        );
    }
    match tokio::time::timeout(Duration::from_secs(120), done_rx).await {
        Ok(Ok(Ok(n))) => (
            StatusCode::ACCEPTED,
            Json(json!({"pipeline": name, "replaying": n})),
        )
            .into_response(),
        Ok(Ok(Err(e))) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
        _ => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the pipeline did not take up the replay in time; see its status",
        ),
    }
}

/// The documents of the open letters a replay names.
async fn letter_documents(plan: &Plan, request: &ReplayRequest) -> crate::Result<Vec<String>> {
    let filter = if request.all {
        String::new()
    } else {
        let ids: Vec<String> = request
            .ids
            .iter()
            .map(|id| format!("'{}'", id.replace('\'', "''")))
            .collect();
        format!("WHERE id IN ({})", ids.join(", "))
    };
    crate::dlq::letter_documents(plan, &filter).await
}

async fn eval(State(api): State<Api>, Path(name): Path<String>) -> Response {
    let plan = match planned(&api, &name) {
        Ok((_, plan)) => plan,
        Err(r) => return r,
    };
    match crate::eval::history::read(&plan) {
        Ok(runs) => Json(json!({ "runs": runs })).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
