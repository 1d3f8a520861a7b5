//! `sluice sql`: DataFusion over what a pipeline produced.
//!
//! Tables: each tapped stage (named after the stage), each sink that keeps a
//! Parquet change log (`<sink>_log`: every row ever written; `<sink>`: the current
//! state, the newest epoch of each document with deletes left out), each sink
//! whose store can be read (a vector store's table, a feature store's offline
//! dataset; named after the sink), and `dead_letters` (the open letters;
//! `dead_letters_log`: every row of the store). `vector_search(sink, 'text', k)`
//! searches any sink whose store can search by vector, with the pipeline's own
//! embedding model. A stage that keeps an audit table adds it under its name
//! (the guard's `guard_findings`: document, chunk, kind, rule, action, score,
//! offsets, stage, epoch; never a matched value). Only queries run: DDL, DML, COPY and `CREATE EXTERNAL
//! TABLE` are refused.

pub mod audit;
mod limits;
pub mod lineage;
mod store;
pub mod tail;
pub mod tail_socket;
pub mod taps;
pub mod vector_search;

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::execution::context::SQLOptions;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::{DFParser, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::Statement;

use crate::plan::Plan;
use crate::{Error, Result};
pub use limits::QueryLimits;
use sluice_connector_sdk::InspectTable;

/// Options that allow queries only.
pub fn read_only() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// Refuse anything but a query, naming what was refused.
pub fn check_read_only(sql: &str) -> Result<()> {
    let statements =
        DFParser::parse_sql(sql).map_err(|e| Error::Sql(format!("cannot parse the query: {e}")))?;
    if statements.len() != 1 {
        return Err(Error::Sql(format!(
            "give exactly one query, found {} statements",
            statements.len()
        )));
    }
    let refused = match &statements[0] {
        DfStatement::Statement(s) => match s.as_ref() {
            Statement::Query(_) => None,
            Statement::Explain { statement, .. } if matches!(statement.as_ref(), Statement::Query(_)) => None,
            Statement::Copy { .. } => Some("COPY"),
            Statement::Insert(_) | Statement::Update(_) | Statement::Delete(_) | Statement::Merge(_) => {
                Some("DML")
            }
            _ => Some("DDL or a statement"),
        },
        DfStatement::Explain(e) => match e.statement.as_ref() {
            DfStatement::Statement(s) if matches!(s.as_ref(), Statement::Query(_)) => None,
            _ => Some("EXPLAIN of anything but a query"),
        },
        DfStatement::CreateExternalTable(_) => Some("CREATE EXTERNAL TABLE"),
        DfStatement::CopyTo(_) => Some("COPY"),
        _ => Some("this statement"),
    };
    match refused {
        None => Ok(()),
        Some(what) => Err(Error::Sql(format!(
            "refused: {what} is not allowed here; `sluice sql` runs read-only queries (SELECT, WITH, EXPLAIN)"
        ))),
    }
}

fn folder_url(dir: &std::path::Path) -> Result<String> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let abs = std::fs::canonicalize(dir).map_err(|e| Error::io(format!("resolving {}", dir.display()), e))?;
    url::Url::from_directory_path(&abs)
        .map(|u| u.to_string())
        .map_err(|_| Error::Internal(format!("{} is not absolute", abs.display())))
}

fn register_parquet(ctx: &SessionContext, name: &str, url: &str, schema: SchemaRef) -> Result<()> {
    register_parquet_folders(ctx, name, vec![ListingTableUrl::parse(url)?], schema)
}

/// One table over the `.parquet` files of several folders.
fn register_parquet_folders(
    ctx: &SessionContext,
    name: &str,
    urls: Vec<ListingTableUrl>,
    schema: SchemaRef,
) -> Result<()> {
    let options = ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    let config = ListingTableConfig::new_with_multi_paths(urls)
        .with_listing_options(options)
        .with_schema(schema);
    ctx.register_table(name, Arc::new(ListingTable::try_new(config)?))?;
    Ok(())
}

/// A Hive-partitioned Parquet dataset; partition columns are text.
fn register_dataset(
    ctx: &SessionContext,
    name: &str,
    url: &str,
    schema: SchemaRef,
    partitions: &[String],
) -> Result<()> {
    let url = ListingTableUrl::parse(url)?;
    let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
        .with_file_extension(".parquet")
        .with_table_partition_cols(
            partitions
                .iter()
                .map(|p| (p.clone(), arrow::datatypes::DataType::Utf8))
                .collect(),
        );
    let config = ListingTableConfig::new(url)
        .with_listing_options(options)
        .with_schema(schema);
    ctx.register_table(name, Arc::new(ListingTable::try_new(config)?))?;
    Ok(())
}

/// The current state of a change log: each document's newest epoch, without deletes.
fn current_state_sql(log_table: &str) -> String {
    format!(
        "SELECT * EXCLUDE (__newest) FROM (\
           SELECT *, max(epoch) OVER (PARTITION BY doc_id) AS __newest FROM \"{log_table}\"\
         ) WHERE epoch = __newest AND op = 'upsert'"
    )
}

/// A session with every table of `plan` registered.
pub async fn session(plan: &Plan) -> Result<SessionContext> {
    session_within(plan, &QueryLimits::default()).await
}

async fn session_within(plan: &Plan, limits: &QueryLimits) -> Result<SessionContext> {
    let ctx = SessionContext::new_with_config_rt(Default::default(), limits.runtime_env()?);
    for stage in plan.stages.iter().filter(|s| s.tap) {
        let url = folder_url(&plan.tap_dir(&stage.name))?;
        register_parquet(&ctx, &stage.name, &url, stage.output.clone())?;
    }
    let mut searchable = std::collections::HashMap::new();
    for sink in &plan.sinks {
        match sink.config.inspect_table(&plan.sink_context(sink), &sink.input) {
            Some(InspectTable::ParquetDataset {
                url,
                schema,
                partitions,
            }) => {
                register_dataset(&ctx, &sink.name, &url, schema, &partitions)?;
            }
            Some(InspectTable::Store(table)) => {
                // A sink whose migration is promoted is served from its
                // shadow's table; the shadow is also there under its own name.
                use crate::migrate::{plan as migration, Served};
                let promoted =
                    sink.shadow.is_none() && migration::served(plan, &sink.name)? == Served::Shadow;
                let shadow = promoted
                    .then(|| migration::target(plan, &sink.name, Served::Shadow))
                    .flatten();
                let (table, embedder) = match shadow {
                    Some(t) => (t.table, t.embedder),
                    None => (table, migration::embedder(plan, sink)),
                };
                if table.can_search() {
                    searchable.insert(sink.name.clone(), (table.clone(), embedder));
                }
                ctx.register_table(sink.name.as_str(), store::provider(table)?)?;
            }
            None => {}
        }
        let Some(log) = sink.config.parquet_log(&plan.sink_context(sink), &sink.input) else {
            continue;
        };
        let log_name = format!("{}_log", sink.name);
        let has = |c: &str| log.schema.field_with_name(c).is_ok();
        register_parquet(&ctx, &log_name, &log.url, log.schema.clone())?;
        if has("doc_id") && has("op") && has("epoch") {
            let view = ctx.sql(&current_state_sql(&log_name)).await?.into_view();
            ctx.register_table(sink.name.as_str(), view)?;
        }
    }
    ctx.register_udtf(
        "vector_search",
        Arc::new(vector_search::VectorSearch { sinks: searchable }),
    );
    register_parquet(
        &ctx,
        "dead_letters_log",
        &folder_url(&plan.dlq_dir())?,
        crate::dlq::schema(),
    )?;
    let open = ctx
        .sql(&crate::dlq::open_view_sql("dead_letters_log"))
        .await?
        .into_view();
    ctx.register_table("dead_letters", open)?;
    audit::register(&ctx, plan)?;
    Ok(ctx)
}

/// Run one read-only query against `plan`'s tables within the default
/// [`QueryLimits`]. Returns at least one batch (empty, with the result's
/// schema, when no row matched).
pub async fn query(plan: &Plan, sql: &str) -> Result<Vec<RecordBatch>> {
    query_within(plan, sql, QueryLimits::default()).await
}

/// [`query`] within `limits`.
pub async fn query_within(plan: &Plan, sql: &str, limits: QueryLimits) -> Result<Vec<RecordBatch>> {
    check_read_only(sql)?;
    let planned = async {
        let ctx = session_within(plan, &limits).await?;
        ctx.sql_with_options(sql, read_only()).await.map_err(Error::from)
    };
    let df = tokio::time::timeout(limits.timeout, planned)
        .await
        .map_err(|_| Error::Sql(format!("planning the query took over {:?}", limits.timeout)))??;
    let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let mut batches = limits::collect(df, limits).await?;
    if batches.is_empty() {
        batches.push(RecordBatch::new_empty(schema));
    }
    Ok(batches)
}

/// How `sluice sql` prints results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
    Csv,
}

pub fn format(batches: &[RecordBatch], format: OutputFormat) -> Result<String> {
    match format {
        OutputFormat::Table => Ok(arrow::util::pretty::pretty_format_batches(batches)?.to_string()),
        OutputFormat::Json => {
            let mut w = arrow::json::ArrayWriter::new(Vec::new());
            for b in batches {
                w.write(b)?;
            }
            w.finish()?;
            let mut out = String::from_utf8(w.into_inner()).map_err(|e| Error::Internal(e.to_string()))?;
            if out.is_empty() {
                out.push_str("[]");
            }
            Ok(out)
        }
        OutputFormat::Csv => {
            let mut buf = Vec::new();
            {
                let mut w = arrow::csv::WriterBuilder::new().with_header(true).build(&mut buf);
                for b in batches {
                    w.write(b)?;
                }
            }
            String::from_utf8(buf).map_err(|e| Error::Internal(e.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::check_read_only;

    #[test]
    fn only_queries_pass() {
        assert!(check_read_only("SELECT 1").is_ok());
        assert!(check_read_only("WITH a AS (SELECT 1) SELECT * FROM a").is_ok());
        // Regression: EXPLAIN parses as DataFusion's own statement and was refused.
        assert!(check_read_only("EXPLAIN SELECT 1").is_ok());
        assert!(check_read_only("EXPLAIN ANALYZE SELECT 1").is_ok());
        for sql in [
            "CREATE TABLE t (a INT)",
            "DROP TABLE chunks",
            "INSERT INTO t VALUES (1)",
            "COPY (SELECT 1) TO '/tmp/x.csv'",
            "CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/passwd'",
            "SET datafusion.execution.batch_size = 1",
            "SELECT 1; SELECT 2",
            "EXPLAIN CREATE TABLE t (a INT)",
        ] {
            let err = check_read_only(sql).unwrap_err().to_string();
            assert!(
                err.contains("refused") || err.contains("exactly one"),
                "{sql}: {err}"
            );
        }
    }
}
