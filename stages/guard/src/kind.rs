//! What the guard finds ([`Kind`]) and what it does about it ([`Action`]).

use serde::Deserialize;

/// A kind of sensitive span.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Email,
    Phone,
    CreditCard,
    Iban,
    IpAddress,
    UsSsn,
    Secret,
    PromptInjection,
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::Email,
        Kind::Phone,
        Kind::CreditCard,
        Kind::Iban,
        Kind::IpAddress,
        Kind::UsSsn,
        Kind::Secret,
        Kind::PromptInjection,
    ];

    /// The name used in YAML, the findings column, metrics and redactions.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Email => "email",
            Kind::Phone => "phone",
            Kind::CreditCard => "credit_card",
            Kind::Iban => "iban",
            Kind::IpAddress => "ip_address",
            Kind::UsSsn => "us_ssn",
            Kind::Secret => "secret",
            Kind::PromptInjection => "prompt_injection",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// What happens to a row with a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// The span becomes `redact_with` (`<{kind}>` by default).
    Redact,
    /// Each letter and digit of the span becomes `*`; cards, IBANs, phone
    /// numbers and SSNs keep their last four.
    Mask,
    /// The span becomes `<{kind}:{keyed hash}>`: equal values join, and
    /// nobody without the key can read or confirm them.
    Hash,
    /// The text is left as it is; the finding is recorded.
    Flag,
    /// The row is not passed on (a whole document becomes a delete, so an
    /// earlier version leaves the sinks too).
    Drop,
    /// The document goes to the dead-letter store with the kinds found.
    DeadLetter,
}

impl Action {
    pub const ALL: [Action; 6] = [
        Action::Redact,
        Action::Mask,
        Action::Hash,
        Action::Flag,
        Action::Drop,
        Action::DeadLetter,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Action::Redact => "redact",
            Action::Mask => "mask",
            Action::Hash => "hash",
            Action::Flag => "flag",
            Action::Drop => "drop",
            Action::DeadLetter => "dead_letter",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    /// Whether the action removes the whole row rather than a span.
    pub fn removes_row(self) -> bool {
        matches!(self, Action::Drop | Action::DeadLetter)
    }
}

/// One sensitive span of a text: byte offsets into the text scanned.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub kind: Kind,
    pub start: usize,
    pub end: usize,
    /// The rule that matched, e.g. `luhn`, `aws_access_key_id`.
    pub rule: &'static str,
    /// 1.0 for validated entities; the combined score for prompt injection.
    pub score: f32,
}
