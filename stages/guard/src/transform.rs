//! The guard on one batch: scan each row's text, decide each row's fate,
//! rewrite the text, and build the findings column, the audit rows and the
//! dead letters.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, LargeStringArray, StringArray};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use sluice_connector_sdk::documents::{text_values, DOC_ID, OP, OP_DELETE, VERSION};
use sluice_connector_sdk::stage::{StageOutput, Transform};
use sluice_connector_sdk::{ConnectorError, DeadLetter, Result};

use crate::columns::{audit_batch, findings_column, CHUNK_ID};
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

/// A text column of `batch` (empty strings where it has none: the doc_id and
/// version of a batch that lacks them).
fn values<'a>(batch: &'a RecordBatch, name: &str) -> Result<Vec<&'a str>> {
    Ok(match batch.column_by_name(name) {
        Some(c) => text_values(c.as_ref())?
            .into_iter()
            .map(Option::unwrap_or_default)
            .collect(),
        None => vec![""; batch.num_rows()],
    })
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

    fn texts<'a>(&self, batch: &'a RecordBatch) -> Result<Vec<Option<&'a str>>> {
        let col = batch
            .column_by_name(&self.column)
            .ok_or_else(|| ConnectorError::internal(format!("the input has no column `{}`", self.column)))?;
        text_values(col.as_ref())
    }
}

impl Transform for Guard {
    fn apply(&self, batch: RecordBatch) -> Result<StageOutput> {
        let texts = self.texts(&batch)?;
        let rows: Vec<Row> = texts
            .iter()
            .map(|t| t.map(|t| self.row(t)).unwrap_or_default())
            .collect();
        let docs = values(&batch, DOC_ID)?;
        let chunk_level = batch.schema().field_with_name(CHUNK_ID).is_ok();

        // A document with a dead-lettered row leaves whole, with one letter.
        let mut letters: Vec<DeadLetter> = Vec::new();
        let mut quarantined: HashSet<&str> = HashSet::new();
        for (i, row) in rows.iter().enumerate() {
            if row.removed == Some(Action::DeadLetter) && quarantined.insert(docs[i]) {
                letters.push(self.letter(&batch, &docs, i, &rows)?);
            }
        }
        for row in &rows {
            for r in &row.recorded {
                self.metrics.found(r.kind, r.action);
            }
        }
        let keep: BooleanArray = (0..batch.num_rows())
            .map(|i| {
                let gone =
                    quarantined.contains(docs[i]) || (chunk_level && rows[i].removed == Some(Action::Drop));
                Some(!gone)
            })
            .collect();
        let recorded: Vec<&[Recorded]> = rows.iter().map(|r| r.recorded.as_slice()).collect();
        let audit = audit_batch(&self.audit, &batch, &recorded)?;
        let out = self.output_batch(&batch, &texts, &rows, &recorded, chunk_level)?;
        let out = filter_record_batch(&out, &keep)?;
        let mut output = StageOutput::new(out).with_dead_letters(letters);
        output.audit = (audit.num_rows() > 0).then_some(audit);
        Ok(output)
    }
}

impl Guard {
    /// The letter of row `i`'s document: the kinds and rules found in all of
    /// its rows, never the values.
    fn letter(&self, batch: &RecordBatch, docs: &[&str], i: usize, rows: &[Row]) -> Result<DeadLetter> {
        let mut found: Vec<String> = Vec::new();
        let same_doc = rows.iter().zip(docs).filter(|(_, d)| **d == docs[i]);
        for r in same_doc.flat_map(|(row, _)| &row.recorded) {
            let item = format!("{} ({})", r.kind.name(), r.rule);
            if !found.contains(&item) {
                found.push(item);
            }
        }
        Ok(DeadLetter {
            doc_id: docs[i].to_string(),
            version: values(batch, VERSION)?[i].to_string(),
            stage: self.stage.clone(),
            error: format!("quarantined by the guard: found {}", found.join(", ")),
        })
    }

    /// The input with the text rewritten, a whole document that is dropped
    /// turned into a delete, and the findings column added.
    fn output_batch(
        &self,
        batch: &RecordBatch,
        texts: &[Option<&str>],
        rows: &[Row],
        recorded: &[&[Recorded]],
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
                        rows[i].text.as_deref().or(texts[i])
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
        let valid: Vec<bool> = rows
            .iter()
            .zip(texts)
            .map(|(r, t)| t.is_some() && !to_delete(r))
            .collect();
        columns.push(findings_column(recorded, valid));
        Ok(RecordBatch::try_new(self.output.clone(), columns)?)
    }
}
