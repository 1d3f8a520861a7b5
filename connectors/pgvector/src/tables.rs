//! What a model migration asks of the store besides writes: drop a shadow
//! table, and point a view readers outside sluice query at the table that is
//! served, in one transaction.

use futures::future::BoxFuture;
use sluice_connector_sdk::{ConnectorError, Result, SinkContext};

use crate::config::{redact, PgVectorSinkConfig};
use crate::sink::{connect, pg_err, quote};

/// `DROP TABLE IF EXISTS` on the config's table.
pub fn drop_table(config: &PgVectorSinkConfig, ctx: &SinkContext) -> BoxFuture<'static, Result<()>> {
    let sql = format!("DROP TABLE IF EXISTS {}", quote(&config.table));
    run(config, ctx, "dropping the table", sql)
}

/// `view` replaced by a view of the config's table, in one transaction: a
/// reader of the view sees the old table or the new one, never neither.
pub fn serve_as(
    config: &PgVectorSinkConfig,
    ctx: &SinkContext,
    view: &str,
) -> BoxFuture<'static, Result<()>> {
    let sql = format!(
        "BEGIN; DROP VIEW IF EXISTS {view}; CREATE VIEW {view} AS SELECT * FROM {table}; COMMIT",
        view = quote(view),
        table = quote(&config.table)
    );
    run(config, ctx, "switching the served view", sql)
}

fn run(
    config: &PgVectorSinkConfig,
    ctx: &SinkContext,
    what: &'static str,
    sql: String,
) -> BoxFuture<'static, Result<()>> {
    let url = config.url.clone();
    let tls = config.tls_connector(ctx);
    Box::pin(async move {
        let server = redact(&url);
        let client = connect(&url, tls?.as_ref())
            .await
            .map_err(|e| pg_err(&server, "connect", e))?;
        client.batch_execute(&sql).await.map_err(|e| {
            let why = e
                .as_db_error()
                .map(|d| d.message().to_string())
                .unwrap_or_else(|| e.to_string());
            ConnectorError::external(format!("PostgreSQL at {server}: {what}: {why}")).with_source(e)
        })
    })
}
