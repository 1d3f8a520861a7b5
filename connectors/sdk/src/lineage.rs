//! What made a row: the pipeline and its version, and what each stage says of
//! itself (the chunker's settings, the embedding model). A sink that keeps
//! lineage ([`SinkConfig::keeps_lineage`](crate::SinkConfig::keeps_lineage),
//! the vector stores) receives these as text columns on every row, so a change
//! of model or chunking shows in SQL (`GROUP BY model_fingerprint`).

use std::sync::Arc;

use arrow::array::{ArrayRef, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

use crate::Result;

/// The pipeline's name.
pub const PIPELINE_NAME: &str = "pipeline_name";
/// A hash of the compiled plan: the source, the stages and their settings
/// (the model's fingerprint included).
pub const PIPELINE_VERSION: &str = "pipeline_version";
/// A hash of the chunk stage's settings.
pub const CHUNK_SETTINGS: &str = "chunk_settings";
/// The embedding model: its folder's name, and a hash of its files and the
/// settings that change a vector.
pub const MODEL_ID: &str = "model_id";
pub const MODEL_FINGERPRINT: &str = "model_fingerprint";

/// Every lineage column sluice's own stages stamp.
pub const COLUMNS: &[&str] = &[
    PIPELINE_NAME,
    PIPELINE_VERSION,
    CHUNK_SETTINGS,
    MODEL_ID,
    MODEL_FINGERPRINT,
];

/// Column name → value, in the order they are stamped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lineage {
    pub columns: Vec<(String, String)>,
}

impl Lineage {
    /// The value of `column`, if this lineage has it.
    pub fn get(&self, column: &str) -> Option<&str> {
        self.columns
            .iter()
            .find(|(c, _)| c == column)
            .map(|(_, v)| v.as_str())
    }

    /// `input` with a text column for each lineage entry it does not already
    /// have (a column of the input's own keeps its values), and how many were
    /// added (they come last).
    pub fn extend(&self, input: &Schema) -> (SchemaRef, usize) {
        let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
        let before = fields.len();
        for (name, _) in &self.columns {
            if input.field_with_name(name).is_err() {
                fields.push(Field::new(name, DataType::Utf8, true));
            }
        }
        let added = fields.len() - before;
        (Arc::new(Schema::new(fields)), added)
    }

    /// `batch` with the last `added` columns of `schema` filled with their
    /// lineage values.
    pub fn stamp(&self, batch: RecordBatch, schema: &SchemaRef, added: usize) -> Result<RecordBatch> {
        let rows = batch.num_rows();
        let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
        for field in &schema.fields()[schema.fields().len() - added..] {
            let value = self.get(field.name()).unwrap_or_default();
            columns.push(Arc::new(StringArray::from(vec![value; rows])));
        }
        Ok(RecordBatch::try_new(schema.clone(), columns)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Array;

    #[test]
    fn lineage_columns_come_last_and_an_input_column_of_the_same_name_wins() {
        let lineage = Lineage {
            columns: vec![
                (PIPELINE_NAME.into(), "docs".into()),
                (MODEL_ID.into(), "minilm".into()),
            ],
        };
        let input = Schema::new(vec![
            Field::new("doc_id", DataType::Utf8, false),
            Field::new(MODEL_ID, DataType::Utf8, true),
        ]);
        let (schema, added) = lineage.extend(&input);
        assert_eq!(added, 1);
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["doc_id", MODEL_ID, PIPELINE_NAME]);
        let batch = RecordBatch::try_new(
            Arc::new(input),
            vec![
                Arc::new(StringArray::from(vec!["a", "b"])),
                Arc::new(StringArray::from(vec!["mine", "mine"])),
            ],
        )
        .unwrap();
        let out = lineage.stamp(batch, &schema, added).unwrap();
        let col = |n: &str| {
            let c = out.column_by_name(n).unwrap();
            let s = c.as_any().downcast_ref::<StringArray>().unwrap();
            (0..s.len()).map(|i| s.value(i).to_string()).collect::<Vec<_>>()
        };
        assert_eq!(col(PIPELINE_NAME), ["docs", "docs"]);
        assert_eq!(col(MODEL_ID), ["mine", "mine"]);
    }
}
