//! The `documents` batch every source emits, and the column names stages rely on.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

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
