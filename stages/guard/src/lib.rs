//! The `guard` stage: PII, secrets and prompt injection found in a text
//! column, recorded without their values, and redacted, masked, hashed,
//! flagged, dropped or quarantined.
//!
//! ```yaml
//! - name: guard
//!   type: guard
//!   column: text              # any text column; after parse or after chunk
//!   detect: [email, phone, credit_card, iban, ip_address, us_ssn, secret, prompt_injection]
//!   action: redact            # redact | mask | hash | flag | drop | dead_letter
//!   redact_with: "<{kind}>"   # what a redacted span becomes
//!   per_kind: {secret: dead_letter, prompt_injection: flag}
//!   hash_key: ${GUARD_HASH_KEY}   # needed by `hash`: 16 characters or more
//!   phone_region: US          # numbers without +country are read in this region
//!   injection_threshold: 0.5  # score at which injection phrases are findings
//! ```
//!
//! - [`scan`]: one pass of one multi-pattern regex ([`rules`]) over the text;
//!   candidates are validated ([`validate`]: Luhn, IBAN mod 97, libphonenumber,
//!   IP parses, SSN rules, JWT headers, entropy) before they count.
//! - [`inject`]: how instruction phrases and hidden text add up to a score.
//! - [`rewrite`]: span actions, with offsets into the output text.
//! - [`transform`]: row actions (`drop`, `dead_letter`), the findings column
//!   `guard_findings` (kind, start, end, rule, score, action) and the audit
//!   table `guard_findings` in `sluice sql` (document, chunk, kind, rule,
//!   action, score, start, end, plus the stage and epoch).
//!
//! Put the guard before chunk: the chunks (and their `char_start`/`char_end`)
//! are then cut from the redacted text. After chunk it works on each chunk,
//! and its offsets point into the chunk's text.

pub mod columns;
pub mod inject;
pub mod kind;
pub mod metrics;
pub mod rewrite;
pub mod rules;
pub mod scan;
pub mod transform;
pub mod validate;

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};
use serde::Deserialize;
use sluice_connector_sdk::stage::{require_text, AuditTable, StageConfig, StageContext, StageRunner};
use sluice_connector_sdk::{ConfigIssue, ConnectorError, PlanContext, Result};

pub use kind::{Action, Finding, Kind};
pub use scan::Scanner;

#[derive(Deserialize)]
pub struct GuardConfig {
    #[serde(default = "default_column")]
    pub column: String,
    #[serde(default = "all_kinds")]
    pub detect: Vec<Kind>,
    #[serde(default = "default_action")]
    pub action: Action,
    #[serde(default = "default_redact_with")]
    pub redact_with: String,
    #[serde(default)]
    pub per_kind: HashMap<Kind, Action>,
    #[serde(default)]
    pub hash_key: Option<String>,
    #[serde(default = "default_region")]
    pub phone_region: String,
    #[serde(default = "default_threshold")]
    pub injection_threshold: f32,
    #[serde(default = "default_findings_column")]
    pub findings_column: String,
}

/// The hash key never appears in a debug print.
impl std::fmt::Debug for GuardConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardConfig")
            .field("column", &self.column)
            .field("detect", &self.detect)
            .field("action", &self.action)
            .field("per_kind", &self.per_kind)
            .field("hash_key", &self.hash_key.as_ref().map(|_| "<set>"))
            .finish_non_exhaustive()
    }
}

fn default_column() -> String {
    "text".into()
}
fn all_kinds() -> Vec<Kind> {
    Kind::ALL.to_vec()
}
fn default_action() -> Action {
    Action::Redact
}
fn default_redact_with() -> String {
    "<{kind}>".into()
}
fn default_region() -> String {
    "US".into()
}
fn default_threshold() -> f32 {
    0.5
}
fn default_findings_column() -> String {
    columns::AUDIT_TABLE.into()
}

impl GuardConfig {
    /// A config with every default (all kinds, redact), for benches and tests.
    pub fn new() -> Self {
        serde_json::from_value(serde_json::json!({})).expect("defaults")
    }

    fn region(&self) -> Option<phonenumber::country::Id> {
        phonenumber::country::Id::from_str(&self.phone_region.to_ascii_uppercase()).ok()
    }

    fn uses(&self, action: Action) -> bool {
        self.action == action || self.per_kind.values().any(|a| *a == action)
    }

    /// The compiled scanner for these settings.
    pub fn scanner(&self) -> Result<Scanner> {
        let region = self.region().unwrap_or(phonenumber::country::Id::US);
        Scanner::new(&self.detect, region, self.injection_threshold)
            .map_err(|e| ConnectorError::internal("the guard's rules").with_source(e))
    }

    fn output_schema(&self, input: &Schema) -> SchemaRef {
        let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new(&self.findings_column, columns::findings_type(), true));
        Arc::new(Schema::new(fields).with_metadata(input.metadata().clone()))
    }
}

impl Default for GuardConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl StageConfig for GuardConfig {
    fn validate(&self) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        if self.detect.is_empty() {
            issues.push(
                ConfigIssue::new(Some("detect"), "name at least one kind").with_hint(
                    "email, phone, credit_card, iban, ip_address, us_ssn, secret, prompt_injection",
                ),
            );
        }
        for kind in self.per_kind.keys().filter(|k| !self.detect.contains(k)) {
            issues.push(ConfigIssue::new(
                Some("per_kind"),
                format!("`{}` has an action but is not in `detect`", kind.name()),
            ));
        }
        if self.region().is_none() {
            issues.push(
                ConfigIssue::new(
                    Some("phone_region"),
                    format!("`{}` is not a region code", self.phone_region),
                )
                .with_hint("a two-letter ISO 3166 code such as US, GB or DE"),
            );
        }
        if !(self.injection_threshold > 0.0 && self.injection_threshold <= 1.0) {
            issues.push(ConfigIssue::new(
                Some("injection_threshold"),
                "must be above 0 and at most 1",
            ));
        }
        match (&self.hash_key, self.uses(Action::Hash)) {
            (None, true) => issues.push(
                ConfigIssue::new(Some("hash_key"), "the `hash` action needs a key")
                    .with_hint("hash_key: ${GUARD_HASH_KEY}, 16 characters or more, from the environment"),
            ),
            (Some(k), _) if k.chars().count() < 16 => issues.push(ConfigIssue::new(
                Some("hash_key"),
                format!("is {} characters; use 16 or more", k.chars().count()),
            )),
            _ => {}
        }
        if let Err(e) = self.scanner() {
            issues.push(ConfigIssue::new(None, e.to_string()));
        }
        issues
    }

    fn plan(
        &self,
        _ctx: &PlanContext,
        input: &SchemaRef,
    ) -> std::result::Result<SchemaRef, Vec<ConfigIssue>> {
        let mut issues = Vec::new();
        require_text(input, &self.column, "column", "the guard", None, &mut issues);
        if input.field_with_name(&self.findings_column).is_ok() {
            issues.push(
                ConfigIssue::new(
                    Some("findings_column"),
                    format!("the input already has a column `{}`", self.findings_column),
                )
                .with_hint("a second guard needs its own findings_column"),
            );
        }
        if issues.is_empty() {
            Ok(self.output_schema(input))
        } else {
            Err(issues)
        }
    }

    fn build(&self, ctx: &StageContext) -> Result<StageRunner> {
        let metrics = Arc::new(metrics::GuardMetrics::default());
        let _ = ctx.metrics.own.set(metrics.clone());
        Ok(StageRunner::PerBatch(Arc::new(transform::Guard {
            stage: ctx.name.clone(),
            scanner: self.scanner()?,
            rewriter: rewrite::Rewriter {
                redact_with: self.redact_with.clone(),
                key: self.hash_key.as_deref().map(rewrite::derive_key),
            },
            action: self.action,
            per_kind: self.per_kind.clone(),
            column: self.column.clone(),
            output: ctx.output.clone(),
            audit: columns::audit_schema(),
            metrics,
        })))
    }

    fn audit(&self) -> Option<AuditTable> {
        Some(AuditTable {
            name: columns::AUDIT_TABLE.into(),
            schema: columns::audit_schema(),
        })
    }

    fn scrubs(&self) -> bool {
        true
    }
}
