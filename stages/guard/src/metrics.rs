//! What the guard stage counts of its own: findings by kind and action,
//! exported as `sluice_guard_findings_total{kind,action}`, in the API's
//! detail and in the run summary, through [`OwnMetrics`].

use serde_json::json;
use sluice_connector_sdk::metrics::{Counter, OwnMetrics, Sample, SeriesKind};

use crate::kind::{Action, Kind};

#[derive(Debug, Default)]
pub struct GuardMetrics {
    /// Findings, by kind and by the action taken.
    findings: [[Counter; 6]; 8],
    /// Texts scanned and their bytes.
    pub texts: Counter,
    pub bytes: Counter,
}

impl GuardMetrics {
    pub fn found(&self, kind: Kind, action: Action) {
        self.findings[kind.index()][action.index()].add(1);
    }

    pub fn count(&self, kind: Kind, action: Action) -> u64 {
        self.findings[kind.index()][action.index()].get()
    }

    fn nonzero(&self) -> impl Iterator<Item = (Kind, Action, u64)> + '_ {
        Kind::ALL.into_iter().flat_map(move |k| {
            Action::ALL
                .into_iter()
                .map(move |a| (k, a, self.count(k, a)))
                .filter(|(_, _, n)| *n > 0)
        })
    }
}

impl OwnMetrics for GuardMetrics {
    fn samples(&self) -> Vec<Sample> {
        let mut out: Vec<Sample> = self
            .nonzero()
            .map(|(k, a, n)| Sample {
                name: "sluice_guard_findings_total",
                help: "Sensitive spans the guard stage found, by kind and the action taken.",
                kind: SeriesKind::Counter,
                value: n as f64,
                labels: vec![("kind", k.name().to_string()), ("action", a.name().to_string())],
            })
            .collect();
        if self.texts.get() > 0 {
            out.push(Sample {
                name: "sluice_guard_scanned_bytes_total",
                help: "Bytes of text the guard stage scanned.",
                kind: SeriesKind::Counter,
                value: self.bytes.get() as f64,
                labels: Vec::new(),
            });
        }
        out
    }

    fn detail(&self) -> Option<(&'static str, serde_json::Value)> {
        let mut by_kind = serde_json::Map::new();
        for (k, a, n) in self.nonzero() {
            let entry = by_kind.entry(k.name()).or_insert_with(|| json!({}));
            entry[a.name()] = json!(n);
        }
        Some((
            "guard",
            json!({"texts": self.texts.get(), "bytes": self.bytes.get(), "findings": by_kind}),
        ))
    }

    fn summary(&self, stage: &str) -> Option<String> {
        let parts: Vec<String> = self
            .nonzero()
            .map(|(k, a, n)| format!("{n} {} {}", k.name(), past(a)))
            .collect();
        Some(if parts.is_empty() {
            format!("{stage}: {} texts scanned, nothing found", self.texts.get())
        } else {
            format!(
                "{stage}: {} texts scanned; {}",
                self.texts.get(),
                parts.join(", ")
            )
        })
    }
}

fn past(a: Action) -> &'static str {
    match a {
        Action::Redact => "redacted",
        Action::Mask => "masked",
        Action::Hash => "hashed",
        Action::Flag => "flagged",
        Action::Drop => "dropped",
        Action::DeadLetter => "dead-lettered",
    }
}
