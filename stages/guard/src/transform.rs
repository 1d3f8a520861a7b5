//! The guard on one batch: scan each row's text, decide each row's fate,
//! rewrite the text, and build the findings column, the audit rows and the
//! dead letters.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float32Array, LargeStringArray, ListArray, StringArray,
    StructArray, UInt64Array,
};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, Fields, SchemaRef};
use arrow::record_batch::RecordBatch;
use sluice_connector_sdk::documents::{DOC_ID, OP, OP_DELETE, VERSION};
use sluice_connector_sdk::stage::{StageOutput, Transform};
use sluice_connector_sdk::{ConnectorError, DeadLetter, Result};

use crate::columns::{audit_batch, finding_fields, CHUNK_ID};
use crate::kind::{Action, Kind};
use crate::metrics::GuardMetrics;
use crate::rewrite::{Recorded, Rewriter};
use crate::scan::Scanner;

pub struct Guard {
    pub stage: String,
    pub scanner: Scanner,
    pub rewriter: Rewriter,
    pub action: Action,
    pub per_kind: HashMap<Kind, Action>,
    pub column: String,
    pub output: SchemaRef,
    pub audit: SchemaRef,
    pub metrics: Arc<GuardMetrics>,
}

/// What became of one row.
#[derive(Default)]
struct Row {
    /// The rewritten text, when a span changed.
    text: Option<String>,
    recorded: Vec<Recorded>,
    /// Drop or dead letter: the whole row goes.
    removed: Option<Action>,
}

/// A text column of either width.
enum Texts<'a> {
    Small(&'a StringArray),
    Large(&'a LargeStringArray),
}

impl Texts<'_> {
    fn get(&self, i: usize) -> Option<&str> {
        match self {
            Texts::Small(a) => a.is_valid(i).then(|| a.value(i)),
            Texts::Large(a) => a.is_valid(i).then(|| a.value(i)),
        }
    }
}

fn strings<'a>(batch: &'a RecordBatch, name: &str) -> Option<&'a StringArray> {
    batch.column_by_name(name).and_then(|c| c.as_string_opt::<i32>())
}

impl Guard {
    fn action_for(&self, kind: Kind) -> Action {
        self.per_kind.get(&kind).copied().unwrap_or(self.action)
    }

    fn row(&self, text: &str) -> Row {
        self.metrics.texts.add(1);
        self.metrics.bytes.add(text.len() as u64);
        let findings = self.scanner.scan(text);
        if findings.is_empty() {
            return Row::default();
        }
        let actions: Vec<Action> = findings.iter().map(|f| self.action_for(f.kind)).collect();
        let removed = actions.iter().copied().filter(|a| a.removes_row()).max();
        let (text, mut recorded) = match removed {
            Some(_) => self
                .rewriter
                .apply(text, &findings, &vec![Action::Flag; findings.len()]),
            None => self.rewriter.apply(text, &findings, &actions),
        };
        if let Some(a) = removed {
            recorded.iter_mut().for_each(|r| r.action = a);
        }
        Row {
            text: if removed.is_some() { None } else { text },
            recorded,
            removed,
        }
    }

    fn texts<'a>(&self, batch: &'a RecordBatch) -> Result<Texts<'a>> {
        let col = batch
            .column_by_name(&self.column)
            .ok_or_else(|| ConnectorError::internal(format!("the input has no column `{}`", self.column)))?;
        match col.data_type() {
            DataType::Utf8 => Ok(Texts::Small(col.as_string::<i32>())),
            DataType::LargeUtf8 => Ok(Texts::Large(col.as_string::<i64>())),
            other => Err(ConnectorError::internal(format!(
                "column `{}` is {other}, not text",
                self.column
            ))),
        }
    }
}

impl Transform for Guard {
    fn apply(&self, batch: RecordBatch) -> Result<StageOutput> {
        let texts = self.texts(&batch)?;
        let rows: Vec<Row> = (0..batch.num_rows())
            .map(|i| texts.get(i).map(|t| self.row(t)).unwrap_or_default())
            .collect();
        let doc_ids = strings(&batch, DOC_ID);
        let doc = |i: usize| doc_ids.map(|d| d.value(i).to_string()).unwrap_or_default();
        let chunk_level = batch.schema().field_with_name(CHUNK_ID).is_ok();

        // A document with a dead-lettered row leaves whole, with one letter.
        let mut letters: Vec<DeadLetter> = Vec::new();
        let mut quarantined: HashMap<String, usize> = HashMap::new();
        for (i, row) in rows.iter().enumerate() {
            if row.removed == Some(Action::DeadLetter) && !quarantined.contains_key(&doc(i)) {
                quarantined.insert(doc(i), letters.len());
                letters.push(self.letter(&batch, i, &rows));
            }
        }
        for row in &rows {
            for r in &row.recorded {
                self.metrics.found(r.kind, r.action);
            }
        }
        let keep: BooleanArray = (0..batch.num_rows())
            .map(|i| {
                let gone = quarantined.contains_key(&doc(i))
                    || (chunk_level && rows[i].removed == Some(Action::Drop));
                Some(!gone)
            })
            .collect();
        let audit = audit_batch(
            &self.audit,
            &batch,
            &rows.iter().map(|r| r.recorded.as_slice()).collect::<Vec<_>>(),
        )?;
        let out = self.output_batch(&batch, &texts, &rows, chunk_level)?;
        let out = filter_record_batch(&out, &keep)?;
        let mut output = StageOutput::new(out).with_dead_letters(letters);
        output.audit = (audit.num_rows() > 0).then_some(audit);
        Ok(output)
    }
}

impl Guard {
    /// The letter of row `i`'s document: the kinds and rules found in all of
    /// its rows, never the values.
    fn letter(&self, batch: &RecordBatch, i: usize, rows: &[Row]) -> DeadLetter {
        let ids = strings(batch, DOC_ID);
        let doc_id = ids.map(|d| d.value(i).to_string()).unwrap_or_default();
        let mut found: Vec<String> = Vec::new();
        for (j, row) in rows.iter().enumerate() {
            if ids.map(|d| d.value(j)) == ids.map(|d| d.value(i)) {
                for r in &row.recorded {
                    let item = format!("{} ({})", r.kind.name(), r.rule);
                    if !found.contains(&item) {
                        found.push(item);
                    }
                }
            }
        }
        DeadLetter {
            doc_id,
            version: strings(batch, VERSION)
                .map(|v| v.value(i).to_string())
                .unwrap_or_default(),
            stage: self.stage.clone(),
            error: format!("quarantined by the guard: found {}", found.join(", ")),
        }
    }

    /// The input with the text rewritten, a whole document that is dropped
    /// turned into a delete, and the findings column added.
    fn output_batch(
        &self,
        batch: &RecordBatch,
        texts: &Texts<'_>,
        rows: &[Row],
        chunk_level: bool,
    ) -> Result<RecordBatch> {
        let to_delete = |r: &Row| !chunk_level && r.removed == Some(Action::Drop);
        let changed = rows.iter().any(|r| r.text.is_some() || to_delete(r));
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns() + 1);
        for (field, col) in batch.schema().fields().iter().zip(batch.columns()) {
            let name = field.name().as_str();
            if name == self.column && changed {
                let value = |i: usize| {
                    if to_delete(&rows[i]) {
                        None
                    } else {
                        rows[i].text.as_deref().or(texts.get(i))
                    }
                };
                columns.push(match col.data_type() {
                    DataType::Utf8 => Arc::new((0..rows.len()).map(value).collect::<StringArray>()),
                    _ => Arc::new((0..rows.len()).map(value).collect::<LargeStringArray>()),
                });
            } else if name == OP && rows.iter().any(to_delete) {
                let ops = col.as_string::<i32>();
                let op = |i: usize| {
                    if to_delete(&rows[i]) {
                        Some(OP_DELETE)
                    } else {
                        ops.is_valid(i).then(|| ops.value(i))
                    }
                };
                columns.push(Arc::new((0..rows.len()).map(op).collect::<StringArray>()));
            } else {
                columns.push(col.clone());
            }
        }
        columns.push(self.findings_column(texts, rows, &to_delete));
        Ok(RecordBatch::try_new(self.output.clone(), columns)?)
    }

    /// `List<Struct<kind, start, end, rule, score, action>>`: empty for a
    /// clean text, null where there was no text.
    fn findings_column(&self, texts: &Texts<'_>, rows: &[Row], to_delete: &dyn Fn(&Row) -> bool) -> ArrayRef {
        let all: Vec<&Recorded> = rows.iter().flat_map(|r| &r.recorded).collect();
        let mut offsets = vec![0i32];
        let mut valid = Vec::with_capacity(rows.len());
        for (i, r) in rows.iter().enumerate() {
            offsets.push(offsets[offsets.len() - 1] + r.recorded.len() as i32);
            valid.push(texts.get(i).is_some() && !to_delete(r));
        }
        let name = |f: fn(&Recorded) -> &'static str| {
            Arc::new(all.iter().map(|r| Some(f(r))).collect::<StringArray>()) as ArrayRef
        };
        let fields: Fields = finding_fields();
        let values = StructArray::new(
            fields.clone(),
            vec![
                name(|r| r.kind.name()),
                Arc::new(all.iter().map(|r| r.start).collect::<UInt64Array>()),
                Arc::new(all.iter().map(|r| r.end).collect::<UInt64Array>()),
                name(|r| r.rule),
                Arc::new(all.iter().map(|r| r.score).collect::<Float32Array>()),
                name(|r| r.action.name()),
            ],
            None,
        );
        let item = Arc::new(arrow::datatypes::Field::new(
            "item",
            DataType::Struct(fields),
            false,
        ));
        Arc::new(ListArray::new(
            item,
            OffsetBuffer::new(offsets.into()),
            Arc::new(values),
            Some(NullBuffer::from(valid)),
        ))
    }
}
