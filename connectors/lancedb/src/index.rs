//! The table's indexes: the vector index, built once the table passes the
//! configured size (or now, by `sluice index rebuild`), and the full-text
//! index of a sink with `full_text`, built after the first write and brought
//! up to date once many rows are not in it. Rows an index does not cover yet
//! are still searched (LanceDB scans them), only slower.

use lancedb::index::scalar::FtsIndexBuilder;
use lancedb::index::vector::{IvfHnswSqIndexBuilder, IvfPqIndexBuilder};
use lancedb::index::Index;
use lancedb::table::{OptimizeAction, OptimizeOptions};
use lancedb::DistanceType;
use sluice_connector_sdk::{ConnectorError, Metric, Result};

use crate::config::{IndexSpec, IndexType, LanceDbSinkConfig};
use crate::sink::{lance_err, LanceDbSink};

/// Fold new rows into the full-text index once this many are outside it
/// (and at least a quarter of the indexed rows).
const TEXT_REINDEX_ROWS: usize = 10_000;

impl LanceDbSink {
    /// Build the vector index once the table holds `after_rows` rows.
    pub(crate) async fn maybe_index(&mut self) -> Result<()> {
        let Some(spec) = self.config.index.clone() else {
            return Ok(());
        };
        if self.indexed {
            return Ok(());
        }
        let table = self.table()?;
        let column = self.config.embedding_column.clone();
        let existing = table
            .list_indices()
            .await
            .map_err(|e| lance_err("listing indexes", e))?;
        if existing.iter().any(|i| i.columns.contains(&column)) {
            self.indexed = true;
            return Ok(());
        }
        let rows = table
            .count_rows(None)
            .await
            .map_err(|e| lance_err("counting rows", e))?;
        if rows < spec.after_rows {
            return Ok(());
        }
        let index = index_for(&spec);
        tracing::info!(sink = %self.ctx.name, rows, "building the {:?} index on `{column}`", spec.kind);
        table
            .create_index(&[column.as_str()], index)
            .replace(true)
            .execute()
            .await
            .map_err(|e| lance_err("building the vector index", e))?;
        self.indexed = true;
        Ok(())
    }

    /// Create the full-text index when the sink wants one and the table has
    /// none on the column; fold new rows into it once many are outside it.
    pub(crate) async fn maybe_index_text(&mut self) -> Result<()> {
        let Some(ft) = self.config.full_text.clone() else {
            return Ok(());
        };
        let table = self.table()?.clone();
        let existing = table
            .list_indices()
            .await
            .map_err(|e| lance_err("listing indexes", e))?;
        let Some(index) = existing
            .iter()
            .find(|i| i.columns == [ft.column.clone()] && i.index_type == lancedb::index::IndexType::FTS)
        else {
            let params = FtsIndexBuilder::default()
                .language(&ft.language.title())
                .map_err(|e| ConnectorError::internal("the full-text language").with_source(e))?;
            tracing::info!(sink = %self.ctx.name, "building the full-text index on `{}`", ft.column);
            return table
                .create_index(&[ft.column.as_str()], Index::FTS(params))
                .execute()
                .await
                .map_err(|e| lance_err("building the full-text index", e));
        };
        let Some(stats) = table
            .index_stats(&index.name)
            .await
            .map_err(|e| lance_err("reading the full-text index's statistics", e))?
        else {
            return Ok(());
        };
        if stats.num_unindexed_rows >= TEXT_REINDEX_ROWS.max(stats.num_indexed_rows / 4) {
            tracing::info!(sink = %self.ctx.name, rows = stats.num_unindexed_rows, "adding new rows to the indexes");
            table
                .optimize(OptimizeAction::Index(OptimizeOptions::default()))
                .await
                .map_err(|e| lance_err("adding new rows to the indexes", e))?;
        }
        Ok(())
    }
}

/// LanceDB's name for a metric.
pub fn distance(metric: Metric) -> DistanceType {
    match metric {
        Metric::Cosine => DistanceType::Cosine,
        Metric::L2 => DistanceType::L2,
        Metric::Dot => DistanceType::Dot,
    }
}

fn index_for(spec: &IndexSpec) -> Index {
    let distance = distance(spec.metric);
    match spec.kind {
        IndexType::IvfPq => Index::IvfPq(IvfPqIndexBuilder::default().distance_type(distance)),
        IndexType::Hnsw => Index::IvfHnswSq(IvfHnswSqIndexBuilder::default().distance_type(distance)),
    }
}

/// Build (or replace) the vector index of the sink's table now, whatever its size.
/// Without an `index` in the config, an HNSW index on cosine distance.
pub async fn rebuild_index(uri: &str, config: &LanceDbSinkConfig) -> Result<String> {
    let spec = config.index.clone().unwrap_or(IndexSpec {
        kind: IndexType::Hnsw,
        metric: Metric::Cosine,
        after_rows: 0,
    });
    let db = crate::connect(uri, &config.storage_options()).await?;
    let table = db.open_table(&config.table).execute().await.map_err(|e| {
        lance_err(
            format!("opening `{}` (has the pipeline run yet?)", config.table),
            e,
        )
    })?;
    let rows = table
        .count_rows(None)
        .await
        .map_err(|e| lance_err("counting rows", e))?;
    table
        .create_index(&[config.embedding_column.as_str()], index_for(&spec))
        .replace(true)
        .execute()
        .await
        .map_err(|e| lance_err("building the vector index", e))?;
    Ok(format!(
        "built a {:?} index ({:?}) on `{}` over {rows} rows",
        spec.kind, spec.metric, config.embedding_column
    ))
}
