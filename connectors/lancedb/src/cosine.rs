//! One scale for cosine distances, indexed or not.
//!
//! Lance's quantized vector indexes (IVF-PQ, IVF-SQ, IVF-RQ, IVF-HNSW-PQ,
//! IVF-HNSW-SQ) answer a cosine search with the squared L2 distance of the
//! normalized vectors, which ranks the same but is twice the cosine distance;
//! the rows no index covers yet are scanned and get the cosine distance
//! itself. Both go into one top-k, so without a correction a new, unindexed
//! row would beat an indexed one twice as far from it. LanceDB halves the
//! index's distances in the plan, before the two are merged; so does this,
//! and a search reads `1 - cos` wherever its rows came from (as pgvector's
//! `<=>` does).

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::common::ScalarValue;
use datafusion::logical_expr::Operator;
use datafusion::physical_expr::expressions::{BinaryExpr, Column, Literal};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::{with_new_children_if_necessary, ExecutionPlan, PhysicalExpr};
use lance::index::DatasetIndexInternalExt;
use lance::io::exec::ANNIvfSubIndexExec;
use lance_index::metrics::NoOpMetricsCollector;
use lance_index::vector::DIST_COL;
use lance_index::IndexType;
use lance_linalg::distance::DistanceType;

/// What a normalized squared L2 distance is multiplied by to read as cosine.
const COSINE_ANN_SCALE: f32 = 0.5;

/// `plan` with the distances of every cosine search over a quantized index
/// halved, right above the index's node.
pub async fn normalize(plan: Arc<dyn ExecutionPlan>) -> lance::Result<Arc<dyn ExecutionPlan>> {
    let scaled = quantized_cosine_indexes(plan.as_ref()).await?;
    if scaled.is_empty() {
        return Ok(plan);
    }
    rewrite(plan, &scaled)
}

fn ann_nodes<'a>(plan: &'a dyn ExecutionPlan, out: &mut Vec<&'a ANNIvfSubIndexExec>) {
    if let Some(ann) = plan.downcast_ref::<ANNIvfSubIndexExec>() {
        out.push(ann);
        return;
    }
    for child in plan.children() {
        ann_nodes(child.as_ref(), out);
    }
}

/// The ids of the index segments that score a cosine search as normalized L2.
async fn quantized_cosine_indexes(plan: &dyn ExecutionPlan) -> lance::Result<HashSet<String>> {
    let mut nodes = Vec::new();
    ann_nodes(plan, &mut nodes);
    let mut out = HashSet::new();
    for ann in nodes {
        if ann.query().metric_type != Some(DistanceType::Cosine) {
            continue;
        }
        for meta in ann.indices() {
            let index = ann
                .dataset()
                .open_vector_index(&ann.query().column, &meta.uuid, &NoOpMetricsCollector)
                .await?;
            if matches!(
                index.index_type(),
                IndexType::IvfPq
                    | IndexType::IvfSq
                    | IndexType::IvfRq
                    | IndexType::IvfHnswPq
                    | IndexType::IvfHnswSq
            ) {
                out.insert(meta.uuid.to_string());
            }
        }
    }
    Ok(out)
}

fn rewrite(plan: Arc<dyn ExecutionPlan>, scaled: &HashSet<String>) -> lance::Result<Arc<dyn ExecutionPlan>> {
    if let Some(ann) = plan.downcast_ref::<ANNIvfSubIndexExec>() {
        let all = ann.indices().iter().all(|i| scaled.contains(&i.uuid.to_string()));
        return if all { scale(plan) } else { Ok(plan) };
    }
    let children = plan
        .children()
        .into_iter()
        .map(|c| rewrite(c.clone(), scaled))
        .collect::<lance::Result<Vec<_>>>()?;
    Ok(with_new_children_if_necessary(plan, children)?)
}

/// `plan` with its distance column multiplied by [`COSINE_ANN_SCALE`].
fn scale(plan: Arc<dyn ExecutionPlan>) -> lance::Result<Arc<dyn ExecutionPlan>> {
    let schema = plan.schema();
    let columns: Vec<(Arc<dyn PhysicalExpr>, String)> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, field)| {
            let column: Arc<dyn PhysicalExpr> = Arc::new(Column::new(field.name(), i));
            let expr: Arc<dyn PhysicalExpr> = if field.name() == DIST_COL {
                let half = Arc::new(Literal::new(ScalarValue::Float32(Some(COSINE_ANN_SCALE))));
                Arc::new(BinaryExpr::new(column, Operator::Multiply, half))
            } else {
                column
            };
            (expr, field.name().clone())
        })
        .collect();
    Ok(Arc::new(ProjectionExec::try_new(columns, plan)?))
}
