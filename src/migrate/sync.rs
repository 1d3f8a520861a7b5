//! Bringing a migration's shadow to what the live table holds.
//!
//! Both tables are indexed by document (version and chunk ids). Every
//! document whose entry differs is read back from the live table and written
//! to the shadow through the shadow sink itself (the vectors made again by
//! the new model, the lineage stamped), a few documents per epoch, each epoch
//! committed before the next; documents the live table no longer has are
//! removed. The shadow is its own checkpoint: a copy killed at any point
//! starts again with the documents still differing, and texts already
//! embedded come from the embed cache. A stream writing both tables
//! meanwhile can leave a document behind (read from the live table just
//! before the stream changed it); the next pass finds it.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{new_null_array, Array, ArrayRef, AsArray, BooleanArray, RecordBatch, StringArray};
use arrow::compute::{cast, concat_batches, filter_record_batch, sort_to_indices, take_record_batch};
use arrow::datatypes::{DataType, SchemaRef};
use futures::StreamExt;
use sluice_connector_sdk::documents::{DOC_ID, OP, OP_DELETE, OP_UPSERT, VERSION};
use sluice_connector_sdk::read::SinkTable;
use sluice_connector_sdk::{InspectTable, Sink, SinkContext, SinkRole};

use super::{Progress, Record};
use crate::plan::{Plan, PlannedSink};
use crate::runtime::sink_query::ShapedSink;
use crate::{Error, Result};

const CHUNK_ID: &str = "chunk_id";
/// Text held in memory per pass of the copy; a larger copy makes more passes.
const PASS_BYTES: u64 = 256 << 20;
/// Passes over both tables before a sync gives up on catching a busy stream.
const ROUNDS: usize = 5;

/// What a table holds of one document.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct DocEntry {
    pub version: String,
    pub chunks: BTreeSet<String>,
    /// Rows: more than chunks when two writers raced on the document.
    pub rows: usize,
}

/// Each document a table holds.
#[derive(Debug, Default)]
pub struct Index {
    pub docs: HashMap<String, DocEntry>,
    /// Text bytes per document, to size the copy's passes.
    pub bytes: HashMap<String, u64>,
}

impl Index {
    pub fn chunks(&self) -> u64 {
        self.docs.values().map(|d| d.chunks.len() as u64).sum()
    }
}

/// The shadow holds `live`'s document as it is, each chunk once.
fn same(live: &DocEntry, shadow: Option<&DocEntry>) -> bool {
    shadow.is_some_and(|s| s.version == live.version && s.chunks == live.chunks && s.rows == s.chunks.len())
}

/// How the shadow stands against the live table.
#[derive(Debug, Clone, Default)]
pub struct Diff {
    /// Documents to write to the shadow (missing or different), sorted.
    pub copy: Vec<String>,
    /// Documents only the shadow has, with the version it holds.
    pub remove: Vec<(String, String)>,
    pub chunks_total: u64,
    /// Live chunks the shadow holds at the same version.
    pub chunks_done: u64,
    /// Text bytes of the documents to copy, to size the copy's passes.
    pub copy_bytes: u64,
}

impl Diff {
    pub fn is_empty(&self) -> bool {
        self.copy.is_empty() && self.remove.is_empty()
    }
}

/// The two sides of a migration, as planned.
pub struct Sides<'a> {
    pub live: &'a PlannedSink,
    pub shadow: &'a PlannedSink,
    live_table: Arc<dyn SinkTable>,
    shadow_table: Arc<dyn SinkTable>,
}

fn store(plan: &Plan, sink: &PlannedSink) -> Result<Arc<dyn SinkTable>> {
    match sink.config.inspect_table(&plan.sink_context(sink), &sink.input) {
        Some(InspectTable::Store(t)) => Ok(t),
        _ => Err(Error::Usage(format!(
            "sink `{}` has no table sluice can read",
            sink.name
        ))),
    }
}

impl<'a> Sides<'a> {
    pub fn of(plan: &'a Plan, record: &Record) -> Result<Sides<'a>> {
        let find = |generation| {
            super::plan::planned(plan, &record.sink, generation).ok_or_else(|| {
                Error::Internal(format!(
                    "the plan has no {generation:?} side of `{}`",
                    record.sink
                ))
            })
        };
        let (live, shadow) = (find(super::Served::Live)?, find(super::Served::Shadow)?);
        Ok(Sides {
            live,
            shadow,
            live_table: store(plan, live)?,
            shadow_table: store(plan, shadow)?,
        })
    }

    /// Index both tables and compare them.
    pub async fn diff(&self) -> Result<Diff> {
        let live = index(&self.live_table, &self.live.name).await?;
        let shadow = index(&self.shadow_table, &self.shadow.name).await?;
        let mut d = Diff {
            chunks_total: live.chunks(),
            ..Default::default()
        };
        for (doc, entry) in &live.docs {
            if same(entry, shadow.docs.get(doc)) {
                d.chunks_done += entry.chunks.len() as u64;
            } else {
                d.copy.push(doc.clone());
                d.copy_bytes += live.bytes.get(doc).copied().unwrap_or(0);
            }
        }
        d.copy.sort();
        for (doc, entry) in &shadow.docs {
            if !live.docs.contains_key(doc) {
                d.remove.push((doc.clone(), entry.version.clone()));
            }
        }
        d.remove.sort();
        Ok(d)
    }
}

/// Text of column `name` of `b` (cast), or an error naming the table.
fn texts(b: &RecordBatch, name: &str, table: &str) -> Result<StringArray> {
    let col = b.column_by_name(name).ok_or_else(|| {
        Error::Usage(format!(
            "table of sink `{table}` has no column `{name}`; a migration compares documents by doc_id, version and chunk_id"
        ))
    })?;
    Ok(cast(col, &DataType::Utf8)?.as_string::<i32>().clone())
}

/// Every document of `table`.
pub async fn index(table: &Arc<dyn SinkTable>, name: &str) -> Result<Index> {
    let mut out = Index::default();
    let mut scan = table
        .scan()
        .await
        .map_err(|e| Error::connector(format!("reading sink `{name}`"), e))?;
    while let Some(batch) = scan.next().await {
        let b = batch.map_err(|e| Error::connector(format!("reading sink `{name}`"), e))?;
        let (docs, versions, chunks) = (
            texts(&b, DOC_ID, name)?,
            texts(&b, VERSION, name)?,
            texts(&b, CHUNK_ID, name)?,
        );
        let text = b
            .column_by_name("text")
            .map(|c| cast(c, &DataType::Utf8))
            .transpose()?;
        for i in 0..b.num_rows() {
            if docs.is_null(i) {
                continue;
            }
            let entry = out
                .docs
                .entry(docs.value(i).to_string())
                .or_insert_with(|| DocEntry {
                    version: versions.value(i).to_string(),
                    ..Default::default()
                });
            entry.chunks.insert(chunks.value(i).to_string());
            entry.rows += 1;
            if let Some(t) = &text {
                *out.bytes.entry(docs.value(i).to_string()).or_default() +=
                    t.as_string::<i32>().value(i).len() as u64;
            }
        }
    }
    Ok(out)
}

/// `batch` (rows read from the live table) as the live sink receives them:
/// columns by name and type, `op` an upsert, columns the table does not keep
/// null.
fn as_input(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let n = batch.num_rows();
    let columns = schema
        .fields()
        .iter()
        .map(|f| -> Result<ArrayRef> {
            if f.name() == OP {
                return Ok(Arc::new(StringArray::from(vec![OP_UPSERT; n])));
            }
            match batch.column_by_name(f.name()) {
                Some(c) if c.data_type() == f.data_type() => Ok(c.clone()),
                Some(c) => Ok(cast(c, f.data_type())?),
                None if f.is_nullable() => Ok(new_null_array(f.data_type(), n)),
                None => Err(Error::Usage(format!(
                    "the live table has no column `{}`, which its sink requires",
                    f.name()
                ))),
            }
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// Rows that remove `docs` (doc_id, version) from a sink of `schema`.
fn removals(docs: &[(String, String)], schema: &SchemaRef) -> Result<RecordBatch> {
    let n = docs.len();
    let columns = schema
        .fields()
        .iter()
        .map(|f| -> Result<ArrayRef> {
            Ok(match f.name().as_str() {
                DOC_ID => Arc::new(StringArray::from_iter_values(docs.iter().map(|(d, _)| d))),
                VERSION => Arc::new(StringArray::from_iter_values(docs.iter().map(|(_, v)| v))),
                OP => Arc::new(StringArray::from(vec![OP_DELETE; n])),
                _ => new_null_array(f.data_type(), n),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// The copy's settings.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Documents per epoch of the copy.
    pub docs_per_epoch: usize,
}

/// The shadow sink as the copy writes it, opened (which creates its table):
/// a backfill writer of its own, its embed cache in the migration's folder.
pub async fn open_shadow(plan: &Plan, shadow: &PlannedSink) -> Result<(Box<dyn Sink>, SinkContext)> {
    let mut ctx = plan.sink_context(shadow);
    ctx.role = SinkRole::Backfill;
    ctx.state_dir = super::dir(&plan.state_dir);
    let what = format!("sink `{}`", shadow.name);
    let inner = shadow
        .config
        .build(&ctx, shadow.input.clone())
        .map_err(|e| Error::connector(&what, e))?;
    let mut sink = ShapedSink::without_query(inner, plan, shadow, &ctx.state_dir, ctx.dead_letters.clone())?;
    sink.open(0).await.map_err(|e| Error::connector(&what, e))?;
    Ok((sink, ctx))
}

/// Sync the shadow with the live table, recording progress in `record`
/// (saved after every epoch) and telling `report`. Returns the last diff:
/// empty when the shadow has caught up.
pub async fn catch_up(
    plan: &Plan,
    record: &mut Record,
    options: Options,
    report: &mut dyn FnMut(&Progress),
) -> Result<Diff> {
    let sides = Sides::of(plan, record)?;
    let (mut sink, ctx) = open_shadow(plan, sides.shadow).await?;
    let mut epoch = 0;
    let mut diff = sides.diff().await?;
    for _ in 0..ROUNDS {
        record.progress = Progress {
            chunks_total: diff.chunks_total,
            chunks_done: diff.chunks_done,
            docs_to_copy: diff.copy.len() as u64,
            updated_at: Some(super::now()),
            caught_up_at: record.progress.caught_up_at.clone(),
            ..Progress::default()
        };
        report(&record.progress);
        if diff.is_empty() {
            record.progress.caught_up_at = Some(super::now());
            break;
        }
        let mut copy = Copier {
            plan,
            sides: &sides,
            sink: sink.as_mut(),
            ctx: &ctx,
            epoch: &mut epoch,
            record: &mut *record,
            report: &mut *report,
        };
        copy.run(&diff, options).await?;
        diff = sides.diff().await?;
    }
    super::save(&plan.state_dir, record)?;
    sink.close()
        .await
        .map_err(|e| Error::connector(format!("sink `{}`", sides.shadow.name), e))?;
    Ok(diff)
}

/// One pass of copying.
struct Copier<'a, 'b> {
    plan: &'a Plan,
    sides: &'a Sides<'b>,
    sink: &'a mut dyn Sink,
    ctx: &'a SinkContext,
    epoch: &'a mut u64,
    record: &'a mut Record,
    report: &'a mut dyn FnMut(&Progress),
}

impl Copier<'_, '_> {
    async fn run(&mut self, diff: &Diff, options: Options) -> Result<()> {
        let started = Instant::now();
        let copied_before = self.record.progress.chunks_done;
        if !diff.remove.is_empty() {
            let rows = removals(&diff.remove, &self.sides.live.unstamped())?;
            self.commit(rows).await?;
            self.record.progress.docs_removed += diff.remove.len() as u64;
        }
        let passes = diff.copy_bytes.div_ceil(PASS_BYTES).max(1);
        for pass in 0..passes {
            let docs: HashSet<&str> = diff
                .copy
                .iter()
                .filter(|d| passes == 1 || fnv(d) % passes == pass)
                .map(String::as_str)
                .collect();
            let rows = self.read_live(&docs).await?;
            for slice in by_documents(&rows, options.docs_per_epoch)? {
                let docs_in = count_docs(&slice)?;
                let chunks = slice.num_rows() as u64;
                self.commit(as_input(&slice, &self.sides.live.unstamped())?)
                    .await?;
                let p = &mut self.record.progress;
                p.docs_copied += docs_in;
                p.chunks_done += chunks;
                let secs = started.elapsed().as_secs_f64().max(1e-3);
                p.chunks_per_second = (p.chunks_done - copied_before) as f64 / secs;
                p.updated_at = Some(super::now());
                super::save(&self.plan.state_dir, self.record)?;
                (self.report)(&self.record.progress);
            }
        }
        Ok(())
    }

    /// Every row of the live table whose document is in `docs`, in one batch.
    async fn read_live(&self, docs: &HashSet<&str>) -> Result<RecordBatch> {
        let name = &self.sides.live.name;
        let mut scan = self
            .sides
            .live_table
            .scan()
            .await
            .map_err(|e| Error::connector(format!("reading sink `{name}`"), e))?;
        let mut kept = Vec::new();
        while let Some(batch) = scan.next().await {
            let b = batch.map_err(|e| Error::connector(format!("reading sink `{name}`"), e))?;
            let ids = texts(&b, DOC_ID, name)?;
            let mask: BooleanArray = ids
                .iter()
                .map(|d| Some(d.is_some_and(|d| docs.contains(d))))
                .collect();
            kept.push(filter_record_batch(&b, &mask)?);
        }
        Ok(concat_batches(&self.sides.live_table.schema(), &kept)?)
    }

    /// Write `rows` as one epoch of the copy and commit it.
    async fn commit(&mut self, rows: RecordBatch) -> Result<()> {
        *self.epoch += 1;
        let what = format!("sink `{}`", self.sides.shadow.name);
        self.sink
            .write(*self.epoch, rows)
            .await
            .map_err(|e| Error::connector(&what, e))?;
        self.sink
            .commit(*self.epoch)
            .await
            .map_err(|e| Error::connector(&what, e))?;
        let refused = std::mem::take(
            &mut *self
                .ctx
                .dead_letters
                .lock()
                .map_err(|_| Error::Internal("dead letters poisoned".into()))?,
        );
        for letter in refused {
            tracing::warn!(doc_id = %letter.doc_id, "the shadow refused a document: {}", letter.error);
        }
        Ok(())
    }
}

/// `rows` sorted by document and cut into slices of `per` whole documents.
fn by_documents(rows: &RecordBatch, per: usize) -> Result<Vec<RecordBatch>> {
    if rows.num_rows() == 0 {
        return Ok(Vec::new());
    }
    let ids = cast(
        rows.column_by_name(DOC_ID)
            .ok_or_else(|| Error::Internal("no doc_id".into()))?,
        &DataType::Utf8,
    )?;
    let order = sort_to_indices(&ids, None, None)?;
    let sorted = take_record_batch(rows, &order)?;
    let ids = cast(sorted.column_by_name(DOC_ID).expect("kept"), &DataType::Utf8)?;
    let ids = ids.as_string::<i32>();
    let mut out = Vec::new();
    let (mut start, mut docs) = (0, 0);
    for i in 0..sorted.num_rows() {
        if i > 0 && ids.value(i) != ids.value(i - 1) {
            docs += 1;
            if docs == per.max(1) {
                out.push(sorted.slice(start, i - start));
                (start, docs) = (i, 0);
            }
        }
    }
    out.push(sorted.slice(start, sorted.num_rows() - start));
    Ok(out)
}

fn count_docs(rows: &RecordBatch) -> Result<u64> {
    let ids = cast(
        rows.column_by_name(DOC_ID)
            .ok_or_else(|| Error::Internal("no doc_id".into()))?,
        &DataType::Utf8,
    )?;
    let set: HashSet<&str> = ids.as_string::<i32>().iter().flatten().collect();
    Ok(set.len() as u64)
}

/// FNV-1a, to split documents among passes the same way every time.
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{Field, Schema};

    fn rows(docs: &[&str]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new(DOC_ID, DataType::Utf8, false),
            Field::new("n", DataType::Int32, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(docs.to_vec())),
                Arc::new(arrow::array::Int32Array::from(
                    (0..docs.len() as i32).collect::<Vec<_>>(),
                )),
            ],
        )
        .unwrap()
    }

    #[test]
    fn a_document_differs_by_version_chunks_or_a_chunk_written_twice() {
        let entry = |v: &str, chunks: &[&str], rows| DocEntry {
            version: v.into(),
            chunks: chunks.iter().map(|c| c.to_string()).collect(),
            rows,
        };
        let live = entry("v2", &["a", "b"], 2);
        assert!(same(&live, Some(&entry("v2", &["a", "b"], 2))));
        assert!(!same(&live, None));
        assert!(!same(&live, Some(&entry("v1", &["a", "b"], 2))));
        assert!(!same(&live, Some(&entry("v2", &["a"], 1))));
        assert!(!same(&live, Some(&entry("v2", &["a", "b"], 3))), "a chunk twice");
    }

    #[test]
    fn slices_hold_whole_documents() {
        let b = rows(&["b", "a", "c", "a", "b", "d", "c"]);
        let slices = by_documents(&b, 2).unwrap();
        let docs: Vec<Vec<String>> = slices
            .iter()
            .map(|s| {
                let ids = s.column(0).as_string::<i32>();
                ids.iter().map(|d| d.unwrap().to_string()).collect()
            })
            .collect();
        assert_eq!(docs, vec![vec!["a", "a", "b", "b"], vec!["c", "c", "d"]]);
        assert_eq!(by_documents(&b, 1).unwrap().len(), 4);
        assert_eq!(by_documents(&b, 10).unwrap().len(), 1);
    }

    #[test]
    fn read_back_rows_become_upserts_and_removals_deletes() {
        let input = Arc::new(Schema::new(vec![
            Field::new(DOC_ID, DataType::Utf8, false),
            Field::new(VERSION, DataType::Utf8, false),
            Field::new(OP, DataType::Utf8, false),
            Field::new("n", DataType::Int64, true),
            Field::new("content", DataType::LargeBinary, true),
        ]));
        let table = rows(&["a", "b"]);
        let with_version = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new(DOC_ID, DataType::Utf8, false),
                Field::new("n", DataType::Int32, true),
                Field::new(VERSION, DataType::Utf8, false),
            ])),
            vec![
                table.column(0).clone(),
                table.column(1).clone(),
                Arc::new(StringArray::from(vec!["v1", "v2"])),
            ],
        )
        .unwrap();
        let got = as_input(&with_version, &input).unwrap();
        assert_eq!(got.column(2).as_string::<i32>().value(1), OP_UPSERT);
        assert_eq!(got.column(3).data_type(), &DataType::Int64);
        assert_eq!(got.column(4).null_count(), 2);
        let gone = removals(&[("a".into(), "v1".into())], &input).unwrap();
        assert_eq!(gone.column(2).as_string::<i32>().value(0), OP_DELETE);
        assert_eq!(gone.column(1).as_string::<i32>().value(0), "v1");
        assert!(
            as_input(&rows(&["a"]), &input).is_err(),
            "a missing version is refused"
        );
    }
}
