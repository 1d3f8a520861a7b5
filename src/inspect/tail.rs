//! Following a tail point: the rows passing a point of a running pipeline,
//! filtered by a SQL predicate, cut to a readable width, as [`TailEvent`]s.
//!
//! One follower serves `sluice tail`, the daemon's Server-Sent Events route and
//! the console. It runs on its own task and only reads what the point hands it
//! (see [`crate::telemetry::tail`]), so a slow or expensive predicate costs the
//! watcher dropped rows, never the pipeline a pause.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, AsArray, BooleanArray};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::DFSchema;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::prelude::SessionContext;
use serde::Serialize;
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use crate::plan::Plan;
use crate::telemetry::tail::TailPoint;
use crate::{Error, Result};

/// The longest predicate accepted.
const MAX_PREDICATE: usize = 4096;

/// Characters of a value shown before it is cut, unless asked otherwise.
pub const DEFAULT_WIDTH: usize = 120;

/// What to show.
#[derive(Debug, Clone)]
pub struct TailOptions {
    /// A SQL predicate over the point's columns (`--where`).
    pub predicate: Option<String>,
    /// Stop after this many rows.
    pub limit: Option<u64>,
    /// Characters of each value shown; longer ones end in `…`.
    pub width: usize,
}

impl Default for TailOptions {
    fn default() -> Self {
        TailOptions {
            predicate: None,
            limit: None,
            width: DEFAULT_WIDTH,
        }
    }
}

/// What a follower says.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum TailEvent {
    /// Rows that passed, each a column → value object.
    Rows(Vec<Map<String, Value>>),
    /// Rows the watcher could not keep up with, since the last such event.
    Dropped(u64),
    /// The run being watched was replaced by a new one (a reload or restart).
    Restarted,
    /// The end, and why.
    End(String),
}

impl TailEvent {
    /// The Server-Sent Events name of the event.
    pub fn name(&self) -> &'static str {
        match self {
            TailEvent::Rows(_) => "rows",
            TailEvent::Dropped(_) => "dropped",
            TailEvent::Restarted => "restarted",
            TailEvent::End(_) => "end",
        }
    }
}

/// The points of a plan that can be followed, in data-path order, each with
/// the schema of the rows passing it: the source's output, a stage's output,
/// or what a sink receives (the last stage's output, before the sink's own
/// query). Built once per run for its tail socket, where the plan is not kept.
#[derive(Debug, Clone)]
pub struct PointSchemas {
    pipeline: String,
    points: Vec<(String, SchemaRef)>,
}

impl PointSchemas {
    pub fn of(plan: &Plan) -> Self {
        let last = plan
            .stages
            .last()
            .map(|s| s.output.clone())
            .unwrap_or_else(|| plan.source.schema.clone());
        let stages = plan.stages.iter().map(|s| s.name.as_str());
        let sinks = plan.sinks.iter().map(|s| s.name.as_str());
        let points = crate::telemetry::tail::Tails::new(stages.chain(sinks))
            .names()
            .map(|point| {
                let schema = match plan.stages.iter().find(|s| s.name == point) {
                    Some(stage) => stage.output.clone(),
                    None if plan.sinks.iter().any(|s| s.name == point) => last.clone(),
                    None => plan.source.schema.clone(),
                };
                (point.to_string(), schema)
            })
            .collect();
        PointSchemas {
            pipeline: plan.name.clone(),
            points,
        }
    }

    /// The schema at `point`, or why there is no such point.
    pub fn get(&self, point: &str) -> Result<SchemaRef> {
        match self.points.iter().find(|(n, _)| n == point) {
            Some((_, schema)) => Ok(schema.clone()),
            None => Err(Error::Sql(format!(
                "pipeline `{}` has no stage or sink named `{point}`; it has: {}",
                self.pipeline,
                self.points
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }
}

/// The schema of the rows passing `point` of `plan` ([`PointSchemas`]).
pub fn schema_of(plan: &Plan, point: &str) -> Result<SchemaRef> {
    PointSchemas::of(plan).get(point)
}

/// Turns the batches of one point into rows to show.
pub struct Follower {
    filter: Option<Arc<dyn PhysicalExpr>>,
    left: Option<u64>,
    width: usize,
}

impl Follower {
    /// A follower of rows shaped like `schema`; a predicate that does not parse,
    /// names a missing column or is not true/false is refused here.
    pub fn new(schema: &SchemaRef, options: &TailOptions) -> Result<Self> {
        let filter = match options.predicate.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(p) => Some(compile(schema, p)?),
        };
        Ok(Follower {
            filter,
            left: options.limit,
            width: options.width.max(8),
        })
    }

    /// The limit was reached.
    pub fn done(&self) -> bool {
        self.left == Some(0)
    }

    /// The rows of `batch` that pass, up to the limit.
    pub fn rows(&mut self, batch: &RecordBatch) -> Result<Vec<Map<String, Value>>> {
        let batch = match &self.filter {
            Some(f) => {
                let mask = f
                    .evaluate(batch)
                    .and_then(|v| v.into_array(batch.num_rows()))
                    .map_err(|e| Error::Sql(format!("the tail's predicate: {e}")))?;
                let mask = mask
                    .as_boolean_opt()
                    .cloned()
                    .unwrap_or_else(|| BooleanArray::from(vec![false; batch.num_rows()]));
                arrow::compute::filter_record_batch(batch, &mask)?
            }
            None => batch.clone(),
        };
        let take = match self.left {
            Some(left) => (left as usize).min(batch.num_rows()),
            None => batch.num_rows(),
        };
        if let Some(left) = &mut self.left {
            *left -= take as u64;
        }
        render(&batch.slice(0, take), self.width)
    }
}

fn compile(schema: &SchemaRef, predicate: &str) -> Result<Arc<dyn PhysicalExpr>> {
    if predicate.len() > MAX_PREDICATE {
        return Err(Error::Sql(format!(
            "the predicate is {} bytes; at most {MAX_PREDICATE} are accepted",
            predicate.len()
        )));
    }
    let refuse = |e: &dyn std::fmt::Display| Error::Sql(format!("--where `{predicate}`: {e}"));
    let df_schema = DFSchema::try_from(schema.as_ref().clone()).map_err(|e| refuse(&e))?;
    let ctx = SessionContext::new();
    let expr = ctx
        .parse_sql_expr(predicate, &df_schema)
        .map_err(|e| refuse(&e))?;
    let physical = ctx
        .create_physical_expr(expr, &df_schema)
        .map_err(|e| refuse(&e))?;
    match physical.data_type(schema.as_ref()) {
        Ok(DataType::Boolean) | Ok(DataType::Null) => Ok(physical),
        Ok(other) => Err(refuse(&format!("it is {other}, not true or false"))),
        Err(e) => Err(refuse(&e)),
    }
}

/// Each row as a column → value object: numbers and booleans as they are,
/// everything else as its display text, cut to `width` characters.
pub fn render(batch: &RecordBatch, width: usize) -> Result<Vec<Map<String, Value>>> {
    let options = FormatOptions::default().with_null("null");
    let schema = batch.schema();
    let mut formatters = Vec::with_capacity(batch.num_columns());
    for column in batch.columns() {
        formatters.push(ArrayFormatter::try_new(column.as_ref(), &options)?);
    }
    let mut rows = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        let mut out = Map::new();
        for (i, field) in schema.fields().iter().enumerate() {
            let column = batch.column(i);
            let value = if column.is_null(row) {
                Value::Null
            } else {
                cell(column.as_ref(), row, width, &formatters[i])
            };
            out.insert(field.name().clone(), value);
        }
        rows.push(out);
    }
    Ok(rows)
}

fn cell(column: &dyn Array, row: usize, width: usize, formatter: &ArrayFormatter<'_>) -> Value {
    use arrow::datatypes::*;
    let number = |v: f64| serde_json::Number::from_f64(v).map(Value::Number);
    let value = match column.data_type() {
        DataType::Boolean => Some(Value::Bool(column.as_boolean().value(row))),
        DataType::Int32 => Some(column.as_primitive::<Int32Type>().value(row).into()),
        DataType::Int64 => Some(column.as_primitive::<Int64Type>().value(row).into()),
        DataType::UInt32 => Some(column.as_primitive::<UInt32Type>().value(row).into()),
        DataType::UInt64 => Some(column.as_primitive::<UInt64Type>().value(row).into()),
        DataType::Float32 => number(column.as_primitive::<Float32Type>().value(row) as f64),
        DataType::Float64 => number(column.as_primitive::<Float64Type>().value(row)),
        DataType::Binary | DataType::LargeBinary => {
            let len = match column.as_binary_opt::<i64>() {
                Some(b) => b.value(row).len(),
                None => column.as_binary::<i32>().value(row).len(),
            };
            Some(Value::String(format!("<{len} bytes>")))
        }
        _ => None,
    };
    value.unwrap_or_else(|| Value::String(cut(&formatter.value(row).to_string(), width)))
}

/// `text` to at most `width` characters, on one line.
pub fn cut(text: &str, width: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(width + 1)
        .collect();
    if flat.chars().count() > width {
        let mut s: String = flat.chars().take(width.saturating_sub(1)).collect();
        s.push('…');
        s
    } else {
        flat
    }
}

/// How often a follower says how many rows it dropped, and checks that its
/// watcher is still there and its run still the current one.
const TICK: Duration = Duration::from_millis(500);

/// Follow the point `resolve` names into `events` until the watcher goes
/// away (`events` closes), the limit is reached, or `resolve` finds nothing.
/// `resolve` is asked again every tick: when it hands back another point (a
/// new run of the pipeline), the follower moves to it.
pub async fn follow(
    resolve: impl Fn() -> Option<Arc<TailPoint>>,
    mut follower: Follower,
    events: mpsc::Sender<TailEvent>,
) {
    let Some(mut point) = resolve() else {
        let _ = events
            .send(TailEvent::End("the pipeline is not running".into()))
            .await;
        return;
    };
    let mut sub = point.subscribe();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let event = tokio::select! {
            batch = sub.batches.recv() => match batch {
                Some(batch) => match follower.rows(&batch) {
                    Ok(rows) if rows.is_empty() => None,
                    Ok(rows) => Some(TailEvent::Rows(rows)),
                    Err(e) => {
                        let _ = events.send(TailEvent::End(e.to_string())).await;
                        return;
                    }
                },
                None => Some(TailEvent::End("the run ended".into())),
            },
            _ = tick.tick() => {
                if events.is_closed() {
                    return;
                }
                match resolve() {
                    None => Some(TailEvent::End("the pipeline is not running".into())),
                    Some(now) if !Arc::ptr_eq(&now, &point) => {
                        point = now;
                        sub = point.subscribe();
                        Some(TailEvent::Restarted)
                    }
                    Some(_) => match sub.take_dropped() {
                        0 => None,
                        n => Some(TailEvent::Dropped(n)),
                    },
                }
            }
        };
        let Some(event) = event else { continue };
        let end = matches!(event, TailEvent::End(_));
        if events.send(event).await.is_err() || end {
            return;
        }
        if follower.done() {
            let _ = events.send(TailEvent::End("the limit was reached".into())).await;
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{Field, Schema};

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, false),
            Field::new("text", DataType::Utf8, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![1, 2, 3])),
                Arc::new(StringArray::from(vec![
                    Some("short"),
                    None,
                    Some(&"long line\n".repeat(40)[..]),
                ])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn rows_are_filtered_limited_and_cut() {
        let b = batch();
        let options = TailOptions {
            predicate: Some("n >= 2".into()),
            limit: Some(1),
            width: 20,
        };
        let mut f = Follower::new(&b.schema(), &options).unwrap();
        let rows = f.rows(&b).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0]["n"], 2);
        assert_eq!(rows[0]["text"], Value::Null);
        assert!(f.done());
        let all = render(&b, 20).unwrap();
        let long = all[2]["text"].as_str().unwrap();
        assert_eq!(long.chars().count(), 20);
        assert!(long.ends_with('…') && !long.contains('\n'));
    }

    #[test]
    fn bad_predicates_are_refused_with_the_reason() {
        let b = batch();
        for (p, why) in [
            ("nope = 1", "nope"),
            ("n +", "--where"),
            ("n + 1", "not true or false"),
            ("n IN (SELECT 1)", "--where"),
        ] {
            let options = TailOptions {
                predicate: Some(p.into()),
                ..Default::default()
            };
            let e = Follower::new(&b.schema(), &options).err().unwrap().to_string();
            assert!(e.contains(why), "{p}: {e}");
        }
        let long = TailOptions {
            predicate: Some("n = 1 OR ".repeat(1000)),
            ..Default::default()
        };
        assert!(Follower::new(&b.schema(), &long).is_err());
    }
}
