//! Compile a pipeline file into a [`Plan`], collecting every problem.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use sluice_connector_sdk::{ByteSize, ConfigIssue, HumanDuration, PlanContext};

use super::de::{decode, did_you_mean, one_of, Issue};
use super::diag::{Diagnostic, Diagnostics};
use super::registry::{self, Lookup};
use super::yaml::{self, Loc, Node, Value};
use crate::plan::{ChannelBounds, Plan, PlannedSink, PlannedSource, PlannedStage};
use crate::stages::StageConfig;

const TOP_KEYS: &[&str] = &[
    "name",
    "source",
    "stages",
    "sinks",
    "checkpoint",
    "state_dir",
    "channels",
    "taps",
    "dlq",
];
/// Keys every stage block takes besides its own.
const STAGE_KEYS: &[&str] = &["name", "type", "tap", "parallelism"];
/// Keys every sink block takes besides its own.
const SINK_KEYS: &[&str] = &["name", "type", "query"];

#[derive(Debug, Deserialize)]
struct CheckpointSpec {
    #[serde(default = "default_interval")]
    interval: HumanDuration,
    #[serde(default = "default_epoch_bytes")]
    max_bytes: ByteSize,
}

/// An epoch is also cut once the source has emitted this much: sinks hold an
/// epoch until its barrier, so this bounds their memory when a sink is slow.
fn default_epoch_bytes() -> ByteSize {
    ByteSize(8 << 20)
}

fn default_interval() -> HumanDuration {
    HumanDuration(Duration::from_secs(5))
}

#[derive(Debug, Deserialize)]
struct ChannelSpec {
    #[serde(default = "default_max_rows")]
    max_rows: usize,
    #[serde(default = "default_max_bytes")]
    max_bytes: ByteSize,
}

fn default_max_rows() -> usize {
    ChannelBounds::default().max_rows
}
fn default_max_bytes() -> ByteSize {
    ByteSize(ChannelBounds::default().max_bytes as u64)
}

#[derive(Debug, Deserialize)]
struct TapSpec {
    #[serde(default = "default_retain")]
    retain_epochs: u64,
}

fn default_retain() -> u64 {
    1000
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DlqSpec {
    #[serde(default = "default_dlq_retention")]
    retention: HumanDuration,
}

/// How long dead letters are kept: 30 days.
fn default_dlq_retention() -> HumanDuration {
    HumanDuration(Duration::from_secs(30 * 24 * 3600))
}

/// Read and compile a pipeline file, with `${ENV}` taken from the process.
pub fn load_file(path: &Path) -> Result<Plan, Diagnostics> {
    let label = path.display().to_string();
    let src = std::fs::read_to_string(path).map_err(|e| {
        Diagnostics(vec![Diagnostic {
            file: label.clone(),
            loc: Loc { line: 1, col: 1 },
            message: format!("cannot read the pipeline file: {e}"),
            hint: None,
            line_text: None,
        }])
    })?;
    let base_dir = std::fs::canonicalize(path)
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."));
    load_str(&label, &src, &base_dir, &|k| std::env::var(k).ok())
}

/// Compile pipeline YAML `src`; `label` names it in diagnostics.
pub fn load_str(
    label: &str,
    src: &str,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Plan, Diagnostics> {
    let mut c = Compiler {
        issues: Vec::new(),
        names: Vec::new(),
        ctx: PlanContext::new(base_dir),
    };
    let plan = c.compile(src, base_dir, env);
    if c.issues.is_empty() {
        if let Some(plan) = plan {
            return Ok(plan);
        }
    }
    let lines: Vec<&str> = src.lines().collect();
    let mut issues = c.issues;
    issues.sort_by_key(|i| (i.loc.line, i.loc.col));
    issues.dedup();
    Err(Diagnostics(
        issues
            .into_iter()
            .map(|i| Diagnostic {
                file: label.to_string(),
                line_text: i
                    .loc
                    .line
                    .checked_sub(1)
                    .and_then(|n| lines.get(n))
                    .map(|s| s.to_string()),
                loc: i.loc,
                message: i.message,
                hint: i.hint,
            })
            .collect(),
    ))
}

struct Compiler {
    issues: Vec<Issue>,
    /// Stage and sink names with where they were given, in file order.
    names: Vec<(String, Loc)>,
    ctx: PlanContext,
}

/// A source, stage or sink block split into its common keys and its own config.
struct Block {
    kind: String,
    name: Option<String>,
    loc: Loc,
    /// The block without the common keys, for the component's own decoder.
    own: Node,
    /// The original block, to locate keys named in a [`ConfigIssue`].
    full: Node,
}

impl Compiler {
    fn issue(&mut self, loc: Loc, message: impl Into<String>, hint: Option<String>) {
        self.issues.push(Issue {
            loc,
            message: message.into(),
            hint,
        });
    }

    /// Report a component's own issues at the keys they name. A key whose value
    /// already has an issue (it did not decode or interpolate, so the component
    /// saw a default or the raw `${VAR}`) keeps that one only.
    fn config_issues(&mut self, block: &Node, issues: Vec<ConfigIssue>) {
        for i in issues {
            let value = i.key.as_deref().and_then(|k| block.get(k)).map(|(_, v)| v);
            let loc = value.map(|v| v.loc).unwrap_or(block.loc);
            if let Some(v) = value {
                let mut locs = Vec::new();
                node_locs(v, &mut locs);
                if self.issues.iter().any(|known| locs.contains(&known.loc)) {
                    continue;
                }
            }
            self.issue(loc, i.message, i.hint);
        }
    }

    /// Parse `src`, fill in `${VAR}`s, and check the top-level keys.
    fn root(&mut self, src: &str, env: &dyn Fn(&str) -> Option<String>) -> Option<Node> {
        let mut root = match yaml::parse(src) {
            Ok(n) => n,
            Err(e) => {
                self.issue(e.loc, format!("YAML syntax: {}", e.message), None);
                return None;
            }
        };
        let mut env_errors = Vec::new();
        yaml::interpolate(&mut root, env, &mut env_errors);
        crate::telemetry::secrets::register_tree(&root);
        for e in env_errors {
            self.issue(e.loc, e.message, e.hint);
        }
        let Some(entries) = root.entries() else {
            self.issue(
                root.loc,
                format!("a pipeline is a mapping, found {}", root.kind()),
                None,
            );
            return None;
        };
        for (k, _) in entries {
            let key = k.as_str().unwrap_or_default();
            if !TOP_KEYS.contains(&key) {
                let hint = did_you_mean(key, TOP_KEYS.iter().copied());
                self.issue(
                    k.loc,
                    format!("unknown key `{key}`, expected {}", one_of(TOP_KEYS)),
                    hint,
                );
            }
        }
        Some(root)
    }

    fn compile(&mut self, src: &str, base_dir: &Path, env: &dyn Fn(&str) -> Option<String>) -> Option<Plan> {
        let root = self.root(src, env)?;
        let name = self.pipeline_name(&root);
        let checkpoint: Option<CheckpointSpec> = self.optional(&root, "checkpoint");
        let channels: Option<ChannelSpec> = self.optional(&root, "channels");
        let taps: Option<TapSpec> = self.optional(&root, "taps");
        let dlq: Option<DlqSpec> = self.optional(&root, "dlq");
        let state_dir: Option<String> = root
            .get("state_dir")
            .and_then(|(_, v)| decode(v, &mut self.issues));

        let source = self.source(&root);
        let stages = self.stages(&root, source.as_ref().map(|s| s.schema.clone()));
        let mut sinks = self.sinks(&root);
        self.check_names();

        // Sinks are checked against what the last stage produces.
        let all_stages_planned = stages.iter().all(Option::is_some);
        let stages: Vec<PlannedStage> = stages.into_iter().flatten().collect();
        let lineage = super::lineage::of_plan(name.as_deref().unwrap_or_default(), &root, &stages);
        if let (Some(source), true) = (&source, all_stages_planned) {
            let schema = stages
                .last()
                .map(|s| s.output.clone())
                .unwrap_or_else(|| source.schema.clone());
            self.plan_sinks(&mut sinks, &schema, &lineage);
        }

        let checkpoint = checkpoint.unwrap_or(CheckpointSpec {
            interval: default_interval(),
            max_bytes: default_epoch_bytes(),
        });
        if checkpoint.interval.0.is_zero() {
            let loc = root.get("checkpoint").map(|(_, v)| v.loc).unwrap_or_default();
            self.issue(loc, "checkpoint interval must be more than 0", None);
        }
        let channels = channels.map(|c| ChannelBounds {
            max_rows: c.max_rows,
            max_bytes: c.max_bytes.0 as usize,
        });
        // By default each pipeline has its own folder, so two pipeline files
        // beside each other never share a checkpoint.
        let state_dir = base_dir
            .join(state_dir.unwrap_or_else(|| format!(".sluice/{}", name.as_deref().unwrap_or("pipeline"))));
        let sinks: Vec<PlannedSink> = sinks.into_iter().flatten().map(|(s, _)| s).collect();
        Some(Plan {
            name: name?,
            file: base_dir.to_path_buf(),
            base_dir: base_dir.to_path_buf(),
            state_dir,
            checkpoint_interval: checkpoint.interval.0,
            epoch_max_bytes: checkpoint.max_bytes.0.max(1),
            channels: channels.unwrap_or_default(),
            tap_retain_epochs: taps.map(|t| t.retain_epochs).unwrap_or(default_retain()),
            dlq_retention: dlq.map(|d| d.retention).unwrap_or_else(default_dlq_retention).0,
            source: source?,
            stages: all_stages_planned.then_some(stages)?,
            sinks,
            backfill: false,
            lineage,
        })
    }

    /// Give each sink its input: `schema` (the last stage's output) through
    /// its query, plus the lineage columns when it keeps them; then let it
    /// validate against that.
    fn plan_sinks(
        &mut self,
        sinks: &mut [Option<(PlannedSink, Block)>],
        schema: &arrow::datatypes::SchemaRef,
        lineage: &sluice_connector_sdk::lineage::Lineage,
    ) {
        for (sink, block) in sinks.iter_mut().flatten() {
            sink.input = schema.clone();
            if let Some(query) = &sink.query {
                match query.plan(&self.ctx, schema) {
                    Ok(out) => sink.input = out,
                    Err(issues) => {
                        self.config_issues(&block.full, issues);
                        continue;
                    }
                }
            }
            if sink.config.keeps_lineage() {
                (sink.input, sink.stamped) = lineage.extend(&sink.input);
            }
            let issues = sink.config.validate(&self.ctx, &sink.input);
            self.config_issues(&block.full, issues);
        }
    }

    fn optional<T: serde::de::DeserializeOwned>(&mut self, root: &Node, key: &str) -> Option<T> {
        root.get(key).and_then(|(_, v)| decode(v, &mut self.issues))
    }

    fn pipeline_name(&mut self, root: &Node) -> Option<String> {
        let Some((_, v)) = root.get("name") else {
            self.issue(
                Loc { line: 1, col: 1 },
                "missing key `name`",
                Some("every pipeline has a name, e.g. `name: docs`".into()),
            );
            return None;
        };
        let name: String = decode(v, &mut self.issues)?;
        if !is_identifier(&name) {
            self.issue(
                v.loc,
                format!("pipeline name `{name}` must be letters, digits, `_` or `-`"),
                None,
            );
        }
        Some(name)
    }

    /// Split a component block into its `type`, `name` and own keys.
    fn block(&mut self, node: &Node, what: &str, common: &[&str], types: &[&str]) -> Option<Block> {
        let Some(entries) = node.entries() else {
            self.issue(
                node.loc,
                format!("a {what} is a mapping with a `type`, found {}", node.kind()),
                None,
            );
            return None;
        };
        let Some((_, kind_node)) = node.get("type") else {
            self.issue(
                node.loc,
                format!("this {what} has no `type`"),
                Some(format!("one of {}", one_of(types))),
            );
            return None;
        };
        let kind = kind_node.as_str().unwrap_or_default().to_string();
        if !types.contains(&kind.as_str()) {
            let hint = did_you_mean(&kind, types.iter().copied())
                .or_else(|| Some(format!("one of {}", one_of(types))));
            self.issue(kind_node.loc, format!("unknown {what} type `{kind}`"), hint);
            return None;
        }
        let name = match node.get("name") {
            Some((_, v)) => {
                let name: String = decode(v, &mut self.issues)?;
                if !is_identifier(&name) {
                    self.issue(
                        v.loc,
                        format!("{what} name `{name}` must be letters, digits, `_` or `-`"),
                        None,
                    );
                }
                Some(name)
            }
            None => None,
        };
        let own: Vec<(Node, Node)> = entries
            .iter()
            .filter(|(k, _)| !common.contains(&k.as_str().unwrap_or_default()))
            .cloned()
            .collect();
        Some(Block {
            kind,
            name,
            loc: node.loc,
            own: Node {
                value: Value::Map(own),
                loc: node.loc,
            },
            full: node.clone(),
        })
    }

    fn not_built(&mut self, loc: Loc, what: &str, kind: &str, feature: &str) {
        self.issue(
            loc,
            format!("the `{kind}` {what} is not built into this sluice"),
            Some(format!("rebuild with `--features {feature}`")),
        );
    }

    fn source(&mut self, root: &Node) -> Option<PlannedSource> {
        let Some((_, node)) = root.get("source") else {
            self.issue(
                Loc { line: 1, col: 1 },
                "missing key `source`",
                Some("e.g. `source: {type: files, path: ./docs}`".into()),
            );
            return None;
        };
        let block = self.block(node, "source", &["type"], registry::SOURCE_TYPES)?;
        let config = match registry::source(&block.kind, &block.own, &mut self.issues) {
            Lookup::Found(c) => c?,
            Lookup::NotBuilt(f) => {
                self.not_built(block.loc, "source", &block.kind, f.0);
                return None;
            }
            Lookup::Unknown => return None,
        };
        let issues = config.validate(&self.ctx);
        self.config_issues(&block.full, issues);
        Some(PlannedSource {
            schema: config.schema(),
            kind: block.kind,
            config,
        })
    }

    /// Plan every stage. An entry is `None` when that stage (or one before it)
    /// could not be planned, so later stages are still decoded but not schema-checked.
    fn stages(
        &mut self,
        root: &Node,
        mut schema: Option<arrow::datatypes::SchemaRef>,
    ) -> Vec<Option<PlannedStage>> {
        let Some((_, node)) = root.get("stages") else {
            return Vec::new();
        };
        let items = match &node.value {
            Value::Seq(items) => items.clone(),
            _ if node.is_null() => Vec::new(),
            _ => {
                self.issue(
                    node.loc,
                    format!("`stages` is a list, found {}", node.kind()),
                    None,
                );
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for item in &items {
            let planned = self.stage(item, schema.clone());
            schema = planned.as_ref().map(|p| p.output.clone());
            out.push(planned);
        }
        self.refuse_taps_before_scrubbing(&items, &out);
        out
    }

    /// A tap before a stage that scrubs sensitive values (a guard) would
    /// keep those values on disk.
    fn refuse_taps_before_scrubbing(&mut self, items: &[Node], stages: &[Option<PlannedStage>]) {
        let Some(last_scrub) = stages
            .iter()
            .rposition(|s| s.as_ref().is_some_and(|s| s.config.scrubs()))
        else {
            return;
        };
        let scrubber = stages[last_scrub]
            .as_ref()
            .map(|s| s.name.clone())
            .unwrap_or_default();
        for (item, stage) in items.iter().zip(stages).take(last_scrub) {
            if let (Some((_, tap)), Some(stage)) = (item.get("tap"), stage.as_ref().filter(|s| s.tap)) {
                self.issue(
                    tap.loc,
                    format!("stage `{}` is tapped, but `{scrubber}` after it removes sensitive values: its tap would keep them", stage.name),
                    Some(format!("tap `{scrubber}` (or a stage after it) instead")),
                );
            }
        }
    }

    fn stage(&mut self, node: &Node, input: Option<arrow::datatypes::SchemaRef>) -> Option<PlannedStage> {
        let block = self.block(node, "stage", STAGE_KEYS, registry::STAGE_TYPES)?;
        let tap: bool = node
            .get("tap")
            .and_then(|(_, v)| decode(v, &mut self.issues))
            .unwrap_or(false);
        let parallelism: usize = match node.get("parallelism") {
            Some((_, v)) => {
                let p: usize = decode(v, &mut self.issues)?;
                if p == 0 {
                    self.issue(v.loc, "parallelism must be at least 1", None);
                }
                p
            }
            None => default_parallelism(),
        };
        self.names.push((
            block.name.clone().unwrap_or_else(|| block.kind.clone()),
            block.loc,
        ));
        let config = match registry::stage(&block.kind, &block.own, &mut self.issues) {
            Lookup::Found(c) => c?,
            Lookup::NotBuilt(f) => {
                self.not_built(block.loc, "stage", &block.kind, f.0);
                return None;
            }
            Lookup::Unknown => return None,
        };
        let issues = config.validate();
        if !issues.is_empty() {
            self.config_issues(&block.full, issues);
            return None;
        }
        let input = input?;
        match config.plan(&self.ctx, &input) {
            Ok(output) => Some(PlannedStage {
                name: block.name.unwrap_or_else(|| block.kind.clone()),
                kind: block.kind,
                tap,
                parallelism: parallelism.max(1),
                audit: config.audit(),
                config,
                input,
                output,
            }),
            Err(issues) => {
                self.config_issues(&block.full, issues);
                None
            }
        }
    }

    fn sinks(&mut self, root: &Node) -> Vec<Option<(PlannedSink, Block)>> {
        let Some((_, node)) = root.get("sinks") else {
            self.issue(
                Loc { line: 1, col: 1 },
                "missing key `sinks`",
                Some("e.g. `sinks: [{name: out, type: parquet, path: ./out}]`".into()),
            );
            return Vec::new();
        };
        let items = match &node.value {
            Value::Seq(items) if !items.is_empty() => items.clone(),
            _ => {
                self.issue(node.loc, "`sinks` is a list of at least one sink", None);
                return Vec::new();
            }
        };
        items
            .iter()
            .map(|item| {
                let block = self.block(item, "sink", SINK_KEYS, registry::SINK_TYPES)?;
                self.names.push((
                    block.name.clone().unwrap_or_else(|| block.kind.clone()),
                    block.loc,
                ));
                let config = match registry::sink(&block.kind, &block.own, &mut self.issues) {
                    Lookup::Found(c) => c?,
                    Lookup::NotBuilt(f) => {
                        self.not_built(block.loc, "sink", &block.kind, f.0);
                        return None;
                    }
                    Lookup::Unknown => return None,
                };
                let query: Option<String> = item.get("query").and_then(|(_, v)| decode(v, &mut self.issues));
                let sink = PlannedSink {
                    name: block.name.clone().unwrap_or_else(|| block.kind.clone()),
                    kind: block.kind.clone(),
                    config,
                    query: query.map(|query| crate::stages::SqlConfig { query }),
                    input: Arc::new(arrow::datatypes::Schema::empty()),
                    stamped: 0,
                    shadow: None,
                };
                Some((sink, block))
            })
            .collect()
    }

    /// Stage and sink names become table names in `sluice sql`: they must be unique,
    /// and a sink `x` also claims `x_log`.
    fn check_names(&mut self) {
        let mut seen: Vec<String> = Vec::new();
        for (name, loc) in std::mem::take(&mut self.names) {
            if seen.contains(&name) {
                self.issue(
                    loc,
                    format!("the name `{name}` is used twice; stages and sinks need unique names"),
                    Some("give one of them another `name:`".into()),
                );
            }
            seen.push(format!("{name}_log"));
            seen.push(name);
        }
    }
}

/// Where `node` and everything under it begin.
fn node_locs(node: &Node, out: &mut Vec<Loc>) {
    out.push(node.loc);
    match &node.value {
        Value::Seq(items) => items.iter().for_each(|n| node_locs(n, out)),
        Value::Map(entries) => entries.iter().for_each(|(k, v)| {
            out.push(k.loc);
            node_locs(v, out);
        }),
        Value::Scalar { .. } => {}
    }
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn default_parallelism() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
}
