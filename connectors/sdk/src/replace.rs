//! What a sink that replaces documents as a whole writes for one epoch.
//!
//! A sink buffers an epoch's batches, then deletes every row of the epoch's
//! doc_ids and inserts the rows returned here: the `upsert` rows of each
//! document's last version in the epoch (a document changed twice within one
//! epoch keeps only its newest rows; a `delete` row only removes).

use std::collections::HashMap;

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;
use arrow::datatypes::DataType;

use crate::documents::{OP, OP_DELETE};
use crate::{ConnectorError, Result};

pub struct EpochRows {
    /// Every document the epoch touched: delete all their rows first.
    pub doc_ids: Vec<String>,
    /// The rows to insert, in arrival order.
    pub batches: Vec<RecordBatch>,
}

fn strings(a: &dyn Array) -> Result<Vec<Option<&str>>> {
    Ok(match a.data_type() {
        DataType::Utf8 => a.as_string::<i32>().iter().collect(),
        DataType::LargeUtf8 => a.as_string::<i64>().iter().collect(),
        other => return Err(ConnectorError::internal(format!("expected text, found {other}"))),
    })
}

pub fn epoch_rows(pending: &[RecordBatch], doc_column: &str) -> Result<EpochRows> {
    let mut last: HashMap<String, usize> = HashMap::new();
    let mut order = Vec::new();
    for (i, b) in pending.iter().enumerate() {
        let docs = b
            .column_by_name(doc_column)
            .ok_or_else(|| ConnectorError::internal(format!("no column `{doc_column}`")))?;
        for d in strings(docs.as_ref())?.into_iter().flatten() {
            if last.insert(d.to_string(), i).is_none() {
                order.push(d.to_string());
            }
        }
    }
    let mut batches = Vec::new();
    for (i, b) in pending.iter().enumerate() {
        let docs = strings(b.column_by_name(doc_column).expect("checked").as_ref())?;
        let ops = match b.column_by_name(OP) {
            Some(o) => strings(o.as_ref())?,
            None => vec![None; b.num_rows()],
        };
        let keep: BooleanArray = docs
            .iter()
            .zip(&ops)
            .map(|(d, op)| Some(d.is_some_and(|d| last.get(d) == Some(&i)) && *op != Some(OP_DELETE)))
            .collect();
        let kept = filter_record_batch(b, &keep)?;
        if kept.num_rows() > 0 {
            batches.push(kept);
        }
    }
    Ok(EpochRows {
        doc_ids: order,
        batches,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::StringArray;
    use arrow::datatypes::{Field, Schema};

    use super::*;

    fn batch(rows: &[(&str, &str, &str)]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("doc_id", DataType::Utf8, true),
            Field::new("op", DataType::Utf8, true),
            Field::new("chunk", DataType::Utf8, true),
        ]));
        let col = |i: usize| {
            let values: Vec<&str> = rows.iter().map(|r| [r.0, r.1, r.2][i]).collect();
            Arc::new(StringArray::from(values)) as arrow::array::ArrayRef
        };
        RecordBatch::try_new(schema, vec![col(0), col(1), col(2)]).unwrap()
    }

    #[test]
    fn the_last_version_wins_and_deletes_only_remove() {
        let one = batch(&[("a", "upsert", "a1-old"), ("b", "upsert", "b1")]);
        let two = batch(&[("a", "upsert", "a1-new"), ("c", "delete", "")]);
        let rows = epoch_rows(&[one, two], "doc_id").unwrap();
        assert_eq!(rows.doc_ids, vec!["a", "b", "c"]);
        let chunks: Vec<String> = rows
            .batches
            .iter()
            .flat_map(|b| {
                b.column(2)
                    .as_string::<i32>()
                    .iter()
                    .map(|s| s.unwrap().to_string())
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(chunks, vec!["b1", "a1-new"]);
    }
}
