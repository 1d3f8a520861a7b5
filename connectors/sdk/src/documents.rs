//! The `documents` batch every source emits, and the column names stages rely on.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, LargeBinaryBuilder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;

pub const DOC_ID: &str = "doc_id";
pub const VERSION: &str = "version";
pub const OP: &str = "op";
pub const CONTENT: &str = "content";
pub const CONTENT_TYPE: &str = "content_type";
pub const MODIFIED_AT: &str = "modified_at";
pub const METADATA: &str = "metadata";

/// `op` of a row that inserts or replaces a document.
pub const OP_UPSERT: &str = "upsert";
/// `op` of a row that removes every row of its `doc_id`.
pub const OP_DELETE: &str = "delete";

/// Schema of the `documents` batch: `doc_id`, `version`, `op`, `content`,
/// `content_type`, `modified_at`, `metadata`. A `delete` row has null `content`.
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(DOC_ID, DataType::Utf8, false),
        Field::new(VERSION, DataType::Utf8, false),
        Field::new(OP, DataType::Utf8, false),
        Field::new(CONTENT, DataType::LargeBinary, true),
        Field::new(CONTENT_TYPE, DataType::Utf8, true),
        Field::new(
            MODIFIED_AT,
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new(METADATA, DataType::Utf8, true),
    ]))
}

/// One row of a `documents` batch, as a source builds it. `content: None` makes
/// a `delete` row.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DocumentRow {
    pub doc_id: String,
    pub version: String,
    pub content: Option<Vec<u8>>,
    pub content_type: Option<String>,
    /// Microseconds since the epoch, UTC.
    pub modified_at: Option<i64>,
    /// A JSON object.
    pub metadata: Option<String>,
}

impl DocumentRow {
    /// A row that removes every row of `doc_id`.
    pub fn delete(doc_id: String, version: String) -> Self {
        DocumentRow {
            doc_id,
            version,
            ..Default::default()
        }
    }
}

/// The `documents` batch of `rows`.
pub fn to_batch(rows: &[DocumentRow]) -> crate::Result<RecordBatch> {
    let mut doc_id = StringBuilder::new();
    let mut version = StringBuilder::new();
    let mut op = StringBuilder::new();
    let mut content = LargeBinaryBuilder::new();
    let mut ctype = StringBuilder::new();
    let mut modified = TimestampMicrosecondBuilder::new().with_timezone("UTC");
    let mut metadata = StringBuilder::new();
    for r in rows {
        doc_id.append_value(&r.doc_id);
        version.append_value(&r.version);
        op.append_value(if r.content.is_some() { OP_UPSERT } else { OP_DELETE });
        content.append_option(r.content.as_deref());
        ctype.append_option(r.content_type.as_deref());
        modified.append_option(r.modified_at);
        metadata.append_option(r.metadata.as_deref());
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(doc_id.finish()),
        Arc::new(version.finish()),
        Arc::new(op.finish()),
        Arc::new(content.finish()),
        Arc::new(ctype.finish()),
        Arc::new(modified.finish()),
        Arc::new(metadata.finish()),
    ];
    Ok(RecordBatch::try_new(schema(), columns)?)
}

/// The values of a text column of either width (`Utf8` or `LargeUtf8`).
pub fn text_values(a: &dyn Array) -> crate::Result<Vec<Option<&str>>> {
    Ok(match a.data_type() {
        DataType::Utf8 => a.as_string::<i32>().iter().collect(),
        DataType::LargeUtf8 => a.as_string::<i64>().iter().collect(),
        other => {
            return Err(crate::ConnectorError::internal(format!(
                "expected text, found {other}"
            )))
        }
    })
}
