//! The last minutes of each pipeline's throughput, kept in the daemon's
//! memory for the console's sparklines: every few seconds, the rows per
//! second at the source, out of each stage and into each sink, each hop's
//! queue fill and each stage's busy share.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::plan::Plan;
use crate::telemetry::PipelineMetrics;

/// How far back the history goes.
pub const SPAN: Duration = Duration::from_secs(10 * 60);
/// The shortest time between two points.
pub const STEP: Duration = Duration::from_secs(2);

/// One sample.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    /// Unix milliseconds.
    pub t: i64,
    /// Rows per second, by node: `source`, each stage (out), each sink (in).
    pub rows: BTreeMap<String, f64>,
    /// Queue fill (0 to 1) of the hop into each stage and sink.
    pub fill: BTreeMap<String, f64>,
    /// Share of the time each stage was busy, per unit of its parallelism.
    pub busy: BTreeMap<String, f64>,
}

/// Cumulative counters at the last sample.
struct Last {
    at: Instant,
    run: Weak<PipelineMetrics>,
    rows: BTreeMap<String, u64>,
    busy_us: BTreeMap<String, u64>,
}

#[derive(Default)]
pub struct History {
    points: VecDeque<Point>,
    last: Option<Last>,
}

impl History {
    /// The points, oldest first.
    pub fn points(&self) -> Vec<Point> {
        self.points.iter().cloned().collect()
    }

    /// The newest point.
    pub fn latest(&self) -> Option<&Point> {
        self.points.back()
    }

    /// Sample `metrics` (of a run of `plan`) unless the last sample is newer
    /// than [`STEP`]. A new run starts from its own counters.
    pub fn record(&mut self, metrics: &Arc<PipelineMetrics>, plan: &Plan) {
        let now = Instant::now();
        if self
            .last
            .as_ref()
            .is_some_and(|l| now.duration_since(l.at) < STEP)
        {
            return;
        }
        let rows = counts(metrics);
        let busy_us: BTreeMap<String, u64> = metrics
            .stages
            .iter()
            .map(|s| (s.name.clone(), s.busy_us.get()))
            .collect();
        let same_run = self
            .last
            .as_ref()
            .and_then(|l| l.run.upgrade())
            .is_some_and(|run| Arc::ptr_eq(&run, metrics));
        if let (true, Some(last)) = (same_run, &self.last) {
            let secs = now.duration_since(last.at).as_secs_f64();
            let rate =
                |now: &BTreeMap<String, u64>, then: &BTreeMap<String, u64>, per: &dyn Fn(&str) -> f64| {
                    now.iter()
                        .map(|(k, v)| {
                            let before = then.get(k).copied().unwrap_or(0);
                            (k.clone(), v.saturating_sub(before) as f64 / secs / per(k))
                        })
                        .collect::<BTreeMap<_, _>>()
                };
            let parallelism = |stage: &str| {
                plan.stages
                    .iter()
                    .find(|s| s.name == stage)
                    .map_or(1.0, |s| s.parallelism.max(1) as f64)
            };
            let busy = rate(&busy_us, &last.busy_us, &|k| parallelism(k) * 1e6);
            self.points.push_back(Point {
                t: chrono::Utc::now().timestamp_millis(),
                rows: rate(&rows, &last.rows, &|_| 1.0),
                fill: fills(metrics, plan),
                busy: busy.into_iter().map(|(k, v)| (k, v.min(1.0))).collect(),
            });
            let keep = (SPAN.as_secs() / STEP.as_secs()) as usize;
            while self.points.len() > keep {
                self.points.pop_front();
            }
        }
        self.last = Some(Last {
            at: now,
            run: Arc::downgrade(metrics),
            rows,
            busy_us,
        });
    }
}

/// Rows so far at each node.
fn counts(m: &PipelineMetrics) -> BTreeMap<String, u64> {
    let mut rows = BTreeMap::new();
    rows.insert(crate::telemetry::tail::SOURCE.to_string(), m.source_rows.get());
    for s in &m.stages {
        rows.insert(s.name.clone(), s.rows_out.get());
    }
    for (name, c) in &m.sinks {
        if !name.contains(':') {
            rows.insert(name.clone(), c.get());
        }
    }
    rows
}

/// The fill of the hop into each stage and sink.
fn fills(m: &PipelineMetrics, plan: &Plan) -> BTreeMap<String, f64> {
    let bounds = plan.channels;
    let channels = m.channels.lock().unwrap_or_else(|e| e.into_inner());
    channels
        .iter()
        .filter_map(|c| {
            let node = c
                .name
                .strip_prefix("stage:")
                .or_else(|| c.name.strip_prefix("sink:"))?;
            Some((node.to_string(), c.fill(bounds.max_rows, bounds.max_bytes)))
        })
        .collect()
}
