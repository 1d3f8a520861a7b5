//! The running `pgvector` sink.
//!
//! Invariants:
//! - an epoch is one transaction: delete every row of the epoch's doc_ids, then a
//!   binary COPY of the new rows; rows carry their `epoch`;
//! - a document seen twice in one epoch keeps only its last version's rows;
//! - `open(committed)` deletes rows of epochs after `committed`;
//! - while the database is unreachable the epoch is held and retried with
//!   backoff, for up to `max_outage`; then the pipeline stops, naming the server
//!   (the SDK's `writer::BufferedSink` does the holding and retrying).

use arrow::array::RecordBatch;
use sluice_connector_sdk::refuse::Bisect;
use sluice_connector_sdk::replace::{epoch_rows, rows_of, versions, EpochRows};
use sluice_connector_sdk::writer::EpochWriter;
use sluice_connector_sdk::{ConnectorError, Epoch, Result, SinkContext};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Client;

use crate::columns::{self, Column, PgType};
use crate::config::{redact, IndexType, PgVectorSinkConfig, FTS_PREFIX};

pub struct PgVectorSink {
    config: PgVectorSinkConfig,
    columns: Vec<Column>,
    client: Option<Client>,
    /// The `vector` type's OID, looked up once connected.
    vector_type: Option<Type>,
    /// The documents the last write refused (doc_id, why), filed as dead
    /// letters once the epoch is written.
    refused: Vec<(String, String)>,
    /// Set with `tls: require`.
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    /// Who runs this sink: its name, where refused documents go, and its
    /// role (whether it rolls back by epoch number, which epoch rows carry).
    ctx: SinkContext,
    /// Stamped on every row (`sluice_writer`); rollbacks touch only its rows.
    writer: String,
}

/// The column that says which run wrote a row (see `SinkContext::writer`).
pub const WRITER: &str = "sluice_writer";

/// A client for `url`, over TLS when `tls` is given (never falling back to
/// plain text then). Its connection runs on a task of its own.
pub(crate) async fn connect(
    url: &str,
    tls: Option<&tokio_postgres_rustls::MakeRustlsConnect>,
) -> std::result::Result<Client, tokio_postgres::Error> {
    let mut pg: tokio_postgres::Config = url.parse()?;
    match tls {
        None => {
            let (client, conn) = pg.connect(tokio_postgres::NoTls).await?;
            tokio::spawn(conn);
            Ok(client)
        }
        Some(tls) => {
            // Without this, tokio-postgres "prefers" TLS and may go without it.
            pg.ssl_mode(tokio_postgres::config::SslMode::Require);
            let (client, conn) = pg.connect(tls.clone()).await?;
            tokio::spawn(conn);
            Ok(client)
        }
    }
}

pub(crate) fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// Is this a lost connection (retry) rather than a refusal by the database (fail)?
/// A server going down says so first: SQLSTATE 57P01-57P03 (shut down by an
/// administrator, crashed, starting up) or class 08 (connection exception).
fn is_connection_error(e: &tokio_postgres::Error) -> bool {
    let going_down = e.code().is_some_and(|c| {
        let c = c.code();
        c.starts_with("08") || matches!(c, "57P01" | "57P02" | "57P03")
    });
    e.is_closed() || e.code().is_none() || going_down
}

impl PgVectorSink {
    pub fn new(
        config: PgVectorSinkConfig,
        columns: Vec<Column>,
        ctx: &SinkContext,
        tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    ) -> Self {
        PgVectorSink {
            config,
            columns,
            client: None,
            vector_type: None,
            refused: Vec::new(),
            tls,
            writer: ctx.writer(),
            ctx: ctx.clone(),
        }
    }

    fn server(&self) -> String {
        redact(&self.config.url)
    }

    fn external(&self, what: &str, e: tokio_postgres::Error) -> ConnectorError {
        pg_err(&self.server(), what, e)
    }

    async fn client(&mut self) -> Result<&Client> {
        if self.client.is_none() {
            let c = connect(&self.config.url, self.tls.as_ref())
                .await
                .map_err(|e| self.external("connect", e))?;
            self.client = Some(c);
        }
        Ok(self.client.as_ref().expect("just connected"))
    }

    /// `CREATE INDEX IF NOT EXISTS <table>_hnsw ... USING hnsw` on the embedding.
    fn hnsw_ddl(&self) -> String {
        format!(
            "CREATE INDEX IF NOT EXISTS {} ON {} USING hnsw ({} {})",
            quote(&format!("{}_hnsw", self.config.table)),
            quote(&self.config.table),
            quote(&self.config.embedding_column),
            crate::config::ops(self.config.index.metric)
        )
    }

    /// Build (or replace) the HNSW index now, whatever `index` says: for tables
    /// loaded with `index: {type: none}`, where one build beats row-by-row upkeep.
    pub async fn rebuild_index(&mut self) -> Result<String> {
        let table = self.config.table.clone();
        let statements = format!(
            "DROP INDEX IF EXISTS {}; {}",
            quote(&format!("{table}_hnsw")),
            self.hnsw_ddl()
        );
        let server = self.server();
        let client = self.client().await?;
        let rows: i64 = client
            .query_one(&format!("SELECT count(*) FROM {}", quote(&table)), &[])
            .await
            .map_err(|e| {
                pg_err(
                    &server,
                    &format!("counting the rows of `{table}` (has the pipeline run yet?)"),
                    e,
                )
            })?
            .get(0);
        client
            .batch_execute(&statements)
            .await
            .map_err(|e| pg_err(&server, "building the HNSW index", e))?;
        Ok(format!(
            "built an HNSW index ({:?}) on `{}` over {rows} rows",
            self.config.index.metric, self.config.embedding_column
        ))
    }

    /// The DDL that makes the extension, the table and its indexes when missing.
    fn ddl(&self) -> Vec<String> {
        let t = quote(&self.config.table);
        let mut cols: Vec<String> = self
            .columns
            .iter()
            .map(|c| {
                let pk = if c.name == self.config.id_column {
                    " PRIMARY KEY"
                } else {
                    ""
                };
                format!("{} {}{pk}", quote(&c.name), c.pg.ddl())
            })
            .collect();
        cols.push("epoch BIGINT NOT NULL".into());
        cols.push(format!("{WRITER} TEXT"));
        let mut ddl = vec![
            "CREATE EXTENSION IF NOT EXISTS vector".to_string(),
            format!("CREATE TABLE IF NOT EXISTS {t} ({})", cols.join(", ")),
            format!(
                "CREATE INDEX IF NOT EXISTS {} ON {t} ({})",
                quote(&format!("{}_doc", self.config.table)),
                quote(&self.config.doc_column)
            ),
            // Tables made before rows said who wrote them.
            format!("ALTER TABLE {t} ADD COLUMN IF NOT EXISTS {WRITER} TEXT"),
            format!(
                "CREATE INDEX IF NOT EXISTS {} ON {t} (epoch)",
                quote(&format!("{}_epoch", self.config.table))
            ),
        ];
        // Columns a newer sluice writes (the lineage) on tables made before.
        for c in &self.columns {
            ddl.push(format!(
                "ALTER TABLE {t} ADD COLUMN IF NOT EXISTS {} {}",
                quote(&c.name),
                c.pg.ddl()
            ));
        }
        if self.config.index.kind == IndexType::Hnsw {
            ddl.push(self.hnsw_ddl());
        }
        ddl.extend(self.full_text_ddl());
        ddl
    }

    /// The stored tsvector column and its GIN index, which PostgreSQL keeps
    /// up on every write; any other such column (an old column or language,
    /// or `full_text` taken off) is dropped, with its index.
    fn full_text_ddl(&self) -> Vec<String> {
        let t = quote(&self.config.table);
        let current = self.config.full_text_column();
        // The table name is an identifier (checked at validate), safe in a literal.
        let mut ddl = vec![format!(
            "DO $$ DECLARE c text; BEGIN \
               FOR c IN SELECT attname FROM pg_attribute WHERE attrelid = '{t}'::regclass \
                 AND NOT attisdropped AND starts_with(attname, '{FTS_PREFIX}') AND attname <> '{keep}' LOOP \
                 EXECUTE format('ALTER TABLE %I DROP COLUMN %I', '{table}', c); \
               END LOOP; END $$",
            table = self.config.table,
            keep = current.as_ref().map(|(c, _)| c.as_str()).unwrap_or(""),
        )];
        if let Some((column, expression)) = current {
            let table = &self.config.table[..self.config.table.len().min(40)];
            ddl.push(format!(
                "ALTER TABLE {t} ADD COLUMN IF NOT EXISTS {column} tsvector GENERATED ALWAYS AS ({expression}) STORED"
            ));
            ddl.push(format!(
                "CREATE INDEX IF NOT EXISTS {} ON {t} USING gin ({column})",
                quote(&format!("{table}_{column}"))
            ));
        }
        ddl
    }

    /// Create the extension, table and indexes when missing (after checking
    /// the dimension), look up the vector type, and roll back this writer's
    /// epochs after `committed`.
    async fn set_up(&mut self, committed: Epoch) -> Result<()> {
        let t = quote(&self.config.table);
        let ddl = self.ddl();
        let want = self.columns.iter().find_map(|c| match c.pg {
            PgType::Vector(d) if c.name == self.config.embedding_column => Some(d),
            _ => None,
        });
        let table = self.config.table.clone();
        let embedding = self.config.embedding_column.clone();
        let server = self.server();
        let rolls_back = self.ctx.role.rolls_back();
        let writer = self.writer.clone();
        let client = self.client().await?;
        // Check the dimension before creating anything.
        let existing: Option<i32> = client
            .query_opt(
                "SELECT atttypmod FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = $2",
                &[&table, &embedding],
            )
            .await
            .map_err(|e| pg_err(&server, &format!("reading the schema of `{table}`"), e))?
            .map(|r| r.get(0));
        if let (Some(have), Some(want)) = (existing, want) {
            if have as usize != want {
                return Err(ConnectorError::user(format!(
                    "table `{table}` has `{embedding}` vector({have}), this pipeline makes vector({want}); refusing to run (use another table, or drop this one)"
                )));
            }
        }
        // One transaction under a lock shared by every sluice process: `IF NOT
        // EXISTS` does not make concurrent DDL safe (two sinks starting at once on
        // a fresh database both try to create the extension, and one fails).
        client
            .batch_execute("BEGIN; SELECT pg_advisory_xact_lock(hashtext('sluice:pgvector:ddl'))")
            .await
            .map_err(|e| pg_err(&server, "taking the DDL lock", e))?;
        for stmt in &ddl {
            if let Err(e) = client.batch_execute(stmt).await {
                let _ = client.batch_execute("ROLLBACK").await;
                return Err(pg_err(&server, &format!("`{stmt}`"), e));
            }
        }
        client
            .batch_execute("COMMIT")
            .await
            .map_err(|e| pg_err(&server, "committing the table set-up", e))?;
        let vector: Type = client
            .query_one("SELECT 'vector'::regtype::oid", &[])
            .await
            .map(|r| {
                Type::new(
                    "vector".into(),
                    r.get(0),
                    tokio_postgres::types::Kind::Simple,
                    "public".into(),
                )
            })
            .map_err(|e| pg_err(&server, "looking up the vector type", e))?;
        // Shared with other processes: their epochs are numbered apart from ours.
        let rolled = if !rolls_back {
            0
        } else {
            // Only this writer's rows (and rows from before rows said who wrote
            // them): another pipeline sharing the table keeps its epochs.
            client
                .execute(
                    &format!("DELETE FROM {t} WHERE epoch > $1 AND ({WRITER} = $2 OR {WRITER} IS NULL)"),
                    &[&(committed as i64), &writer],
                )
                .await
                .map_err(|e| pg_err(&server, "rolling back uncommitted epochs", e))?
        };
        if rolled > 0 {
            tracing::info!(sink = %self.ctx.name, rows = rolled, "rolled back rows of epochs after {committed}");
        }
        self.vector_type = Some(vector);
        Ok(())
    }

    /// Write the epoch. A refusal for a row's content (a NUL byte in text, a NaN
    /// in a vector) is narrowed down to its documents, which become dead
    /// letters; the other documents are written.
    async fn write_epoch(&mut self, epoch: Epoch, rows: &EpochRows) -> Result<()> {
        self.client().await?;
        let mut bisect = Bisect::new(rows.doc_ids.clone());
        while let Some(docs) = bisect.next_attempt() {
            let subset = if docs.len() == rows.doc_ids.len() {
                rows.batches.clone()
            } else {
                rows_of(&rows.batches, &self.config.doc_column, &docs)?
            };
            if let Err(e) = self.write_docs(epoch, &docs, &subset).await {
                bisect.failed(docs, e)?;
            }
        }
        self.refused = bisect.refused().to_vec();
        Ok(())
    }

    /// One transaction: delete every row of `doc_ids`, then COPY `batches`.
    async fn write_docs(&mut self, epoch: Epoch, doc_ids: &[String], batches: &[RecordBatch]) -> Result<()> {
        let vector = self
            .vector_type
            .clone()
            .ok_or_else(|| ConnectorError::internal("sink not opened"))?;
        let types: Vec<Type> = self
            .columns
            .iter()
            .map(|c| c.pg.wire(&vector))
            .chain([Type::INT8, Type::TEXT])
            .collect();
        let names: Vec<String> = self
            .columns
            .iter()
            .map(|c| quote(&c.name))
            .chain(["epoch".into(), WRITER.into()])
            .collect();
        let t = quote(&self.config.table);
        let doc_column = quote(&self.config.doc_column);
        let columns = self.columns.clone();
        let stamp = self.writer.clone();
        let server = self.server();
        let client = self
            .client
            .as_mut()
            .ok_or_else(|| ConnectorError::external("not connected"))?;
        let tx = client
            .transaction()
            .await
            .map_err(|e| pg_err(&server, "BEGIN", e))?;
        tx.execute(
            &format!("DELETE FROM {t} WHERE {doc_column} = ANY($1)"),
            &[&doc_ids],
        )
        .await
        .map_err(|e| pg_err(&server, "deleting replaced documents", e))?;
        let copy = tx
            .copy_in(&format!("COPY {t} ({}) FROM STDIN BINARY", names.join(", ")))
            .await
            .map_err(|e| pg_err(&server, "COPY", e))?;
        let writer = BinaryCopyInWriter::new(copy, &types);
        futures::pin_mut!(writer);
        let epoch_value = self.ctx.role.row_epoch(epoch);
        for batch in batches {
            for row in 0..batch.num_rows() {
                let values: Vec<columns::Value> = columns
                    .iter()
                    .map(|c| columns::value(batch, c, row))
                    .collect::<Result<_>>()?;
                let mut refs: Vec<&(dyn ToSql + Sync)> =
                    values.iter().map(|v| v.as_ref() as &(dyn ToSql + Sync)).collect();
                refs.push(&epoch_value);
                refs.push(&stamp);
                writer
                    .as_mut()
                    .write(&refs)
                    .await
                    .map_err(|e| pg_err(&server, "COPY row", e))?;
            }
        }
        writer.finish().await.map_err(|e| pg_err(&server, "COPY", e))?;
        tx.commit().await.map_err(|e| pg_err(&server, "COMMIT", e))?;
        Ok(())
    }
}

pub(crate) fn pg_err(server: &str, what: &str, e: tokio_postgres::Error) -> ConnectorError {
    if is_data_error(&e) {
        // The server's own words (tokio-postgres prints only "db error").
        let why = e
            .as_db_error()
            .map(|d| format!("{} (SQLSTATE {})", d.message(), d.code().code()))
            .unwrap_or_else(|| e.to_string());
        return ConnectorError::data(format!("PostgreSQL refused a row ({what}): {why}"));
    }
    let retry = is_connection_error(&e);
    ConnectorError::external(format!("PostgreSQL at {server}: {what}"))
        .with_source(e)
        .retryable(retry)
}

/// A refusal of a value, not of the request: SQLSTATE class 22 (data exception:
/// a NUL byte in text, a NaN in a vector, a number out of range), 23 (integrity
/// constraint) or 54 (program limit: a value too large for an index).
fn is_data_error(e: &tokio_postgres::Error) -> bool {
    e.code()
        .is_some_and(|c| ["22", "23", "54"].iter().any(|class| c.code().starts_with(class)))
}

#[async_trait::async_trait]
impl EpochWriter for PgVectorSink {
    type Prepared = EpochRows;

    fn service(&self) -> String {
        format!("PostgreSQL at {}", self.server())
    }

    fn max_outage(&self) -> std::time::Duration {
        self.config.max_outage.0
    }

    async fn open(&mut self, committed: Epoch) -> Result<()> {
        self.set_up(committed).await
    }

    fn prepare(&mut self, _epoch: Epoch, pending: &[RecordBatch]) -> Result<EpochRows> {
        epoch_rows(pending, &self.config.doc_column)
    }

    async fn write(&mut self, epoch: Epoch, rows: &EpochRows) -> Result<()> {
        self.write_epoch(epoch, rows).await
    }

    async fn reset(&mut self) {
        self.client = None;
    }

    async fn written(&mut self, _epoch: Epoch, rows: EpochRows) -> Result<()> {
        let refused = std::mem::take(&mut self.refused);
        if !refused.is_empty() {
            let versions = versions(&rows.batches, &self.config.doc_column);
            for (doc, why) in refused {
                let version = versions.get(&doc).cloned().unwrap_or_default();
                self.ctx.dead_letter(doc, version, why);
            }
        }
        Ok(())
    }
}
