//! What a sink that replaces documents as a whole writes for one epoch.
//!
//! A sink buffers an epoch's batches, then deletes every row of the epoch's
//! doc_ids and inserts the rows returned here: each document's last run of rows,
//! where a run is consecutive rows of one `version` (a document changed twice
//! within one epoch keeps only its newest rows, however many batches they span;
//! a `delete` row ends a run and only removes).

use std::collections::HashMap;

use arrow::array::{BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;

use crate::documents::{OP, OP_DELETE, VERSION};
use crate::{ConnectorError, Result};

pub struct EpochRows {
    /// Every document the epoch touched: delete all their rows first.
    pub doc_ids: Vec<String>,
    /// The rows to insert, in arrival order.
    pub batches: Vec<RecordBatch>,
}

use crate::documents::text_values as strings;

/// A text column of `b`, or all nulls when `b` has no such column.
fn optional<'a>(b: &'a RecordBatch, name: &str) -> Result<Vec<Option<&'a str>>> {
    match b.column_by_name(name) {
        Some(c) => strings(c.as_ref()),
        None => Ok(vec![None; b.num_rows()]),
    }
}

/// Where a document's last run began, and what that run is.
struct Run<'a> {
    start: (usize, usize),
    version: Option<&'a str>,
    deleted: bool,
}

/// The rows a replacing sink inserts for an epoch (deletes only remove), and the
/// doc_ids whose old rows it removes first.
pub fn epoch_rows(pending: &[RecordBatch], doc_column: &str) -> Result<EpochRows> {
    last_runs(pending, doc_column, false)
}

/// What an epoch leaves of each document: its last run of rows, a `delete` row
/// included, in arrival order. A change log (the Parquet sink) writes these, so
/// that a document changed or deleted twice within one epoch (Kafka can do that)
/// has one outcome per epoch.
pub fn epoch_net(pending: &[RecordBatch], doc_column: &str) -> Result<Vec<RecordBatch>> {
    Ok(last_runs(pending, doc_column, true)?.batches)
}

fn last_runs(pending: &[RecordBatch], doc_column: &str, keep_deletes: bool) -> Result<EpochRows> {
    let columns = pending
        .iter()
        .map(|b| {
            let docs = b
                .column_by_name(doc_column)
                .ok_or_else(|| ConnectorError::internal(format!("no column `{doc_column}`")))?;
            Ok((strings(docs.as_ref())?, optional(b, VERSION)?, optional(b, OP)?))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut runs: HashMap<&str, Run> = HashMap::new();
    let mut order = Vec::new();
    for (i, (docs, versions, ops)) in columns.iter().enumerate() {
        for (r, doc) in docs.iter().enumerate() {
            let Some(doc) = *doc else { continue };
            let (version, deleted) = (versions[r], ops[r] == Some(OP_DELETE));
            match runs.get_mut(doc) {
                None => {
                    order.push(doc.to_string());
                    runs.insert(
                        doc,
                        Run {
                            start: (i, r),
                            version,
                            deleted,
                        },
                    );
                }
                Some(run) if run.deleted || deleted || run.version != version => {
                    *run = Run {
                        start: (i, r),
                        version,
                        deleted,
                    };
                }
                Some(_) => {}
            }
        }
    }
    let mut batches = Vec::new();
    for (i, (b, (docs, _, ops))) in pending.iter().zip(&columns).enumerate() {
        let keep: BooleanArray = docs
            .iter()
            .zip(ops)
            .enumerate()
            .map(|(r, (d, op))| {
                Some(
                    d.and_then(|d| runs.get(d)).is_some_and(|run| (i, r) >= run.start)
                        && (keep_deletes || *op != Some(OP_DELETE)),
                )
            })
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

/// The rows of `batches` whose `doc_column` is one of `docs` (for writing a
/// subset of an epoch's documents, see [`crate::refuse`]).
pub fn rows_of(batches: &[RecordBatch], doc_column: &str, docs: &[String]) -> Result<Vec<RecordBatch>> {
    let wanted: std::collections::HashSet<&str> = docs.iter().map(String::as_str).collect();
    let mut out = Vec::new();
    for b in batches {
        let ids = b
            .column_by_name(doc_column)
            .ok_or_else(|| ConnectorError::internal(format!("no column `{doc_column}`")))?;
        let keep: BooleanArray = strings(ids.as_ref())?
            .iter()
            .map(|d| Some(d.is_some_and(|d| wanted.contains(d))))
            .collect();
        let kept = filter_record_batch(b, &keep)?;
        if kept.num_rows() > 0 {
            out.push(kept);
        }
    }
    Ok(out)
}

/// Each document's version in `batches` (its last row's), for dead letters.
pub fn versions(batches: &[RecordBatch], doc_column: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for b in batches {
        let (Some(Ok(ids)), Ok(vs)) = (
            b.column_by_name(doc_column).map(|c| strings(c.as_ref())),
            optional(b, VERSION),
        ) else {
            continue;
        };
        for (d, v) in ids.iter().zip(vs) {
            if let Some(d) = d {
                out.insert(d.to_string(), v.unwrap_or_default().to_string());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{AsArray, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn versioned(rows: &[(&str, &str, &str, &str)]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("doc_id", DataType::Utf8, true),
            Field::new("version", DataType::Utf8, true),
            Field::new("op", DataType::Utf8, true),
            Field::new("chunk", DataType::Utf8, true),
        ]));
        let col = |i: usize| {
            let values: Vec<&str> = rows.iter().map(|r| [r.0, r.1, r.2, r.3][i]).collect();
            Arc::new(StringArray::from(values)) as arrow::array::ArrayRef
        };
        RecordBatch::try_new(schema, vec![col(0), col(1), col(2), col(3)]).unwrap()
    }

    fn chunks(rows: &EpochRows) -> Vec<String> {
        rows.batches
            .iter()
            .flat_map(|b| {
                b.column_by_name("chunk")
                    .unwrap()
                    .as_string::<i32>()
                    .iter()
                    .map(|s| s.unwrap().to_string())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Regression: a document whose chunks of one version span two batches kept
    /// only the second batch's chunks (found by the sinks bench: 19,840 of 20,000).
    #[test]
    fn a_version_split_across_batches_keeps_all_its_rows() {
        let one = versioned(&[("a", "v1", "upsert", "a0"), ("a", "v1", "upsert", "a1")]);
        let two = versioned(&[("a", "v1", "upsert", "a2"), ("b", "v1", "upsert", "b0")]);
        let rows = epoch_rows(&[one, two], "doc_id").unwrap();
        assert_eq!(chunks(&rows), vec!["a0", "a1", "a2", "b0"]);
    }

    #[test]
    fn a_newer_version_or_a_delete_ends_the_run_before_it() {
        let one = versioned(&[("a", "v1", "upsert", "a-v1"), ("b", "v1", "upsert", "b-v1")]);
        let two = versioned(&[
            ("a", "v2", "upsert", "a-v2-0"),
            ("b", "v1", "delete", ""),
            ("c", "v1", "upsert", "c-old"),
        ]);
        let three = versioned(&[
            ("a", "v2", "upsert", "a-v2-1"),
            ("b", "v2", "upsert", "b-v2"),
            // Changed back to v1 after v2: only the last run counts.
            ("c", "v2", "upsert", "c-v2"),
            ("c", "v1", "upsert", "c-v1-again"),
        ]);
        let rows = epoch_rows(&[one, two, three], "doc_id").unwrap();
        assert_eq!(rows.doc_ids, vec!["a", "b", "c"]);
        assert_eq!(chunks(&rows), vec!["a-v2-0", "a-v2-1", "b-v2", "c-v1-again"]);
    }

    /// Regression: a Kafka topic can carry a document and its tombstone in one
    /// epoch; the change log showed the document as present.
    #[test]
    fn the_net_of_an_epoch_keeps_the_last_run_and_its_delete() {
        let one = versioned(&[("a", "p0@1", "upsert", "a-1"), ("b", "p0@2", "upsert", "b-2")]);
        let two = versioned(&[
            ("a", "p0@3", "delete", ""),
            ("b", "p0@4", "upsert", "b-4"),
            ("c", "p0@5", "delete", ""),
        ]);
        let net = epoch_net(&[one, two], "doc_id").unwrap();
        let rows: Vec<(String, String)> = net
            .iter()
            .flat_map(|b| {
                let docs = b.column(0).as_string::<i32>().clone();
                let ops = b.column(2).as_string::<i32>().clone();
                (0..b.num_rows())
                    .map(move |r| (docs.value(r).to_string(), ops.value(r).to_string()))
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(
            rows,
            [("a", "delete"), ("b", "upsert"), ("c", "delete")].map(|(d, o)| (d.to_string(), o.to_string()))
        );
    }
}
