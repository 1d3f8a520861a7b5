//! The shapes the guard writes: the findings column on every row, and the
//! rows of its audit table (`guard_findings` in `sluice sql`). Neither ever
//! holds a matched value.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Float32Array, ListArray, StringArray, StructArray, UInt64Array,
};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use sluice_connector_sdk::documents::DOC_ID;
use sluice_connector_sdk::Result;

use crate::rewrite::Recorded;

/// The chunk stage's id column: when the input has it, the guard works on
/// chunks and names them in its audit rows.
pub const CHUNK_ID: &str = "chunk_id";

/// The audit table's name in `sluice sql`.
pub const AUDIT_TABLE: &str = "guard_findings";

/// One finding: offsets in Unicode scalar values into the text as it leaves
/// the stage.
pub fn finding_fields() -> Fields {
    Fields::from(vec![
        Field::new("kind", DataType::Utf8, false),
        Field::new("start", DataType::UInt64, false),
        Field::new("end", DataType::UInt64, false),
        Field::new("rule", DataType::Utf8, false),
        Field::new("score", DataType::Float32, false),
        Field::new("action", DataType::Utf8, false),
    ])
}

/// The findings column's type.
pub fn findings_type() -> DataType {
    DataType::List(Arc::new(Field::new(
        "item",
        DataType::Struct(finding_fields()),
        false,
    )))
}

/// The audit rows' columns (the runtime adds `stage` and `epoch`).
pub fn audit_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("document", DataType::Utf8, true),
        Field::new("chunk", DataType::Utf8, true),
        Field::new("kind", DataType::Utf8, false),
        Field::new("rule", DataType::Utf8, false),
        Field::new("action", DataType::Utf8, false),
        Field::new("score", DataType::Float32, false),
        Field::new("start", DataType::UInt64, false),
        Field::new("end", DataType::UInt64, false),
    ]))
}

/// A text column of one name per finding.
fn names(all: &[&Recorded], f: fn(&Recorded) -> &'static str) -> ArrayRef {
    Arc::new(all.iter().map(|r| Some(f(r))).collect::<StringArray>())
}

/// The findings column: each row's findings (`recorded[i]`), null where
/// `valid[i]` is false (no text), empty for a clean text.
pub fn findings_column(recorded: &[&[Recorded]], valid: Vec<bool>) -> ArrayRef {
    let all: Vec<&Recorded> = recorded.iter().flat_map(|r| r.iter()).collect();
    let offsets = OffsetBuffer::from_lengths(recorded.iter().map(|r| r.len()));
    let values = StructArray::new(
        finding_fields(),
        vec![
            names(&all, |r| r.kind.name()),
            Arc::new(all.iter().map(|r| r.start).collect::<UInt64Array>()),
            Arc::new(all.iter().map(|r| r.end).collect::<UInt64Array>()),
            names(&all, |r| r.rule),
            Arc::new(all.iter().map(|r| r.score).collect::<Float32Array>()),
            names(&all, |r| r.action.name()),
        ],
        None,
    );
    let DataType::List(item) = findings_type() else {
        unreachable!("findings_type is a list")
    };
    Arc::new(ListArray::new(
        item,
        offsets,
        Arc::new(values),
        Some(NullBuffer::from(valid)),
    ))
}

/// One audit row per finding of each row of `batch`.
pub fn audit_batch(schema: &SchemaRef, batch: &RecordBatch, recorded: &[&[Recorded]]) -> Result<RecordBatch> {
    let col = |name: &str| {
        batch
            .column_by_name(name)
            .and_then(|c| c.as_string_opt::<i32>().cloned())
    };
    let (docs, chunks) = (col(DOC_ID), col(CHUNK_ID));
    let mut document = Vec::new();
    let mut chunk = Vec::new();
    let mut all: Vec<&Recorded> = Vec::new();
    for (i, row) in recorded.iter().enumerate() {
        for r in row.iter() {
            document.push(docs.as_ref().map(|d| d.value(i).to_string()));
            chunk.push(
                chunks
                    .as_ref()
                    .and_then(|c| c.is_valid(i).then(|| c.value(i).to_string())),
            );
            all.push(r);
        }
    }
    Ok(RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(document)),
            Arc::new(StringArray::from(chunk)),
            names(&all, |r| r.kind.name()),
            names(&all, |r| r.rule),
            names(&all, |r| r.action.name()),
            Arc::new(all.iter().map(|r| r.score).collect::<Float32Array>()),
            Arc::new(all.iter().map(|r| r.start).collect::<UInt64Array>()),
            Arc::new(all.iter().map(|r| r.end).collect::<UInt64Array>()),
        ],
    )?)
}
