//! A migration in the plan: the shadow sink beside the live one, and which of
//! the two a reader is served.

use std::sync::Arc;

use arrow::datatypes::{Schema, SchemaRef};
use sluice_connector_sdk::lineage::{Lineage, PIPELINE_VERSION};
use sluice_connector_sdk::stage::{QueryEmbedder, Remodeled};
use sluice_connector_sdk::{InspectTable, PlanContext};

use super::Served;
use crate::plan::{Plan, PlannedSink};
use crate::{Error, Result};

/// What makes a sink a migration's shadow.
#[derive(Debug)]
pub struct Shadow {
    /// The live sink it shadows.
    pub of: String,
    /// The vector stage with the new model, planned.
    pub stage: Remodeled,
    /// What that stage reads: the live sink's input without its vector column.
    pub base: SchemaRef,
    /// The lineage its rows carry: the new model's, and a pipeline version
    /// that says so.
    pub lineage: Lineage,
}

/// Add a shadow sink for every migration under way in `plan`'s state folder.
pub fn apply(plan: &mut Plan) -> Result<()> {
    for record in super::load_all(&plan.state_dir)?
        .into_iter()
        .filter(|r| !r.aborting)
    {
        let shadow = shadow_sink(plan, &record.sink, &record.model, &record.shadow_table)?;
        plan.sinks.push(shadow);
    }
    Ok(())
}

/// The vector stage of `plan` remade with `model` (not planned yet).
pub fn remodel(plan: &Plan, model: &std::path::Path) -> Result<Remodeled> {
    plan.stages
        .iter()
        .find_map(|s| s.config.remodel(model))
        .ok_or_else(|| {
            Error::Usage(format!(
                "pipeline `{}` has no stage that makes vectors with a model, so there is nothing to migrate",
                plan.name
            ))
        })
}

/// Plan `stage` against `base` (this loads its model).
pub fn plan_stage(plan: &Plan, stage: &Remodeled, base: &SchemaRef) -> Result<SchemaRef> {
    let ctx = PlanContext::new(&plan.base_dir);
    stage.config.plan(&ctx, base).map_err(|issues| {
        let why: Vec<String> = issues.into_iter().map(|i| i.message).collect();
        Error::Usage(format!("the new model: {}", why.join("; ")))
    })
}

/// `schema` without `column`.
fn without(schema: &Schema, column: &str) -> SchemaRef {
    Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .filter(|f| f.name() != column)
            .map(|f| f.as_ref().clone())
            .collect::<Vec<_>>(),
    ))
}

/// The shadow of sink `of`: its store, `table`, and vectors made by `model`.
pub fn shadow_sink(plan: &Plan, of: &str, model: &std::path::Path, table: &str) -> Result<PlannedSink> {
    let live = plan.sinks.iter().find(|s| s.name == of).ok_or_else(|| {
        Error::Usage(format!(
            "a model migration of sink `{of}` is under way, but pipeline `{}` has no such sink; end it with `sluice migrate abort --sink {of}`",
            plan.name
        ))
    })?;
    let config = live.config.with_table(table).ok_or_else(|| {
        Error::Usage(format!(
            "sink `{of}` ({}) keeps no tables a model migration can move between",
            live.kind
        ))
    })?;
    let stage = remodel(plan, model)?;
    let unstamped = live.unstamped();
    if unstamped.field_with_name(&stage.vector_column).is_err() {
        return Err(Error::Usage(format!(
            "sink `{of}` does not receive the vector column `{}`, so a migration cannot remake it",
            stage.vector_column
        )));
    }
    let base = without(&unstamped, &stage.vector_column);
    let output = plan_stage(plan, &stage, &base)?;
    let lineage = shadow_lineage(&plan.lineage, stage.config.lineage());
    let (input, stamped) = if live.stamped > 0 {
        lineage.extend(&output)
    } else {
        (output, 0)
    };
    let name = super::shadow_name(of);
    let issues = config.validate(&PlanContext::new(&plan.base_dir), &input);
    if !issues.is_empty() {
        let why: Vec<String> = issues.into_iter().map(|i| i.message).collect();
        return Err(Error::Usage(format!(
            "the shadow of sink `{of}`: {}",
            why.join("; ")
        )));
    }
    Ok(PlannedSink {
        name,
        kind: live.kind.clone(),
        config,
        query: live.query.clone(),
        input,
        stamped,
        shadow: Some(Shadow {
            of: of.to_string(),
            stage,
            base,
            lineage,
        }),
    })
}

/// The plan's lineage with the new model's entries, and a pipeline version
/// hashed from the old one and those entries.
fn shadow_lineage(plan: &Lineage, model: Vec<(String, String)>) -> Lineage {
    let mut columns = plan.columns.clone();
    let mut text = plan.get(PIPELINE_VERSION).unwrap_or_default().to_string();
    for (k, v) in model {
        text.push_str(&format!("\n{k}={v}"));
        match columns.iter_mut().find(|(c, _)| *c == k) {
            Some(entry) => entry.1 = v,
            None => columns.push((k, v)),
        }
    }
    let version = blake3::hash(text.as_bytes()).to_hex()[..16].to_string();
    if let Some(entry) = columns.iter_mut().find(|(c, _)| c == PIPELINE_VERSION) {
        entry.1 = version;
    }
    Lineage { columns }
}

/// A sink as a reader sees it: the table it is served from and the model
/// that embeds a query for it.
#[derive(Clone)]
pub struct Target {
    /// The sink's name (the live one's, even when its shadow is served).
    pub sink: String,
    pub table: Arc<dyn sluice_connector_sdk::read::SinkTable>,
    pub embedder: Option<Arc<dyn QueryEmbedder>>,
    /// Which table of a migration this is (`Live` without one).
    pub generation: Served,
}

/// Which generation `sink` serves now: the record's choice, read on each call.
pub fn served(plan: &Plan, sink: &str) -> Result<Served> {
    if planned(plan, sink, Served::Shadow).is_none() {
        return Ok(Served::Live);
    }
    Ok(super::load(&plan.state_dir, sink)?.map_or(Served::Live, |r| r.served))
}

/// The planned sink that holds `generation` of live sink `sink`.
pub fn planned<'a>(plan: &'a Plan, sink: &str, generation: Served) -> Option<&'a PlannedSink> {
    plan.sinks.iter().find(|s| match (generation, &s.shadow) {
        (Served::Live, None) => s.name == sink,
        (Served::Shadow, Some(sh)) => sh.of == sink,
        _ => false,
    })
}

/// `generation` of live sink `sink` as a reader sees it, if its store can be read.
pub fn target(plan: &Plan, sink: &str, generation: Served) -> Option<Target> {
    let s = planned(plan, sink, generation)?;
    let table = match s.config.inspect_table(&plan.sink_context(s), &s.input) {
        Some(InspectTable::Store(t)) => t,
        _ => return None,
    };
    Some(Target {
        sink: sink.to_string(),
        table,
        embedder: embedder(plan, s),
        generation,
    })
}

/// The model that embeds a query for `sink`'s rows: a shadow's own, else the
/// pipeline's.
pub fn embedder(plan: &Plan, sink: &PlannedSink) -> Option<Arc<dyn QueryEmbedder>> {
    match &sink.shadow {
        Some(sh) => sh.stage.config.query_embedder(),
        None => plan.stages.iter().find_map(|st| st.config.query_embedder()),
    }
}

/// What `sink` is served from now.
pub fn serving(plan: &Plan, sink: &str) -> Result<Option<Target>> {
    let generation = served(plan, sink)?;
    Ok(target(plan, sink, generation))
}

/// The lineage the rows of `target` carry.
pub fn lineage_of<'a>(plan: &'a Plan, target: &Target) -> &'a Lineage {
    planned(plan, &target.sink, target.generation)
        .and_then(|s| s.shadow.as_ref())
        .map_or(&plan.lineage, |sh| &sh.lineage)
}
