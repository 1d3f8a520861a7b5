//! `GET /metrics`: every pipeline's counters in the Prometheus text format
//! (version 0.0.4). Each family is written once, with one sample per pipeline
//! (and stage or sink). Counters restart at 0 when a pipeline restarts, which
//! Prometheus's `rate()` handles as a counter reset.

use std::fmt::Write;

use super::supervisor::{State, Status};
use super::Daemon;
use crate::telemetry::metrics::{SeriesKind, StageMetrics};
use crate::telemetry::PipelineMetrics;

struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    samples: Vec<(String, f64)>,
}

/// The families, in the order they are written.
#[derive(Default)]
struct Families(Vec<Family>);

impl Families {
    fn add(
        &mut self,
        name: &'static str,
        kind: &'static str,
        help: &'static str,
        labels: &[(&str, &str)],
        value: f64,
    ) {
        let labels = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
            .collect::<Vec<_>>()
            .join(",");
        let sample = (labels, value);
        match self.0.iter_mut().find(|f| f.name == name) {
            Some(f) => f.samples.push(sample),
            None => self.0.push(Family {
                name,
                kind,
                help,
                samples: vec![sample],
            }),
        }
    }

    fn counter(&mut self, name: &'static str, help: &'static str, labels: &[(&str, &str)], value: u64) {
        self.add(name, "counter", help, labels, value as f64);
    }

    fn gauge(&mut self, name: &'static str, help: &'static str, labels: &[(&str, &str)], value: f64) {
        self.add(name, "gauge", help, labels, value);
    }

    fn render(&self) -> String {
        let mut out = String::new();
        for f in &self.0 {
            let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
            let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind);
            for (labels, value) in &f.samples {
                if labels.is_empty() {
                    let _ = writeln!(out, "{} {}", f.name, number(*value));
                } else {
                    let _ = writeln!(out, "{}{{{labels}}} {}", f.name, number(*value));
                }
            }
        }
        out
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// The whole scrape.
pub fn render(daemon: &Daemon) -> String {
    let mut f = Families::default();
    let now_ms = chrono::Utc::now().timestamp_millis().max(0) as u64;
    f.gauge(
        "sluice_daemon_uptime_seconds",
        "Seconds since the daemon started.",
        &[],
        daemon.started.elapsed().as_secs_f64(),
    );
    for p in daemon.pipelines() {
        let m = p.metrics();
        let pl = p.name.as_str();
        status_series(&mut f, pl, &p.status());
        progress_series(&mut f, pl, &m, now_ms);
        let bounds = p.plan().map(|p| p.channels).unwrap_or_default();
        let fill = |name: String| {
            m.channel(&name)
                .map(|c| c.fill(bounds.max_rows, bounds.max_bytes))
        };
        for st in &m.stages {
            stage_series(&mut f, pl, st, fill(format!("stage:{}", st.name)));
        }
        // A rate a stage asks for, over the daemon's window (see `Daemon::tick`).
        let rate = m.stages.iter().find_map(|s| s.own().and_then(|o| o.rate()));
        if let Some(series) = rate.filter(|r| r.count > 0) {
            f.gauge(series.name, series.help, &[("pipeline", pl)], p.rate());
        }
        if let Some(plan) = p.plan() {
            if let Some(report) = crate::eval::history::last(&plan) {
                eval_series(&mut f, pl, &report);
            }
        }
        for (sink, rows) in &m.sinks {
            let fill = fill(format!("sink:{sink}"));
            let l = [("pipeline", pl), ("sink", sink.as_str())];
            f.counter(
                "sluice_sink_rows_total",
                "Rows written to the sink.",
                &l,
                rows.get(),
            );
            if let Some(fill) = fill {
                f.gauge(
                    "sluice_sink_queue_fill",
                    "How full the sink's input channel is.",
                    &l,
                    fill,
                );
            }
        }
    }
    f.render()
}

/// The last `sluice eval` of the pipeline: its figures per mode and cutoff.
fn eval_series(f: &mut Families, pl: &str, r: &crate::eval::Report) {
    let at = chrono::DateTime::parse_from_rfc3339(&r.at).map_or(0.0, |t| t.timestamp() as f64);
    let l = [("pipeline", pl), ("sink", r.sink.as_str())];
    f.gauge(
        "sluice_eval_timestamp_seconds",
        "When the last eval ran (Unix time).",
        &l,
        at,
    );
    f.gauge(
        "sluice_eval_questions",
        "Questions in the last eval.",
        &l,
        r.questions as f64,
    );
    for m in &r.modes {
        let mode = crate::eval::mode_name(m.mode);
        let lm = [("pipeline", pl), ("sink", r.sink.as_str()), ("mode", mode)];
        for a in &m.at_k {
            let k = a.k.to_string();
            let lk = [lm[0], lm[1], lm[2], ("k", k.as_str())];
            f.gauge(
                "sluice_eval_recall",
                "Recall@k of the last eval.",
                &lk,
                a.scores.recall,
            );
            f.gauge("sluice_eval_mrr", "MRR@k of the last eval.", &lk, a.scores.mrr);
            f.gauge("sluice_eval_ndcg", "nDCG@k of the last eval.", &lk, a.scores.ndcg);
        }
        f.gauge(
            "sluice_eval_latency_p50_seconds",
            "Median search latency in the last eval.",
            &lm,
            m.latency_ms.p50 / 1e3,
        );
        f.gauge(
            "sluice_eval_latency_p95_seconds",
            "95th percentile search latency in the last eval.",
            &lm,
            m.latency_ms.p95 / 1e3,
        );
    }
}

/// The supervisor's view: state, config errors, restarts, reloads.
fn status_series(f: &mut Families, pl: &str, s: &Status) {
    let state = serde_json::to_value(s.state)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default();
    f.gauge(
        "sluice_pipeline_state",
        "1 for the state the pipeline is in.",
        &[("pipeline", pl), ("state", &state)],
        1.0,
    );
    f.gauge(
        "sluice_pipeline_running",
        "1 while the pipeline runs.",
        &[("pipeline", pl)],
        f64::from(u8::from(s.state == State::Running)),
    );
    f.gauge(
        "sluice_pipeline_config_errors",
        "1 when the pipeline's file holds a version that was refused.",
        &[("pipeline", pl)],
        f64::from(u8::from(s.config_errors.is_some())),
    );
    f.counter(
        "sluice_pipeline_restarts_total",
        "Runs started again after a failure.",
        &[("pipeline", pl)],
        s.restarts,
    );
    f.counter(
        "sluice_pipeline_reloads_total",
        "New versions of the file taken up.",
        &[("pipeline", pl)],
        s.reloads,
    );
}

/// Checkpoints, the source and the dead-letter store.
fn progress_series(f: &mut Families, pl: &str, m: &PipelineMetrics, now_ms: u64) {
    f.gauge(
        "sluice_epoch_committed",
        "The last checkpointed epoch.",
        &[("pipeline", pl)],
        m.last_committed_epoch.get() as f64,
    );
    let last = m.last_checkpoint_ms.get();
    if last > 0 {
        f.gauge(
            "sluice_checkpoint_age_seconds",
            "Seconds since the last checkpoint was written.",
            &[("pipeline", pl)],
            now_ms.saturating_sub(last) as f64 / 1e3,
        );
        f.gauge(
            "sluice_checkpoint_duration_seconds",
            "How long writing the last checkpoint took.",
            &[("pipeline", pl)],
            m.checkpoint_duration_us.get() as f64 / 1e6,
        );
    }
    f.counter(
        "sluice_source_rows_total",
        "Documents the source emitted.",
        &[("pipeline", pl)],
        m.source_rows.get(),
    );
    f.counter(
        "sluice_source_bytes_total",
        "Arrow bytes the source emitted.",
        &[("pipeline", pl)],
        m.source_bytes.get(),
    );
    if let Some(lag) = m.source_lag.get() {
        f.gauge(
            "sluice_kafka_consumer_lag",
            "Messages between the consumer's position and the end of its partitions.",
            &[("pipeline", pl)],
            lag as f64,
        );
    }
    f.counter(
        "sluice_dead_letters_total",
        "Documents sent to the dead-letter store.",
        &[("pipeline", pl)],
        m.dead_letters.get(),
    );
    f.gauge(
        "sluice_tail_watchers",
        "Live tails (sluice tail, the console) following a point of the pipeline.",
        &[("pipeline", pl)],
        m.tails.watchers() as f64,
    );
}

/// Every stage's counters, its queue fill, and the series it adds of its own.
fn stage_series(f: &mut Families, pl: &str, st: &StageMetrics, fill: Option<f64>) {
    let l = [("pipeline", pl), ("stage", st.name.as_str())];
    f.counter(
        "sluice_stage_rows_in_total",
        "Rows into the stage.",
        &l,
        st.rows_in.get(),
    );
    f.counter(
        "sluice_stage_rows_out_total",
        "Rows out of the stage.",
        &l,
        st.rows_out.get(),
    );
    f.counter(
        "sluice_stage_bytes_out_total",
        "Arrow bytes out of the stage.",
        &l,
        st.bytes_out.get(),
    );
    f.counter(
        "sluice_stage_batches_total",
        "Batches into the stage.",
        &l,
        st.batches.get(),
    );
    f.add(
        "sluice_stage_busy_seconds_total",
        "counter",
        "Time spent in the stage's code.",
        &l,
        st.busy_us.get() as f64 / 1e6,
    );
    f.counter(
        "sluice_stage_dead_letters_total",
        "Documents the stage gave up on.",
        &l,
        st.dead_letters.get(),
    );
    if let Some(fill) = fill {
        f.gauge(
            "sluice_stage_queue_fill",
            "How full the stage's input channel is (0 to 1, rows or bytes).",
            &l,
            fill,
        );
    }
    for sample in st.own().map(|o| o.samples()).unwrap_or_default() {
        let mut l = l.to_vec();
        l.extend(sample.labels.iter().map(|(k, v)| (*k, v.as_str())));
        match sample.kind {
            SeriesKind::Counter => f.counter(sample.name, sample.help, &l, sample.value as u64),
            SeriesKind::Gauge => f.gauge(sample.name, sample.help, &l, sample.value),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_written_once_with_every_sample_and_escaped_labels() {
        let mut f = Families::default();
        f.counter("x_total", "X.", &[("pipeline", "a")], 3);
        f.gauge("y", "Y.", &[("pipeline", "a\"b")], 0.5);
        f.counter("x_total", "X.", &[("pipeline", "b")], 4);
        assert_eq!(
            f.render(),
            "# HELP x_total X.\n# TYPE x_total counter\nx_total{pipeline=\"a\"} 3\nx_total{pipeline=\"b\"} 4\n\
             # HELP y Y.\n# TYPE y gauge\ny{pipeline=\"a\\\"b\"} 0.5\n"
        );
    }
}
