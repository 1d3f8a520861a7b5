//! Applying span actions to a text: each finding's span is redacted, masked,
//! hashed or left (flag), and each finding's offsets are given in Unicode
//! scalar values into the text as it leaves the stage, the same unit as the
//! chunk stage's `char_start`/`char_end`.

use crate::kind::{Action, Finding, Kind};

/// A finding as recorded: where it is in the output text and what was done.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub kind: Kind,
    pub start: u64,
    pub end: u64,
    pub rule: &'static str,
    pub score: f32,
    pub action: Action,
}

/// How spans are replaced.
#[derive(Clone)]
pub struct Rewriter {
    /// `{kind}` is replaced by the kind's name.
    pub redact_with: String,
    /// The key of `hash` (derived from the configured secret).
    pub key: Option<[u8; 32]>,
}

impl Rewriter {
    /// The text with every span action applied, and the findings at their
    /// places in it. `actions[i]` is what to do with `findings[i]`;
    /// findings are sorted and do not overlap.
    pub fn apply(
        &self,
        text: &str,
        findings: &[Finding],
        actions: &[Action],
    ) -> (Option<String>, Vec<Recorded>) {
        let changes = actions
            .iter()
            .any(|a| matches!(a, Action::Redact | Action::Mask | Action::Hash));
        let mut out = String::with_capacity(if changes { text.len() + 16 } else { 0 });
        let mut recorded = Vec::with_capacity(findings.len());
        let (mut last, mut chars) = (0usize, 0u64);
        for (f, action) in findings.iter().zip(actions) {
            let gap = &text[last..f.start];
            chars += gap.chars().count() as u64;
            let span = &text[f.start..f.end];
            let replaced = match action {
                Action::Redact => self.redact_with.replace("{kind}", f.kind.name()),
                Action::Mask => mask(span, f.kind),
                Action::Hash => self.hash(span, f.kind),
                Action::Flag | Action::Drop | Action::DeadLetter => span.to_string(),
            };
            let len = replaced.chars().count() as u64;
            if changes {
                out.push_str(gap);
                out.push_str(&replaced);
            }
            recorded.push(Recorded {
                kind: f.kind,
                start: chars,
                end: chars + len,
                rule: f.rule,
                score: f.score,
                action: *action,
            });
            chars += len;
            last = f.end;
        }
        if changes {
            out.push_str(&text[last..]);
        }
        (changes.then_some(out), recorded)
    }

    /// `<kind:16 hex>`: a keyed BLAKE3 hash of the value, normalised so that
    /// the same card or address written two ways hashes the same.
    fn hash(&self, span: &str, kind: Kind) -> String {
        let value = normalise(span, kind);
        let key = self.key.unwrap_or([0; 32]);
        let hash = blake3::keyed_hash(&key, value.as_bytes());
        format!("<{}:{}>", kind.name(), &hash.to_hex()[..16])
    }
}

fn normalise(span: &str, kind: Kind) -> String {
    match kind {
        Kind::CreditCard | Kind::Phone | Kind::UsSsn => {
            span.chars().filter(|c| c.is_ascii_digit() || *c == '+').collect()
        }
        Kind::Iban => span
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_ascii_uppercase(),
        Kind::Email | Kind::IpAddress => span.to_ascii_lowercase(),
        Kind::Secret | Kind::PromptInjection => span.to_string(),
    }
}

/// Letters and digits become `*`; cards, IBANs, phone numbers and SSNs keep
/// their last four.
fn mask(span: &str, kind: Kind) -> String {
    let keep = match kind {
        Kind::CreditCard | Kind::Iban | Kind::Phone | Kind::UsSsn => 4,
        _ => 0,
    };
    let total = span.chars().filter(|c| c.is_alphanumeric()).count();
    let mut seen = 0;
    span.chars()
        .map(|c| {
            if !c.is_alphanumeric() {
                return c;
            }
            seen += 1;
            if seen + keep > total {
                c
            } else {
                '*'
            }
        })
        .collect()
}

/// The key of `hash`, derived from the configured secret.
pub fn derive_key(secret: &str) -> [u8; 32] {
    blake3::derive_key("sluice guard hash key 2026-12", secret.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(kind: Kind, start: usize, end: usize) -> Finding {
        Finding {
            kind,
            start,
            end,
            rule: "t",
            score: 1.0,
        }
    }

    #[test]
    fn offsets_point_into_the_output_text() {
        let text = "é mail a@b.io, card 4111 1111 1111 1111.";
        let s = text.find("a@b").unwrap();
        let c = text.find("4111").unwrap();
        let fs = [
            finding(Kind::Email, s, s + 6),
            finding(Kind::CreditCard, c, c + 19),
        ];
        let r = Rewriter {
            redact_with: "<{kind}>".into(),
            key: Some(derive_key("k")),
        };
        let (out, rec) = r.apply(text, &fs, &[Action::Redact, Action::Mask]);
        let out = out.unwrap();
        assert_eq!(out, "é mail <email>, card **** **** **** 1111.");
        let chars: Vec<char> = out.chars().collect();
        let at = |r: &Recorded| chars[r.start as usize..r.end as usize].iter().collect::<String>();
        assert_eq!(at(&rec[0]), "<email>");
        assert_eq!(at(&rec[1]), "**** **** **** 1111");
    }

    #[test]
    fn hash_is_keyed_and_normalised() {
        let text = "4111-1111-1111-1111 and 4111 1111 1111 1111";
        let fs = [
            finding(Kind::CreditCard, 0, 19),
            finding(Kind::CreditCard, 24, 43),
        ];
        let r = |k: &str| Rewriter {
            redact_with: String::new(),
            key: Some(derive_key(k)),
        };
        let (a, _) = r("one").apply(text, &fs, &[Action::Hash, Action::Hash]);
        let a = a.unwrap();
        let (first, second) = a.split_once(" and ").unwrap();
        assert_eq!(first, second, "the same card written two ways hashes the same");
        let (b, _) = r("two").apply(text, &fs, &[Action::Hash, Action::Hash]);
        assert_ne!(a, b.unwrap(), "another key, another hash");
        assert!(!a.contains("1111"));
    }

    #[test]
    fn flag_leaves_the_text() {
        let r = Rewriter {
            redact_with: "x".into(),
            key: None,
        };
        let (out, rec) = r.apply("a@b.io", &[finding(Kind::Email, 0, 6)], &[Action::Flag]);
        assert!(out.is_none());
        assert_eq!((rec[0].start, rec[0].end), (0, 6));
    }
}
