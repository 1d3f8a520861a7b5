//! The table as `sluice sql` and `vector_search` read it (see
//! [`sluice_connector_sdk::read`]): rows decoded to Arrow, and nearest
//! neighbours with the operator of the sink's metric, which the HNSW index
//! serves.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Float32Array, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use sluice_connector_sdk::read::filter::SqlDialect;
use sluice_connector_sdk::read::{conform, BatchStream, Filter, SinkTable, DISTANCE, SCORE};
use sluice_connector_sdk::vectors;
use sluice_connector_sdk::{ConnectorError, Metric, Result};
use tokio_postgres::Row;

use crate::columns::{Column, PgType};
use crate::config::{redact, PgVectorSinkConfig};
use crate::sink::{connect, pg_err, quote, WRITER};

/// Rows per batch of a scan.
const BATCH_ROWS: usize = 4096;

/// The most words of a text query used.
const MAX_WORDS: usize = 64;

/// A pgvector sink's table.
pub struct PgTable {
    pub config: PgVectorSinkConfig,
    pub columns: Vec<Column>,
    pub tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
}

impl std::fmt::Debug for PgTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTable")
            .field("server", &redact(&self.config.url))
            .field("table", &self.config.table)
            .finish()
    }
}

/// The Arrow type a column reads back as.
fn arrow_type(pg: PgType) -> DataType {
    match pg {
        PgType::Text => DataType::Utf8,
        PgType::BigInt => DataType::Int64,
        PgType::Real => DataType::Float32,
        PgType::Double => DataType::Float64,
        PgType::Boolean => DataType::Boolean,
        PgType::TimestampTz => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        PgType::Vector(n) => vectors::embedding_type(n),
    }
}

/// Values of column `i`; `T` is what tokio-postgres decodes it as.
fn values<T>(rows: &[Row], i: usize) -> std::result::Result<Vec<Option<T>>, tokio_postgres::Error>
where
    T: for<'a> tokio_postgres::types::FromSql<'a>,
{
    rows.iter().map(|r| r.try_get::<_, Option<T>>(i)).collect()
}

fn vectors(values: Vec<Option<pgvector::Vector>>, dim: usize) -> Result<ArrayRef> {
    let slices: Vec<Option<&[f32]>> = values.iter().map(|v| v.as_ref().map(|v| v.as_slice())).collect();
    let flat = vectors::flatten(&slices, dim).map_err(|len| {
        ConnectorError::user(format!("a stored vector has {len} dimensions, the table {dim}"))
    })?;
    Ok(Arc::new(vectors::column(
        flat,
        dim,
        values.iter().map(Option::is_some),
    )?))
}

/// `rows` of the `stored` columns (and a distance after them, when `schema`
/// has one more field) as a batch of `schema`.
fn batch(stored: &[(String, PgType)], rows: &[Row], schema: &SchemaRef) -> Result<RecordBatch> {
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (i, (_, pg)) in stored.iter().enumerate() {
        columns.push(column(rows, i, *pg)?);
    }
    if schema.fields().len() > columns.len() {
        let distance: Vec<Option<f32>> = values::<f32>(rows, columns.len())
            .map_err(|e| ConnectorError::internal("decoding a distance").with_source(e))?;
        columns.push(Arc::new(Float32Array::from(distance)));
    }
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// Column `i` of `rows` as Arrow.
fn column(rows: &[Row], i: usize, pg: PgType) -> Result<ArrayRef> {
    let decode = |e: tokio_postgres::Error| ConnectorError::internal("decoding a row").with_source(e);
    Ok(match pg {
        PgType::Text => Arc::new(StringArray::from(values::<String>(rows, i).map_err(decode)?)),
        PgType::BigInt => Arc::new(Int64Array::from(values::<i64>(rows, i).map_err(decode)?)),
        PgType::Real => Arc::new(Float32Array::from(values::<f32>(rows, i).map_err(decode)?)),
        PgType::Double => Arc::new(Float64Array::from(values::<f64>(rows, i).map_err(decode)?)),
        PgType::Boolean => Arc::new(BooleanArray::from(values::<bool>(rows, i).map_err(decode)?)),
        PgType::TimestampTz => {
            let times = values::<DateTime<Utc>>(rows, i).map_err(decode)?;
            let micros: Vec<Option<i64>> = times.iter().map(|t| t.map(|t| t.timestamp_micros())).collect();
            Arc::new(TimestampMicrosecondArray::from(micros).with_timezone("UTC"))
        }
        PgType::Vector(n) => vectors(values::<pgvector::Vector>(rows, i).map_err(decode)?, n)?,
    })
}

impl PgTable {
    /// The stored columns, then `epoch` and `sluice_writer`.
    fn stored(&self) -> Vec<(String, PgType)> {
        self.columns
            .iter()
            .map(|c| (c.name.clone(), c.pg))
            .chain([("epoch".into(), PgType::BigInt), (WRITER.into(), PgType::Text)])
            .collect()
    }

    fn select_list(&self) -> String {
        self.stored()
            .iter()
            .map(|(n, _)| quote(n))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn server(&self) -> String {
        redact(&self.config.url)
    }
}

/// The pgvector operator of a metric (smaller is nearer for each).
fn operator(metric: Metric) -> &'static str {
    match metric {
        Metric::Cosine => "<=>",
        Metric::L2 => "<->",
        Metric::Dot => "<#>",
    }
}

/// SQLSTATE 42P01: the sink has not created the table yet.
fn no_table(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE)
}

#[async_trait::async_trait]
impl SinkTable for PgTable {
    fn schema(&self) -> SchemaRef {
        let fields: Vec<Field> = self
            .stored()
            .into_iter()
            .map(|(name, pg)| Field::new(name, arrow_type(pg), true))
            .collect();
        Arc::new(Schema::new(fields))
    }

    async fn scan(&self) -> Result<BatchStream> {
        let server = self.server();
        let client = connect(&self.config.url, self.tls.as_ref())
            .await
            .map_err(|e| pg_err(&server, "connect", e))?;
        let sql = format!("SELECT {} FROM {}", self.select_list(), quote(&self.config.table));
        let rows = match client.query_raw(&sql, Vec::<String>::new()).await {
            Ok(rows) => rows,
            Err(e) if no_table(&e) => return Ok(futures::stream::empty().boxed()),
            Err(e) => return Err(pg_err(&server, "reading the table", e)),
        };
        let schema = self.schema();
        let stored = self.stored();
        Ok(rows
            .map_err(move |e| pg_err(&server, "reading the table", e))
            .try_chunks(BATCH_ROWS)
            .map(move |chunk| {
                // The client lives as long as the stream: its connection
                // carries the rows.
                let _ = &client;
                let rows = chunk.map_err(|e| e.1)?;
                batch(&stored, &rows, &schema).and_then(|b| conform(&b, &schema))
            })
            .boxed())
    }

    fn can_search(&self) -> bool {
        true
    }

    async fn nearest(&self, vector: Vec<f32>, k: usize, filter: Option<&Filter>) -> Result<Vec<RecordBatch>> {
        let distance = format!(
            "{} {} $1",
            quote(&self.config.embedding_column),
            operator(self.config.index.metric)
        );
        let sql = format!(
            "SELECT {}, ({distance})::real AS {DISTANCE} FROM {}{} ORDER BY {distance} LIMIT {k}",
            self.select_list(),
            quote(&self.config.table),
            where_clause(filter, None),
        );
        self.ranked(&sql, &pgvector::Vector::from(vector), DISTANCE).await
    }

    fn can_match_text(&self) -> bool {
        self.config.full_text.is_some()
    }

    async fn matching(&self, text: &str, k: usize, filter: Option<&Filter>) -> Result<Vec<RecordBatch>> {
        let (Some((tsvector, _)), Some(ft)) = (self.config.full_text_column(), &self.config.full_text) else {
            return Err(ConnectorError::user(
                "this sink keeps no full-text index; set `full_text: true` on it",
            ));
        };
        // Any word of the query (OR, as LanceDB's match query), each word
        // normalized by PostgreSQL itself, so nothing typed is tsquery syntax.
        let words: Vec<String> = text
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .take(MAX_WORDS)
            .map(str::to_string)
            .collect();
        let language = ft.language.name();
        let query = format!(
            "(SELECT coalesce(string_agg(q::text, ' | '), '')::tsquery AS q FROM \
               (SELECT plainto_tsquery('{language}'::regconfig, w) AS q FROM unnest($1::text[]) AS w) AS words \
             WHERE numnode(q) > 0)"
        );
        let matches = format!("{tsvector} @@ sluice_query.q");
        let sql = format!(
            "SELECT {}, ts_rank_cd({tsvector}, sluice_query.q)::real AS {SCORE} \
             FROM {}, {query} AS sluice_query{} \
             ORDER BY {SCORE} DESC, {} LIMIT {k}",
            self.select_list(),
            quote(&self.config.table),
            where_clause(filter, Some(&matches)),
            quote(&self.config.id_column),
        );
        self.ranked(&sql, &words, SCORE).await
    }
}

/// `WHERE` with the filter (in PostgreSQL's quoting) and `also`, or nothing.
fn where_clause(filter: Option<&Filter>, also: Option<&str>) -> String {
    let parts: Vec<String> = also
        .map(str::to_string)
        .into_iter()
        .chain(filter.map(|f| f.to_sql(&PG_SQL)))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", parts.join(" AND "))
    }
}

/// Text as an escape string (`E'...'`), which means the same whatever the
/// server's `standard_conforming_strings`.
fn escape_string(text: &str) -> String {
    format!("E'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
}

const PG_SQL: SqlDialect = SqlDialect {
    quote_ident: quote,
    quote_text: escape_string,
};

impl PgTable {
    /// Run a ranking query with one parameter; its rows are the stored columns
    /// and a real `extra` column.
    async fn ranked(
        &self,
        sql: &str,
        param: &(dyn tokio_postgres::types::ToSql + Sync),
        extra: &str,
    ) -> Result<Vec<RecordBatch>> {
        let server = self.server();
        let client = connect(&self.config.url, self.tls.as_ref())
            .await
            .map_err(|e| pg_err(&server, "connect", e))?;
        // The HNSW index stops at `hnsw.ef_search` (40) candidates, fewer
        // still after a filter: pgvector 0.8 scans on until `k` rows pass, in
        // exact order. An older pgvector has no such setting; search as it can.
        if let Err(e) = client
            .batch_execute("SET hnsw.iterative_scan = strict_order")
            .await
        {
            tracing::debug!("pgvector without iterative index scans: {e}");
        }
        let rows = match client.query(sql, &[param]).await {
            Ok(rows) => rows,
            Err(e) if no_table(&e) => return Ok(Vec::new()),
            Err(e) => return Err(pg_err(&server, "searching the table", e)),
        };
        let mut fields: Vec<Field> = self
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(Field::new(extra, DataType::Float32, true));
        Ok(vec![batch(
            &self.stored(),
            &rows,
            &Arc::new(Schema::new(fields)),
        )?])
    }
}
