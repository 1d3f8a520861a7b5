//! The daemon's HTTP API (axum).
//!
//! | route | what |
//! |---|---|
//! | `GET /v1/pipelines` | every pipeline: state, epoch, errors |
//! | `GET /v1/pipelines/{name}` | one, with per-stage rows, bytes, batches, queue fill, busy time, dead letters, last error |
//! | `POST /v1/pipelines/{name}/pause`, `/resume` | checkpoint and stop reading; start again |
//! | `POST /v1/search` | `sluice search` over a pipeline's vector sink (JSON) |
//! | `POST /v1/sql` | `{"pipeline", "query", "format": "json" \| "arrow"}`, read-only like `sluice sql` |
//! | `GET /healthz`, `/readyz` | liveness; readiness (folder scanned, nothing still starting) |
//! | `GET /metrics` | Prometheus text |
//! | `GET /v1/pipelines/{name}/tail/{point}`, `/history`, `/tables`, `/eval`; `POST .../dead_letters/replay` | the console's routes ([`super::live`]) |
//! | `GET /`, `/console.js`, `/console.css` | the console ([`super::console`]), open: it holds no data |
//!
//! With a token (`SLUICE_API_TOKEN`) every route but `/healthz` and `/readyz`
//! wants `Authorization: Bearer <token>`. The CLI refuses to bind anything but
//! loopback without one.
//!
//! What a browser page on another site could forge is refused on every route,
//! token or not (see [`guard`]): a `Host` that is a DNS name other than
//! `localhost` and the configured `--allow-host` names (DNS rebinding), a
//! cross-origin `POST` (by `Origin` or `Sec-Fetch-Site`), and a JSON body sent
//! as anything but `application/json` (a form or `text/plain` POST needs no
//! CORS preflight). The open `/readyz` names no pipeline.

use std::sync::Arc;

use axum::body::{Body, Bytes};
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
use crate::search;

/// The Arrow IPC stream media type.
pub const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

#[derive(Clone)]
pub(super) struct Api {
    pub(super) daemon: Arc<Daemon>,
    token: Option<Arc<str>>,
    /// DNS names the API answers to besides `localhost` (lower case).
    allowed_hosts: Arc<[String]>,
    pub(super) sql_limits: inspect::QueryLimits,
}

/// Who may call the API.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// Required on every route but the health checks, when set.
    pub token: Option<String>,
    /// Host names (beyond `localhost` and IP addresses) clients may use to
    /// reach the daemon, e.g. `sluice.internal`.
    pub allowed_hosts: Vec<String>,
    /// Bounds on each `POST /v1/sql` query.
    pub sql_limits: inspect::QueryLimits,
}

/// The API over `daemon`.
pub fn router(daemon: Arc<Daemon>, access: Access) -> Router {
    let api = Api {
        daemon,
        token: access.token.filter(|t| !t.is_empty()).map(Arc::from),
        allowed_hosts: access
            .allowed_hosts
            .iter()
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect(),
        sql_limits: access.sql_limits,
    };
    Router::new()
        .route("/v1/pipelines", get(list))
        .route("/v1/pipelines/{name}", get(detail))
        .route("/v1/pipelines/{name}/pause", post(pause))
        .route("/v1/pipelines/{name}/resume", post(resume))
        .route("/v1/sql", post(sql))
        .route("/v1/search", post(search))
        .route("/metrics", get(metrics))
        .merge(super::live::routes())
        .route_layer(middleware::from_fn_with_state(api.clone(), authorize))
        .merge(super::console::routes())
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .layer(middleware::from_fn_with_state(api.clone(), guard))
        .with_state(api)
}

/// Refuse what a page on another site could make a browser send (module docs).
async fn guard(State(api): State<Api>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let host = text(header::HOST);
    if let Some(host) = host {
        if !host_allowed(host, &api.allowed_hosts) {
            return error(
                StatusCode::MISDIRECTED_REQUEST,
                "this Host is not one the daemon answers to; add it with --allow-host",
            );
        }
    }
    if request.method() != axum::http::Method::GET && request.method() != axum::http::Method::HEAD {
        let cross_site = text(header::HeaderName::from_static("sec-fetch-site"))
            .is_some_and(|s| s.eq_ignore_ascii_case("cross-site") || s.eq_ignore_ascii_case("same-site"));
        let foreign_origin = text(header::ORIGIN).is_some_and(|o| !same_origin(o, host));
        if cross_site || foreign_origin {
            return error(
                StatusCode::FORBIDDEN,
                "cross-origin requests may not change state or run SQL",
            );
        }
    }
    next.run(request).await
}

/// An IP address (no DNS name to rebind), `localhost`, or a configured name.
fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => {
            return v6
                .split(']')
                .next()
                .is_some_and(|a| a.parse::<std::net::Ipv6Addr>().is_ok())
        }
        None => host.rsplit_once(':').map_or(host, |(h, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                host
            }
        }),
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name.parse::<std::net::Ipv4Addr>().is_ok()
        || name == "localhost"
        || name.ends_with(".localhost")
        || allowed.contains(&name)
}

/// Whether an `Origin` (`http://host:port`) names the host the request came to.
fn same_origin(origin: &str, host: Option<&str>) -> bool {
    let authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .unwrap_or("");
    host.is_some_and(|h| !authority.is_empty() && authority.eq_ignore_ascii_case(h))
}

/// Refuse a body that is not `application/json`: a browser sends `text/plain`
/// and form bodies cross-site without asking first.
pub(super) fn require_json(headers: &axum::http::HeaderMap) -> Option<Response> {
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = ctype.split(';').next().unwrap_or("").trim();
    (!essence.eq_ignore_ascii_case("application/json")).then(|| {
        error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the body as Content-Type: application/json",
        )
    })
}

pub(super) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let message = crate::telemetry::secrets::scrub(&message.into()).into_owned();
    (status, Json(json!({ "error": message }))).into_response()
}

async fn authorize(State(api): State<Api>, request: Request, next: Next) -> Response {
    if let Some(token) = &api.token {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim())
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

pub(super) fn not_found(name: &str) -> Response {
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
            let rate = p
                .history()
                .latest()
                .and_then(|pt| pt.rows.get(crate::telemetry::tail::SOURCE).copied());
            json!({
                "name": p.name,
                "file": s.file,
                "state": s.state,
                "epoch": m.last_committed_epoch.get(),
                "last_checkpoint_at": checkpoint_time(&m),
                "rows_per_second": rate,
                "dead_letters": m.dead_letters.get(),
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
            if let Some((key, detail)) = st.own().and_then(|o| o.detail()) {
                v[key] = detail;
            }
            v
        })
        .collect();
    let sinks: Vec<Value> = m
        .sinks
        .iter()
        .map(|(name, rows)| {
            let kind = plan
                .as_ref()
                .and_then(|p| p.sinks.iter().find(|s| &s.name == name))
                .map(|s| s.kind.clone());
            json!({"name": name, "kind": kind, "rows": rows.get(), "queue": fill(&format!("sink:{name}"))})
        })
        .collect();
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
        "last_checkpoint_at": checkpoint_time(&m),
        "checkpoint_duration_ms": m.checkpoint_duration_us.get() as f64 / 1e3,
        "source": {
            "kind": plan.as_ref().map(|p| p.source.kind.clone()),
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

/// When the last checkpoint was written (RFC 3339), if ever.
fn checkpoint_time(m: &crate::telemetry::PipelineMetrics) -> Option<String> {
    let ms = m.last_checkpoint_ms.get();
    (ms > 0)
        .then(|| chrono::DateTime::from_timestamp_millis(ms as i64))
        .flatten()
        .map(|t| t.to_rfc3339())
}

// A command takes no body, but reads any it is sent: answering before a late
// body arrived made hyper close the connection, and a keep-alive client's next
// request on it failed.
async fn pause(State(api): State<Api>, Path(name): Path<String>, _body: Bytes) -> Response {
    command(&api, &name, Command::Pause, "pausing")
}

async fn resume(State(api): State<Api>, Path(name): Path<String>, _body: Bytes) -> Response {
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

async fn sql(State(api): State<Api>, headers: axum::http::HeaderMap, body: Bytes) -> Response {
    if let Some(refused) = require_json(&headers) {
        return refused;
    }
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
    let batches = match inspect::query_within(&plan, &request.query, api.sql_limits).await {
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

/// `POST /v1/search`: `{"pipeline": NAME, "query": TEXT, "sink", "k", "mode",
/// "where"}`, the fields of `sluice search`; answers its JSON.
async fn search(State(api): State<Api>, headers: axum::http::HeaderMap, body: Bytes) -> Response {
    if let Some(refused) = require_json(&headers) {
        return refused;
    }
    const SHAPE: &str = "the body must be {\"pipeline\": NAME, \"query\": TEXT, \"sink\"?, \"k\"?, \"mode\"?: \"vector\"|\"text\"|\"hybrid\", \"where\"?}";
    let mut fields = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(fields)) => fields,
        Ok(_) => return error(StatusCode::BAD_REQUEST, SHAPE),
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("{SHAPE}: {e}")),
    };
    let Some(Value::String(name)) = fields.remove("pipeline") else {
        return error(StatusCode::BAD_REQUEST, format!("{SHAPE}: no pipeline"));
    };
    let request: search::Request = match serde_json::from_value(Value::Object(fields)) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("{SHAPE}: {e}")),
    };
    let Some(p) = api.daemon.pipeline(&name) else {
        return not_found(&name);
    };
    let Some(plan) = p.plan() else {
        return error(
            StatusCode::CONFLICT,
            format!("pipeline `{name}` has no valid version to search"),
        );
    };
    match tokio::time::timeout(api.sql_limits.timeout, search::search(&plan, &request)).await {
        Ok(Ok(found)) => Json(found).into_response(),
        Ok(Err(e)) if e.is_user_error() => error(StatusCode::BAD_REQUEST, e.to_string()),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(_) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the search took over {:?}", api.sql_limits.timeout),
        ),
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
