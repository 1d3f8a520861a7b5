//! The validated pipeline: what `sluice run` executes and `sluice sql` inspects.
//!
//! A [`Plan`] only exists when the pipeline file had no errors. Every stage knows
//! the Arrow schema it receives and the one it produces, so a wrong column name
//! fails `validate`, never the run.

use std::path::PathBuf;
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use sluice_connector_sdk::{SinkConfig, SinkContext, SinkRole, SourceConfig, SourceContext};

use crate::stages::StageConfig;

/// A backfill's state folder inside its pipeline's (its checkpoint, its tail socket).
pub const BACKFILL_DIR: &str = "backfill";

/// Bounds of every channel between two tasks. A batch larger than a bound still
/// passes, alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelBounds {
    pub max_rows: usize,
    pub max_bytes: usize,
}

impl Default for ChannelBounds {
    fn default() -> Self {
        ChannelBounds {
            max_rows: 4096,
            max_bytes: 16 << 20,
        }
    }
}

#[derive(Debug)]
pub struct PlannedSource {
    pub kind: String,
    pub config: Box<dyn SourceConfig>,
    pub schema: SchemaRef,
}

#[derive(Debug)]
pub struct PlannedStage {
    pub name: String,
    pub kind: String,
    pub tap: bool,
    /// How many batches the stage works on at once (output stays in input order).
    pub parallelism: usize,
    pub config: Box<dyn StageConfig>,
    pub input: SchemaRef,
    pub output: SchemaRef,
    /// The table the stage keeps of what it did, if any (see
    /// [`sluice_connector_sdk::stage::AuditTable`]).
    pub audit: Option<sluice_connector_sdk::stage::AuditTable>,
}

#[derive(Debug)]
pub struct PlannedSink {
    pub name: String,
    pub kind: String,
    pub config: Box<dyn SinkConfig>,
    /// A query over `input` (the last stage's output) that shapes what this sink
    /// receives, e.g. per-document features for a feature store.
    pub query: Option<crate::stages::SqlConfig>,
    /// The schema this sink receives (after its query, with the lineage
    /// columns when it keeps them). Set once stages are planned.
    pub input: SchemaRef,
    /// How many lineage columns the engine appends to `input` (the last ones).
    pub stamped: usize,
    /// Set on a model migration's shadow of another sink (see [`crate::migrate`]).
    pub shadow: Option<crate::migrate::plan::Shadow>,
}

#[derive(Debug)]
pub struct Plan {
    pub name: String,
    /// The pipeline file.
    pub file: PathBuf,
    /// Its folder; relative paths in the file resolve against it.
    pub base_dir: PathBuf,
    pub state_dir: PathBuf,
    pub checkpoint_interval: Duration,
    /// An epoch is also cut once the source has emitted this many bytes.
    pub epoch_max_bytes: u64,
    pub channels: ChannelBounds,
    /// How many epochs of tap files to keep per stage.
    pub tap_retain_epochs: u64,
    /// Dead-letter files older than this are pruned when a run starts.
    pub dlq_retention: Duration,
    pub source: PlannedSource,
    pub stages: Vec<PlannedStage>,
    pub sinks: Vec<PlannedSink>,
    /// This plan is a `sluice backfill` ([`Plan::for_backfill`]).
    pub backfill: bool,
    /// What the rows of sinks that keep lineage carry: the pipeline, its
    /// version, the chunker, the model.
    pub lineage: sluice_connector_sdk::lineage::Lineage,
}

impl PlannedSink {
    /// What the sink's query (or the last stage) produces: its input before
    /// the lineage columns.
    pub fn unstamped(&self) -> SchemaRef {
        let fields = &self.input.fields()[..self.input.fields().len() - self.stamped];
        std::sync::Arc::new(arrow::datatypes::Schema::new(fields.to_vec()))
    }
}

impl Plan {
    /// Schema the sinks receive: the output of the last stage, or the source's.
    /// The schema the last stage (or the source) emits; each sink's query, if it
    /// has one, starts from it.
    pub fn last_schema(&self) -> SchemaRef {
        self.stages
            .last()
            .map(|s| s.output.clone())
            .unwrap_or_else(|| self.source.schema.clone())
    }

    pub fn source_context(&self) -> SourceContext {
        SourceContext::new(self.name.clone(), self.base_dir.clone())
    }

    pub fn sink_context(&self, sink: &PlannedSink) -> SinkContext {
        SinkContext {
            pipeline: self.name.clone(),
            name: sink.name.clone(),
            base_dir: self.base_dir.clone(),
            state_dir: self.state_dir.clone(),
            role: if self.backfill {
                SinkRole::Backfill
            } else if self.source.config.shares_sinks() {
                SinkRole::SharedGroup
            } else {
                SinkRole::Stream
            },
            dead_letters: Default::default(),
        }
    }

    /// Folder of a stage's tap files.
    pub fn tap_dir(&self, stage: &str) -> PathBuf {
        self.state_dir.join("taps").join(&self.name).join(stage)
    }

    /// Where a stage's audit table lives: `state_dir/audit/<pipeline>/<stage>/`.
    pub fn audit_dir(&self, stage: &str) -> PathBuf {
        self.state_dir.join("audit").join(&self.name).join(stage)
    }

    pub fn dlq_dir(&self) -> PathBuf {
        self.state_dir.join("dlq")
    }

    /// Keep this pipeline's state in `root/<name>` instead of its file's
    /// `state_dir`: the layout of `sluice daemon --state` (and of `--state` on
    /// every other command), where many pipelines share one state root.
    pub fn with_state_root(mut self, root: &std::path::Path) -> Self {
        self.state_dir = root.join(&self.name);
        self
    }

    /// The same pipeline as a backfill: the source bounded and narrowed by
    /// `options`, the state (checkpoint, taps, dead letters) in
    /// `state_dir/backfill/`, and the sinks told ([`SinkRole::Backfill`]), so a
    /// streaming run of the same file and this one never disturb each other.
    pub fn for_backfill(mut self, options: &sluice_connector_sdk::BackfillOptions) -> crate::Result<Self> {
        self.source.config = self.source.config.backfill(options).map_err(|e| {
            crate::Error::connector(format!("backfill of the `{}` source", self.source.kind), e)
        })?;
        self.state_dir = self.state_dir.join(BACKFILL_DIR);
        self.backfill = true;
        Ok(self)
    }

    pub fn checkpoint_file(&self) -> PathBuf {
        self.state_dir.join("checkpoint.json")
    }
}
