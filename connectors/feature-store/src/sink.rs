//! The running `feature_store` sink: offline first (durable at the barrier), then
//! online. A replayed epoch rewrites the same offline files and the same Redis
//! values, so it changes nothing.

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, SchemaRef, TimestampMicrosecondType};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use sluice_connector_sdk::writer::EpochWriter;
use sluice_connector_sdk::{ConnectorError, Epoch, Result, SinkContext};

use crate::config::{FeatureStoreSinkConfig, OnlineLayout, EVENT_TIMESTAMP};
use crate::feast_layout;
use crate::offline::OfflineStore;
use crate::online::{Layout, OnlineRow, OnlineStore};

/// A row the store cannot hold: (doc_id, version, why).
type Refused = (String, String, String);

pub struct FeatureStoreSink {
    config: FeatureStoreSinkConfig,
    input: SchemaRef,
    offline: OfflineStore,
    online: Option<OnlineStore>,
    name: String,
    base_dir: std::path::PathBuf,
    /// Base key of the online undo logs; none for a shared or backfill writer.
    undo: Option<String>,
    /// Where rows without an entity or an event time go.
    ctx: SinkContext,
    /// The feature columns, and the name of each one's field in an entity's
    /// hash: the column name, or in Feast's layout its hash (see
    /// [`feast_layout::feature_field`]).
    features: Vec<String>,
    fields: Vec<Vec<u8>>,
}

impl FeatureStoreSink {
    pub fn new(config: FeatureStoreSinkConfig, ctx: &SinkContext, input: SchemaRef) -> Result<Self> {
        let offline = OfflineStore {
            dir: config.offline_dir(&ctx.base_dir),
            schema: config.offline_schema(&input),
            event_column: config.event_timestamp.clone(),
            stem: ctx.epoch_stem(),
        };
        let features: Vec<String> = (config.features(&input).iter())
            .map(|f| f.name().clone())
            .collect();
        let feast = config
            .online
            .as_ref()
            .is_some_and(|o| o.layout == OnlineLayout::Feast);
        let fields = (features.iter())
            .map(|f| match feast {
                true => feast_layout::feature_field(&ctx.name, f),
                false => f.as_bytes().to_vec(),
            })
            .collect();
        Ok(FeatureStoreSink {
            undo: undo_key(&config, ctx),
            features,
            fields,
            config,
            input,
            offline,
            online: None,
            name: ctx.name.clone(),
            base_dir: ctx.base_dir.clone(),
            ctx: ctx.clone(),
        })
    }

    /// Take out the rows a feature store cannot hold (an entity column or the
    /// event time is null: the row has no key, or no time to order it by) and
    /// say why, per document; the rest of `batch` goes on.
    fn refuse_rows(&self, batch: RecordBatch) -> Result<(RecordBatch, Vec<Refused>)> {
        let mut why: Vec<Option<String>> = vec![None; batch.num_rows()];
        let checked = self
            .config
            .entity
            .iter()
            .map(|k| (k.as_str(), "entity column"))
            .chain([(self.config.event_timestamp.as_str(), "event time column")]);
        for (name, what) in checked {
            let Some(col) = batch.column_by_name(name) else {
                continue;
            };
            for (r, reason) in why.iter_mut().enumerate() {
                if col.is_null(r) && reason.is_none() {
                    *reason = Some(format!("the {what} `{name}` is null"));
                }
            }
        }
        self.refuse_out_of_feast_range(&batch, &mut why);
        if why.iter().all(Option::is_none) {
            return Ok((batch, Vec::new()));
        }
        let text = |name: &str| {
            batch
                .column_by_name(name)
                .and_then(|c| c.as_string_opt::<i32>().cloned())
        };
        let (docs, versions) = (text("doc_id"), text("version"));
        let keys = self.keys(&batch)?;
        let refused = why
            .iter()
            .enumerate()
            .filter_map(|(r, w)| {
                let doc = docs
                    .as_ref()
                    .filter(|d| d.is_valid(r))
                    .map(|d| d.value(r).to_string())
                    .unwrap_or_else(|| format!("entity {}", keys[r]));
                let version = versions
                    .as_ref()
                    .filter(|v| v.is_valid(r))
                    .map(|v| v.value(r).to_string())
                    .unwrap_or_default();
                Some((doc, version, w.clone()?))
            })
            .collect();
        let keep: arrow::array::BooleanArray = why.iter().map(|w| Some(w.is_none())).collect();
        Ok((arrow::compute::filter_record_batch(&batch, &keep)?, refused))
    }

    /// Feast's layout holds an unsigned 64-bit feature as Int64: a value past
    /// its range has no Feast value, so its row is refused.
    fn refuse_out_of_feast_range(&self, batch: &RecordBatch, why: &mut [Option<String>]) {
        let online = self.config.online.as_ref();
        if !online.is_some_and(|o| o.layout == OnlineLayout::Feast) {
            return;
        }
        for f in self.config.features(&self.input) {
            let Some(col) = batch.column_by_name(f.name()) else {
                continue;
            };
            let Some(values) = col.as_primitive_opt::<arrow::datatypes::UInt64Type>() else {
                continue;
            };
            for (r, reason) in why.iter_mut().enumerate() {
                if reason.is_none() && values.is_valid(r) && values.value(r) > i64::MAX as u64 {
                    *reason = Some(format!(
                        "feature `{}` is {}, past the Int64 range Feast holds online",
                        f.name(),
                        values.value(r)
                    ));
                }
            }
        }
    }

    /// The entity key of each row: the key columns' values joined by `|`.
    fn keys(&self, batch: &RecordBatch) -> Result<Vec<String>> {
        let opts = FormatOptions::default();
        let formatters = self
            .config
            .entity
            .iter()
            .map(|k| {
                let col = batch
                    .column_by_name(k)
                    .ok_or_else(|| ConnectorError::internal(format!("no column `{k}`")))?;
                ArrayFormatter::try_new(col.as_ref(), &opts).map_err(ConnectorError::from)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((0..batch.num_rows())
            .map(|r| {
                formatters
                    .iter()
                    .map(|f| f.value(r).to_string())
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect())
    }

    /// Write the epoch's online rows, connecting if need be.
    async fn write_online(
        &mut self,
        epoch: Epoch,
        deletes: &[RecordBatch],
        shaped: &[RecordBatch],
    ) -> Result<()> {
        let Some(spec) = &self.config.online else {
            return Ok(());
        };
        let feast = spec.layout == OnlineLayout::Feast;
        let mut work: Vec<(Vec<u8>, Option<OnlineRow>)> = Vec::new();
        for b in deletes {
            // A delete whose key has a null part (a document's delete row under
            // a per-chunk entity) addresses no entity: there is nothing to remove.
            for k in self.online_keys(b, feast)?.into_iter().flatten() {
                work.push((k, None));
            }
        }
        let (features, fields) = (&self.features, &self.fields);
        for b in shaped {
            let keys = (self.online_keys(b, feast)?.into_iter())
                .map(|k| k.ok_or_else(|| ConnectorError::internal("a row with a null key was not refused")))
                .collect::<Result<Vec<_>>>()?;
            let ts = b
                .column_by_name(EVENT_TIMESTAMP)
                .expect("shaped")
                .as_primitive::<TimestampMicrosecondType>();
            let cols: Vec<&ArrayRef> = (features.iter())
                .map(|f| b.column_by_name(f).expect("shaped"))
                .collect();
            let text = (!feast)
                .then(|| {
                    let opts = FormatOptions::default().with_null("");
                    (cols.iter())
                        .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts))
                        .collect::<std::result::Result<Vec<_>, _>>()
                })
                .transpose()?;
            for (r, key) in keys.into_iter().enumerate() {
                if ts.is_null(r) {
                    continue;
                }
                let mut values = Vec::with_capacity(features.len());
                for (i, f) in features.iter().enumerate() {
                    let value = match &text {
                        Some(text) => text[i].value(r).to_string().into_bytes(),
                        None => feast_layout::value_proto(cols[i], r).ok_or_else(|| {
                            ConnectorError::internal(format!("feature `{f}` has no Feast value"))
                        })?,
                    };
                    values.push((fields[i].clone(), value));
                }
                work.push((key, Some((ts.value(r), values))));
            }
        }
        let Some(online) = self.online().await? else {
            return Ok(());
        };
        online.apply(epoch, &work).await
    }

    /// Each row's Redis key: Feast's serialized entity key and project (none
    /// where a key column is null), or `<prefix>:<keys joined by |>`.
    fn online_keys(&self, batch: &RecordBatch, feast: bool) -> Result<Vec<Option<Vec<u8>>>> {
        if !feast {
            let prefix = self.config.online.as_ref().and_then(|o| o.prefix.as_deref());
            let prefix = prefix.unwrap_or_default();
            let keys = self.keys(batch)?;
            return Ok(keys
                .into_iter()
                .map(|k| Some(format!("{prefix}:{k}").into_bytes()))
                .collect());
        }
        let cols = (self.config.entity.iter())
            .map(|k| {
                let col = batch.column_by_name(k);
                col.map(|c| (k.as_str(), c))
                    .ok_or_else(|| ConnectorError::internal(format!("no column `{k}`")))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((0..batch.num_rows())
            .map(|r| feast_layout::entity_key(&cols, r, self.config.project()))
            .collect())
    }
}

impl FeatureStoreSink {
    /// `Redis at <url>`, for errors.
    fn redis(&self) -> String {
        let url = self
            .config
            .online
            .as_ref()
            .map(|o| o.url.as_str())
            .unwrap_or_default();
        format!("Redis at {}", sluice_connector_sdk::config::redact_url(url))
    }

    /// The online store, connected if need be; none when the sink has none.
    async fn online(&mut self) -> Result<Option<&mut OnlineStore>> {
        let Some(spec) = &self.config.online else {
            return Ok(None);
        };
        if self.online.is_none() {
            let ttl = spec.ttl.map(|t| t.0.as_millis() as u64).unwrap_or(0);
            let layout = match spec.layout {
                OnlineLayout::Sluice => Layout::Sluice,
                OnlineLayout::Feast => Layout::Feast {
                    ts_field: feast_layout::ts_field(&self.name),
                    fields: self.fields.clone(),
                },
            };
            let store = OnlineStore::connect(&spec.url, layout, ttl, self.undo.clone()).await?;
            self.online = Some(store);
        }
        Ok(self.online.as_mut())
    }

    /// Connect and undo the online writes of epochs after `committed`.
    async fn rollback_online(&mut self, committed: Epoch) -> Result<()> {
        let Some(online) = self.online().await? else {
            return Ok(());
        };
        let restored = online.rollback(committed).await?;
        if restored > 0 {
            tracing::info!(sink = %self.name, entities = restored, "restored online values from before epoch {}", committed + 1);
        }
        Ok(())
    }
}

/// The base key of this writer's online undo logs,
/// `__sluice:undo:<prefix or Feast project>:<writer>:<sink>` (`SinkContext::writer`): two
/// pipelines, or one pipeline with two state folders, never restore each
/// other's entities. None for a
/// shared or backfill writer, whose replay alone is exact (see [`SinkContext`]).
fn undo_key(config: &FeatureStoreSinkConfig, ctx: &SinkContext) -> Option<String> {
    let online = config.online.as_ref()?;
    ctx.role.rolls_back().then(|| {
        let space = online.prefix.as_deref().unwrap_or_else(|| config.project());
        format!("__sluice:undo:{space}:{}:{}", ctx.writer(), ctx.name)
    })
}

fn is_delete(batch: &RecordBatch) -> Vec<bool> {
    match batch.column_by_name("op") {
        Some(op) if op.data_type() == &DataType::Utf8 => op
            .as_string::<i32>()
            .iter()
            .map(|o| o == Some("delete"))
            .collect(),
        _ => vec![false; batch.num_rows()],
    }
}

/// An epoch ready to write: upserts shaped for the offline store, deletes,
/// and the rows refused.
pub struct Prepared {
    shaped: Vec<RecordBatch>,
    deletes: Vec<RecordBatch>,
    refused: Vec<Refused>,
}

/// The offline folder is local or an object store the sink does not ride out
/// an outage of: its failure stops the commit at once.
fn offline_failed(e: ConnectorError) -> ConnectorError {
    e.retryable(false)
}

#[async_trait::async_trait]
impl EpochWriter for FeatureStoreSink {
    type Prepared = Prepared;

    /// `Redis at <url>`, the store whose outage is ridden out.
    fn service(&self) -> String {
        self.redis()
    }

    fn max_outage(&self) -> std::time::Duration {
        self.config
            .online
            .as_ref()
            .map(|o| o.max_outage.0)
            .unwrap_or_default()
    }

    async fn open(&mut self, committed: Epoch) -> Result<()> {
        let removed = self.offline.rollback(committed).map_err(offline_failed)?;
        if removed > 0 {
            tracing::info!(sink = %self.name, files = removed, "rolled back offline files after epoch {committed}");
        }
        self.rollback_online(committed).await?;
        if let Some(feast) = &self.config.feast {
            let repo = self.base_dir.join(&feast.repo);
            // Feast needs an absolute path.
            let base = std::fs::canonicalize(&self.base_dir).unwrap_or_else(|_| self.base_dir.clone());
            let offline_dir = self.config.offline_dir(&base);
            crate::feast::write_repo(
                &repo,
                &feast.project,
                &self.name,
                &self.config,
                &offline_dir,
                &self.input,
            )
            .map_err(offline_failed)?;
        }
        Ok(())
    }

    fn prepare(&mut self, _epoch: Epoch, pending: &[RecordBatch]) -> Result<Prepared> {
        let created = chrono::Utc::now().timestamp_micros();
        let mut out = Prepared {
            shaped: Vec::new(),
            deletes: Vec::new(),
            refused: Vec::new(),
        };
        for b in pending {
            let del = is_delete(b);
            let keep: arrow::array::BooleanArray = del.iter().map(|d| Some(!d)).collect();
            let gone: arrow::array::BooleanArray = del.iter().map(|d| Some(*d)).collect();
            let (upserts, letters) = self.refuse_rows(arrow::compute::filter_record_batch(b, &keep)?)?;
            out.refused.extend(letters);
            if upserts.num_rows() > 0 {
                out.shaped.push(self.offline.shape(&upserts, created)?);
            }
            let removed = arrow::compute::filter_record_batch(b, &gone)?;
            if removed.num_rows() > 0 {
                out.deletes.push(removed);
            }
        }
        Ok(out)
    }

    /// Offline first (rewriting the same file is harmless), then online:
    /// compare-and-set and deletes, so after a lost connection the whole
    /// epoch is written again.
    async fn write(&mut self, epoch: Epoch, rows: &Prepared) -> Result<()> {
        self.offline
            .write_epoch(epoch, &rows.shaped)
            .map_err(offline_failed)?;
        self.write_online(epoch, &rows.deletes, &rows.shaped).await
    }

    async fn reset(&mut self) {
        self.online = None;
    }

    async fn written(&mut self, _epoch: Epoch, rows: Prepared) -> Result<()> {
        // One letter per document, however many of its rows were refused.
        let mut refused = rows.refused;
        refused.sort();
        refused.dedup_by(|a, b| a.0 == b.0);
        for (doc, version, why) in refused {
            self.ctx.dead_letter(doc, version, why);
        }
        Ok(())
    }

    async fn checkpointed(&mut self, epoch: Epoch) -> Result<()> {
        // Best effort: a log left behind is dropped by a later call or `open`.
        if let Some(online) = self.online.as_mut() {
            if let Err(e) = online.forget(epoch).await {
                tracing::warn!(sink = %self.name, "could not drop the online undo logs up to epoch {epoch}: {e}");
            }
        }
        Ok(())
    }
}
