//! The daemon's HTTP API (axum).
//!
//! | route | what |
//! |---|---|
//! | `GET /v1/pipelines` | every pipeline: state, epoch, errors |
//! | `GET /v1/pipelines/{name}` | one, with per-stage rows, bytes, batches, queue fill, busy time, dead letters, last error |
//! | `POST /v1/pipelines/{name}/pause`, `/resume` | checkpoint and stop reading; start again |
//! | `POST /v1/sql` | `{"pipeline", "query", "format": "json" \| "arrow"}`, read-only like `sluice sql` |
//! | `GET /healthz`, `/readyz` | liveness; readiness (folder scanned, nothing still starting) |
//! | `GET /metrics` | Prometheus text |
//!
//! With a token (`SLUICE_API_TOKEN`) every route but `/healthz` and `/readyz`
//! wants `Authorization: Bearer <token>`. The CLI refuses to bind anything but
//! loopback without one.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::supervisor::{Command, PipelineHandle, State as RunState};
use super::Daemon;
use crate::inspect::{self, OutputFormat};

/// The Arrow IPC stream media type.
pub const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

#[derive(Clone)]
struct Api {
    daemon: Arc<Daemon>,
    token: Option<Arc<str>>,
}

/// The API over `daemon`; `token`, when set, is required on every route but the
/// health checks.
pub fn router(daemon: Arc<Daemon>, token: Option<String>) -> Router {
    let api = Api {
        daemon,
        token: token.filter(|t| !t.is_empty()).map(Arc::from),
    };
    Router::new()
        .route("/v1/pipelines", get(list))
        .route("/v1/pipelines/{name}", get(detail))
        .route("/v1/pipelines/{name}/pause", post(pause))
        .route("/v1/pipelines/{name}/resume", post(resume))
        .route("/v1/sql", post(sql))
        .route("/metrics", get(metrics))
        .route_layer(middleware::from_fn_with_state(api.clone(), authorize))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(api)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

async fn authorize(State(api): State<Api>, request: Request, next: Next) -> Response {
    if let Some(token) = &api.token {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !constant_time_eq(given.as_bytes(), token.as_bytes()) {
            let mut r = error(
                StatusCode::UNAUTHORIZED,
                "a bearer token is required (SLUICE_API_TOKEN)",
            );
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return r;
        }
    }
    next.run(request).await
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn ready(State(api): State<Api>) -> Response {
    match api.daemon.ready() {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {why}\n")).into_response(),
    }
}

fn not_found(name: &str) -> Response {
    error(StatusCode::NOT_FOUND, format!("no pipeline named `{name}`"))
}

async fn list(State(api): State<Api>) -> Json<Value> {
    let items: Vec<Value> = api
        .daemon
        .pipelines()
        .iter()
        .map(|p| {
            let s = p.status();
            let m = p.metrics();
            json!({
                "name": p.name,
                "file": s.file,
                "state": s.state,
                "epoch": m.last_committed_epoch.get(),
                "restarts": s.restarts,
                "reloads": s.reloads,
                "last_error": s.last_error,
                "config_errors": s.config_errors,
            })
        })
        .collect();
    Json(json!({ "pipelines": items }))
}

async fn detail(State(api): State<Api>, Path(name): Path<String>) -> Response {
    match api.daemon.pipeline(&name) {
        Some(p) => Json(describe(&p)).into_response(),
        None => not_found(&name),
    }
}

/// Everything the API says of one pipeline.
pub fn describe(p: &PipelineHandle) -> Value {
    let s = p.status();
    let m = p.metrics();
    let plan = p.plan();
    let bounds = plan.as_ref().map(|p| p.channels).unwrap_or_default();
    let fill = |channel: &str| -> Value {
        match m.channel(channel) {
            Some(c) => json!({
                "rows": c.rows.get(),
                "bytes": c.bytes.get(),
                "fill": c.fill(bounds.max_rows, bounds.max_bytes),
            }),
            None => Value::Null,
        }
    };
    let kinds: Vec<String> = plan
        .as_ref()
        .map(|p| p.stages.iter().map(|s| s.kind.clone()).collect())
        .unwrap_or_default();
    let stages: Vec<Value> = m
        .stages
        .iter()
        .enumerate()
        .map(|(i, st)| {
            let mut v = json!({
                "name": st.name,
                "kind": kinds.get(i),
                "rows_in": st.rows_in.get(),
                "rows_out": st.rows_out.get(),
                "bytes_out": st.bytes_out.get(),
                "batches": st.batches.get(),
                "queue": fill(&format!("stage:{}", st.name)),
                "busy_seconds": st.busy_us.get() as f64 / 1e6,
                "dead_letters": st.dead_letters.get(),
                "last_error": st.last_error(),
            });
            if kinds.get(i).is_some_and(|k| k == "embed") {
                let e = &st.embed;
                v["embed"] = json!({
                    "embedded": e.computed.get(),
                    "cache_hits": e.cache_hits.get(),
                    "truncated": e.truncated.get(),
                    "tokens": e.tokens.get(),
                    "norm_mean": e.drift.norm_mean(),
                    "centroid_distance": e.drift.centroid_distance(),
                });
            }
            v
        })
        .collect();
    let sinks: Vec<Value> = m
        .sinks
        .iter()
        .map(|(name, rows)| json!({"name": name, "rows": rows.get(), "queue": fill(&format!("sink:{name}"))}))
        .collect();
    let checkpoint_ms = m.last_checkpoint_ms.get();
    let last_checkpoint = (checkpoint_ms > 0)
        .then(|| chrono::DateTime::from_timestamp_millis(checkpoint_ms as i64))
        .flatten();
    json!({
        "name": p.name,
        "file": s.file,
        "state": s.state,
        "restarts": s.restarts,
        "reloads": s.reloads,
        "last_error": s.last_error,
        "config_errors": s.config_errors,
        "retry_at": s.retry_at,
        "epoch": {"committed": m.last_committed_epoch.get(), "open": m.open_epoch.get()},
        "last_checkpoint_at": last_checkpoint.map(|t| t.to_rfc3339()),
        "checkpoint_duration_ms": m.checkpoint_duration_us.get() as f64 / 1e3,
        "source": {
            "rows": m.source_rows.get(),
            "bytes": m.source_bytes.get(),
            "batches": m.source_batches.get(),
            "lag": m.source_lag.get(),
        },
        "stages": stages,
        "sinks": sinks,
        "dead_letters": m.dead_letters.get(),
    })
}

async fn pause(State(api): State<Api>, Path(name): Path<String>) -> Response {
    command(&api, &name, Command::Pause, "pausing")
}

async fn resume(State(api): State<Api>, Path(name): Path<String>) -> Response {
    command(&api, &name, Command::Resume, "resuming")
}

fn command(api: &Api, name: &str, c: Command, what: &str) -> Response {
    let Some(p) = api.daemon.pipeline(name) else {
        return not_found(name);
    };
    if p.send(c) {
        (
            StatusCode::ACCEPTED,
            Json(json!({"pipeline": name, "status": what})),
        )
            .into_response()
    } else {
        let state = p.status().state;
        let why = if state == RunState::Invalid {
            "its file has never been valid"
        } else {
            "it has stopped"
        };
        error(
            StatusCode::CONFLICT,
            format!("pipeline `{name}` cannot be {what}: {why}"),
        )
    }
}

#[derive(Deserialize)]
struct SqlRequest {
    pipeline: String,
    query: String,
    #[serde(default)]
    format: SqlFormat,
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum SqlFormat {
    #[default]
    Json,
    Arrow,
}

async fn sql(State(api): State<Api>, body: axum::body::Bytes) -> Response {
    let request: SqlRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("the body must be {{\"pipeline\": NAME, \"query\": SQL, \"format\": \"json\"|\"arrow\"}}: {e}"),
            )
        }
    };
    let Some(p) = api.daemon.pipeline(&request.pipeline) else {
        return not_found(&request.pipeline);
    };
    let Some(plan) = p.plan() else {
        return error(
            StatusCode::CONFLICT,
            format!("pipeline `{}` has no valid version to query", request.pipeline),
        );
    };
    let batches = match inspect::query(&plan, &request.query).await {
        Ok(b) => b,
        Err(e) if e.is_user_error() => return error(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    match request.format {
        SqlFormat::Json => match inspect::format(&batches, OutputFormat::Json) {
            Ok(text) => ([(header::CONTENT_TYPE, "application/json")], text).into_response(),
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        },
        SqlFormat::Arrow => match arrow_stream(&batches) {
            Ok(bytes) => ([(header::CONTENT_TYPE, ARROW_STREAM)], Body::from(bytes)).into_response(),
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        },
    }
}

fn arrow_stream(batches: &[arrow::record_batch::RecordBatch]) -> Result<Vec<u8>, arrow::error::ArrowError> {
    let mut out = Vec::new();
    if let Some(first) = batches.first() {
        let mut w = arrow::ipc::writer::StreamWriter::try_new(&mut out, &first.schema())?;
        for b in batches {
            w.write(b)?;
        }
        w.finish()?;
    }
    Ok(out)
}

async fn metrics(State(api): State<Api>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        super::prometheus::render(&api.daemon),
    )
        .into_response()
}
