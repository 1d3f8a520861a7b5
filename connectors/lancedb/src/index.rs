//! The table's indexes: the vector index, built once the table passes the
//! configured size (or now, by `sluice index rebuild`), and the full-text
//! index of a sink with `full_text`, built after the first write and brought
//! up to date once many rows are not in it. Rows an index does not cover yet
//! are still searched (Lance scans them), only slower.
//!
//! The parameters are LanceDB's defaults for the same index types, so a table
//! indexed here is indexed as LanceDB would have done it.

use lance::index::vector::VectorIndexParams;
use lance::index::DatasetIndexExt;
use lance::Dataset;
use lance_index::optimize::OptimizeOptions;
use lance_index::scalar::InvertedIndexParams;
use lance_index::vector::hnsw::builder::HnswBuildParams;
use lance_index::vector::ivf::IvfBuildParams;
use lance_index::vector::pq::PQBuildParams;
use lance_index::vector::sq::builder::SQBuildParams;
use lance_index::IndexType as LanceIndexType;
use lance_linalg::distance::DistanceType;
use sluice_connector_sdk::{ConnectorError, Metric, Result};

use crate::config::{IndexSpec, IndexType, LanceDbSinkConfig};
use crate::sink::{lance_err, LanceDbSink};

/// Fold new rows into the full-text index once this many are outside it
/// (and at least a quarter of the indexed rows).
const TEXT_REINDEX_ROWS: usize = 10_000;

/// One index of a table, as far as the sink needs to know it.
pub(crate) struct IndexInfo {
    /// Lance's name for its type, upper case (`IVF_PQ`, `INVERTED`, ...).
    pub kind: String,
    pub columns: Vec<String>,
    pub rows_indexed: u64,
}

impl IndexInfo {
    pub fn is_full_text(&self) -> bool {
        matches!(self.kind.as_str(), "INVERTED" | "FTS")
    }
}

/// The table's indexes (Lance's internal ones, which have no columns, left out).
pub(crate) async fn indexes(table: &Dataset) -> Result<Vec<IndexInfo>> {
    let all = table
        .describe_indices(None)
        .await
        .map_err(|e| lance_err("listing indexes", e))?;
    let schema = table.schema();
    Ok(all
        .iter()
        .map(|d| IndexInfo {
            kind: d.index_type().to_uppercase(),
            columns: d
                .field_ids()
                .iter()
                .filter_map(|id| schema.field_by_id(*id as i32).map(|f| f.name.clone()))
                .collect(),
            rows_indexed: d.rows_indexed(),
        })
        .filter(|i| !i.columns.is_empty())
        .collect())
}

impl LanceDbSink {
    /// Build the vector index once the table holds `after_rows` rows.
    pub(crate) async fn maybe_index(&mut self) -> Result<()> {
        let Some(spec) = self.config.index.clone() else {
            return Ok(());
        };
        if self.indexed {
            return Ok(());
        }
        let column = self.config.embedding_column.clone();
        let name = self.ctx.name.clone();
        let table = self.table()?;
        if indexes(table).await?.iter().any(|i| i.columns.contains(&column)) {
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
        tracing::info!(sink = %name, rows, "building the {:?} index on `{column}`", spec.kind);
        build_vector_index(table, &column, &spec).await?;
        self.indexed = true;
        Ok(())
    }

    /// Create the full-text index when the sink wants one and the table has
    /// none on the column; fold new rows into it once many are outside it.
    pub(crate) async fn maybe_index_text(&mut self) -> Result<()> {
        let Some(ft) = self.config.full_text.clone() else {
            return Ok(());
        };
        let name = self.ctx.name.clone();
        let table = self.table()?;
        let existing = indexes(table).await?;
        let Some(index) = existing
            .iter()
            .find(|i| i.columns == [ft.column.clone()] && i.is_full_text())
        else {
            let params = InvertedIndexParams::default()
                .language(&ft.language.title())
                .map_err(|e| ConnectorError::internal("the full-text language").with_source(e))?;
            tracing::info!(sink = %name, "building the full-text index on `{}`", ft.column);
            return table
                .create_index(
                    &[ft.column.as_str()],
                    LanceIndexType::Inverted,
                    None,
                    &params,
                    false,
                )
                .await
                .map(|_| ())
                .map_err(|e| lance_err("building the full-text index", e));
        };
        let rows = table
            .count_rows(None)
            .await
            .map_err(|e| lance_err("counting rows", e))?;
        let indexed = index.rows_indexed as usize;
        let outside = rows.saturating_sub(indexed);
        if outside >= TEXT_REINDEX_ROWS.max(indexed / 4) {
            tracing::info!(sink = %name, rows = outside, "adding new rows to the indexes");
            table
                .optimize_indices(&OptimizeOptions::default())
                .await
                .map_err(|e| lance_err("adding new rows to the indexes", e))?;
        }
        Ok(())
    }
}

/// Lance's name for a metric.
pub fn distance(metric: Metric) -> DistanceType {
    match metric {
        Metric::Cosine => DistanceType::Cosine,
        Metric::L2 => DistanceType::L2,
        Metric::Dot => DistanceType::Dot,
    }
}

/// LanceDB's number of PQ sub-vectors for a dimension.
fn sub_vectors(dim: usize) -> usize {
    if dim.is_multiple_of(16) {
        dim / 16
    } else if dim.is_multiple_of(8) {
        dim / 8
    } else {
        1
    }
}

/// The vector index's parameters, as LanceDB sets them for the same type.
fn vector_params(spec: &IndexSpec, dim: usize) -> VectorIndexParams {
    let distance = distance(spec.metric);
    let ivf = IvfBuildParams::default();
    match spec.kind {
        IndexType::IvfPq => {
            let mut pq = PQBuildParams::new(sub_vectors(dim), 8);
            pq.max_iters = ivf.max_iters;
            VectorIndexParams::with_ivf_pq_params(distance, ivf, pq)
        }
        IndexType::Hnsw => {
            let hnsw = HnswBuildParams::default().num_edges(20).ef_construction(300);
            let sq = SQBuildParams {
                sample_rate: ivf.sample_rate,
                ..Default::default()
            };
            VectorIndexParams::with_ivf_hnsw_sq_params(distance, ivf, hnsw, sq)
        }
    }
}

/// Build (or replace) the vector index on `column`.
async fn build_vector_index(table: &mut Dataset, column: &str, spec: &IndexSpec) -> Result<()> {
    let schema: arrow::datatypes::Schema = table.schema().into();
    let Some(dim) = crate::sink::dimension(&schema, column) else {
        return Err(ConnectorError::user(format!(
            "`{column}` is not a fixed-size vector column"
        )));
    };
    let params = vector_params(spec, dim as usize);
    table
        .create_index(&[column], LanceIndexType::Vector, None, &params, true)
        .await
        .map(|_| ())
        .map_err(|e| lance_err("building the vector index", e))
}

/// Build (or replace) the vector index of the sink's table now, whatever its size.
/// Without an `index` in the config, an HNSW index on cosine distance.
pub async fn rebuild_index(uri: &str, config: &LanceDbSinkConfig) -> Result<String> {
    let spec = config.index.clone().unwrap_or(IndexSpec {
        kind: IndexType::Hnsw,
        metric: Metric::Cosine,
        after_rows: 0,
    });
    let Some(mut table) = crate::open(uri, &config.table, &config.storage_options()).await? else {
        return Err(ConnectorError::user(format!(
            "no table `{}` at {uri} (has the pipeline run yet?)",
            config.table
        )));
    };
    let rows = table
        .count_rows(None)
        .await
        .map_err(|e| lance_err("counting rows", e))?;
    build_vector_index(&mut table, &config.embedding_column, &spec).await?;
    Ok(format!(
        "built a {:?} index ({:?}) on `{}` over {rows} rows",
        spec.kind, spec.metric, config.embedding_column
    ))
}
