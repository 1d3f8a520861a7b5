//! One pass over a text with every rule at once ([`Scanner::scan`]): a
//! multi-pattern regex finds candidates leftmost-first, and each candidate is
//! checked ([`crate::validate`]) before it becomes a [`Finding`]. A candidate
//! that fails its check lets the search go on from its next character, so a
//! failed IBAN does not hide a card number inside it.

use std::sync::OnceLock;

use regex::Regex;

use crate::inject::Injection;
use crate::kind::{Finding, Kind};
use crate::rules::{zero_width_rule, Check, Rule, RULES};
use crate::validate;

/// Candidates longer than this that fail their check are skipped whole
/// rather than searched again from their next character, so hostile text
/// cannot make the scan quadratic.
const RESCAN_LIMIT: usize = 64;

/// The compiled rules and what to look for.
pub struct Scanner {
    regex: Regex,
    /// The capture group of each rule.
    groups: Vec<usize>,
    enabled: [bool; 8],
    region: phonenumber::country::Id,
    zero_width: usize,
    /// Injection scores at or above this are findings.
    pub threshold: f32,
}

impl std::fmt::Debug for Scanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scanner")
            .field("threshold", &self.threshold)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the guard's rules do not compile: {0}")]
pub struct RulesError(#[from] regex::Error);

/// One regex of every rule, each in a group named `r<index>`, with the
/// group of each rule. The rules are constants, so they are compiled once per
/// process: `validate`, `build` and every plan a CLI command loads share it.
fn compiled() -> Result<&'static (Regex, Vec<usize>), RulesError> {
    static COMPILED: OnceLock<Result<(Regex, Vec<usize>), regex::Error>> = OnceLock::new();
    let built = COMPILED.get_or_init(|| {
        let alternation: Vec<String> = RULES
            .iter()
            .enumerate()
            .map(|(i, r)| format!("(?P<r{i}>{})", r.pattern))
            .collect();
        let regex = regex::RegexBuilder::new(&alternation.join("|"))
            .size_limit(64 << 20)
            .build()?;
        let groups = (0..RULES.len())
            .map(|k| {
                let name = format!("r{k}");
                regex
                    .capture_names()
                    .position(|n| n == Some(name.as_str()))
                    .unwrap_or(0)
            })
            .collect();
        Ok((regex, groups))
    });
    built.as_ref().map_err(|e| RulesError(e.clone()))
}

impl Scanner {
    pub fn new(kinds: &[Kind], region: phonenumber::country::Id, threshold: f32) -> Result<Self, RulesError> {
        let (regex, groups) = compiled()?;
        let (regex, groups) = (regex.clone(), groups.clone());
        let mut enabled = [false; 8];
        for k in kinds {
            enabled[k.index()] = true;
        }
        Ok(Scanner {
            regex,
            groups,
            enabled,
            region,
            zero_width: zero_width_rule(),
            threshold,
        })
    }

    /// Every finding in `text`, sorted by start, not overlapping; offsets
    /// are bytes into `text`.
    pub fn scan(&self, text: &str) -> Vec<Finding> {
        let mut found = Vec::new();
        let mut injection = Injection::default();
        let mut zero_width = false;
        self.search(text, &mut found, &mut injection, &mut zero_width);
        if zero_width && self.enabled[Kind::PromptInjection.index()] {
            self.rescan_without_zero_width(text, &mut injection);
        }
        found.retain(|f| self.enabled[f.kind.index()]);
        if self.enabled[Kind::PromptInjection.index()] {
            found.extend(injection.findings(self.threshold));
        }
        settle(found)
    }

    fn search(&self, text: &str, found: &mut Vec<Finding>, injection: &mut Injection, zero_width: &mut bool) {
        let mut pos = 0;
        while pos < text.len() {
            let Some(caps) = self.regex.captures_at(text, pos) else {
                break;
            };
            let whole = caps.get(0).expect("a match has group 0");
            let (start, end) = (whole.start(), whole.end());
            let index = (0..RULES.len())
                .find(|k| caps.get(self.groups[*k]).is_some())
                .unwrap_or(0);
            let rule = &RULES[index];
            *zero_width |= index == self.zero_width;
            let before = found.len();
            self.check(rule, text, start, end, found, injection);
            pos = if rule.name == "html_comment" {
                // What the comment hides is searched too.
                start + "<!--".len()
            } else if found.len() > before
                || end - start > RESCAN_LIMIT
                || matches!(rule.check, Check::Instruction(_) | Check::Hidden(_))
            {
                end.max(start + 1)
            } else {
                next_char(text, start)
            };
            while !text.is_char_boundary(pos) {
                pos += 1;
            }
        }
    }

    fn check(
        &self,
        rule: &Rule,
        text: &str,
        start: usize,
        end: usize,
        found: &mut Vec<Finding>,
        injection: &mut Injection,
    ) {
        let span = &text[start..end];
        let mut push = |kind: Kind, s: usize, e: usize, name: &'static str| {
            found.push(Finding {
                kind,
                start: s,
                end: e,
                rule: name,
                score: 1.0,
            })
        };
        match rule.check {
            Check::NumberRun => self.number_run(text, start, end, found),
            Check::Iban => {
                if validate::iban(span) {
                    push(Kind::Iban, start, end, "mod97");
                }
            }
            Check::Email => {
                if let Some((s, e)) = email(text, start, end) {
                    push(Kind::Email, s, e, "email");
                }
            }
            Check::Ipv6 => {
                if bounded(text, start, end, b":.") && validate::ipv6(span) {
                    push(Kind::IpAddress, start, end, "ipv6");
                }
            }
            Check::Token | Check::PrivateKey => push(Kind::Secret, start, end, rule.name),
            Check::Jwt => {
                if validate::jwt(span) {
                    push(Kind::Secret, start, end, "jwt");
                }
            }
            Check::Assignment => {
                if let Some((s, e, name)) = assignment(span) {
                    push(Kind::Secret, start + s, start + e, name);
                }
            }
            Check::Instruction(w) | Check::Hidden(w) => injection.hit(start, end, rule.name, w),
        }
    }

    /// A run of digits: the longest leftmost windows of its space-separated
    /// groups that are a card, an SSN, an IPv4 address or a phone number.
    fn number_run(&self, text: &str, start: usize, end: usize, found: &mut Vec<Finding>) {
        let run = &text[start..end];
        let groups: Vec<(usize, usize)> = split_spaces(run);
        let mut i = 0;
        while i < groups.len() {
            let mut matched = false;
            for len in (1..=(groups.len() - i).min(6)).rev() {
                let (s, e) = (groups[i].0, groups[i + len - 1].1);
                if let Some((kind, rule)) = self.number(&run[s..e]) {
                    found.push(Finding {
                        kind,
                        start: start + s,
                        end: start + e,
                        rule,
                        score: 1.0,
                    });
                    i += len;
                    matched = true;
                    break;
                }
            }
            if !matched {
                i += 1;
            }
        }
    }

    /// What one window of a number run is, if anything.
    fn number(&self, w: &str) -> Option<(Kind, &'static str)> {
        let w = w.trim_end_matches(['(', ')', '.', '-', '/']);
        let digits: Vec<u8> = w.bytes().filter(u8::is_ascii_digit).collect();
        let seps = || w.bytes().filter(|b| !b.is_ascii_digit());
        let only = |allowed: &[u8]| seps().all(|b| allowed.contains(&b));
        let on = |k: Kind| self.enabled[k.index()];
        if on(Kind::IpAddress) && only(b".") && w.matches('.').count() == 3 && validate::ipv4(w) {
            return Some((Kind::IpAddress, "ipv4"));
        }
        if on(Kind::CreditCard) && only(b" -") && validate::credit_card(&digits) {
            return Some((Kind::CreditCard, "luhn"));
        }
        if on(Kind::UsSsn) && digits.len() == 9 && ssn_shape(w) && validate::us_ssn(&digits) {
            return Some((Kind::UsSsn, "ssn"));
        }
        if on(Kind::Phone)
            && (7..=15).contains(&digits.len())
            && phone_shape(w)
            && validate::phone(w, self.region)
        {
            return Some((Kind::Phone, "phonenumber"));
        }
        None
    }

    /// Instructions hidden by zero-width characters between their letters:
    /// search again without them, and map the spans back.
    fn rescan_without_zero_width(&self, text: &str, injection: &mut Injection) {
        let mut clean = String::with_capacity(text.len());
        let mut origin = Vec::with_capacity(text.len() + 1);
        for (i, c) in text.char_indices() {
            if !matches!(c, '\u{200B}' | '\u{200C}' | '\u{200D}' | '\u{2060}' | '\u{FEFF}') {
                for _ in 0..c.len_utf8() {
                    origin.push(i);
                }
                clean.push(c);
            }
        }
        origin.push(text.len());
        let mut again = Injection::default();
        let (mut ignored, mut zw) = (Vec::new(), false);
        self.search(&clean, &mut ignored, &mut again, &mut zw);
        for hit in again.hits() {
            let end = if hit.end < origin.len() {
                origin[hit.end]
            } else {
                text.len()
            };
            injection.hit(
                origin[hit.start],
                end.max(origin[hit.start]),
                hit.rule,
                hit.weight,
            );
        }
    }
}

fn next_char(text: &str, at: usize) -> usize {
    at + text[at..].chars().next().map_or(1, char::len_utf8)
}

/// Whether the span stands alone: no letter, digit or one of `more` just
/// before or after it.
fn bounded(text: &str, start: usize, end: usize, more: &[u8]) -> bool {
    let bytes = text.as_bytes();
    let edge = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || more.contains(&b);
    let before = start > 0 && edge(bytes[start - 1]);
    let after = end < bytes.len() && edge(bytes[end]);
    !before && !after
}

/// The groups of a run between spaces: (start, end) byte offsets.
fn split_spaces(run: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, b) in run.bytes().enumerate() {
        match (b == b' ', start) {
            (false, None) => start = Some(i),
            (true, Some(s)) => {
                out.push((s, i));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, run.len()));
    }
    out
}

/// How a phone number is written: `+` and any grouping, or national digits
/// in three or more groups of two to four (`(415) 555-2671`, `415.555.2671`),
/// so that `2022-367537` (an order number) is not read as one.
fn phone_shape(w: &str) -> bool {
    if !w.bytes().all(|b| b.is_ascii_digit() || b" -.()+".contains(&b)) {
        return false;
    }
    if w.starts_with('+') {
        return w.bytes().any(|b| !b.is_ascii_digit() && b != b'+') || w.len() >= 9;
    }
    let groups: Vec<&str> = w
        .split(|c: char| !c.is_ascii_digit())
        .filter(|g| !g.is_empty())
        .collect();
    groups.len() >= 3 && groups.iter().all(|g| (2..=4).contains(&g.len()))
}

/// `123-45-6789`, `123 45 6789` or `123.45.6789`: three, two and four digits.
fn ssn_shape(w: &str) -> bool {
    let b = w.as_bytes();
    b.len() == 11
        && matches!(b[3], b'-' | b' ' | b'.')
        && b[3] == b[6]
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 3 || i == 6 || c.is_ascii_digit())
}

/// An email candidate trimmed of leading dots, with a valid domain.
fn email(text: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    let span = &text[start..end];
    let at = span.find('@')?;
    let lead = span[..at].bytes().take_while(|b| *b == b'.').count();
    let (local, domain) = (&span[lead..at], &span[at + 1..]);
    let ok =
        !local.is_empty() && !local.ends_with('.') && !local.contains("..") && validate::email_domain(domain);
    (ok && bounded(text, start + lead, end, b"@")).then_some((start + lead, end))
}

/// Where the secret value of a `key = value` assignment lies in `span`
/// (start, end), and the rule, when the value is a literal or random-looking
/// (not a placeholder, a variable or a call).
fn assignment(span: &str) -> Option<(usize, usize, &'static str)> {
    let op = span.find([':', '=']).filter(|i| *i > 0)?;
    let rest = &span[op..];
    let skip = op + rest.find(|c: char| !matches!(c, ':' | '=' | '>' | ' ' | '\t'))?;
    let quote = span[skip..].chars().next().filter(|c| matches!(c, '"' | '\''));
    let (start, end) = match quote {
        Some(q) => (skip + 1, span.len() - usize::from(span.ends_with(q))),
        None => (skip, span.len()),
    };
    let value = span.get(start..end)?;
    let lower = value.to_ascii_lowercase();
    let placeholder = value.starts_with(['$', '%', '*', '.', '/', '-', '#', '!', '?', '~', '<', '{'])
        || [
            "xxx", "***", "...", "example", "changeme", "your", "none", "null", "true", "false", "password",
            "secret", "token",
        ]
        .iter()
        .any(|p| lower.contains(p))
        || value.bytes().all(|b| b == value.as_bytes()[0]);
    if placeholder || value.chars().count() < 6 {
        return None;
    }
    if validate::high_entropy(value) {
        return Some((start, end, "high_entropy_assignment"));
    }
    let quoted = quote.is_some();
    let code_like =
        !quoted && (value.contains('.') || value.bytes().all(|b| b.is_ascii_alphabetic() || b == b'_'));
    let mixed = value.bytes().any(|b| b.is_ascii_digit()) && value.bytes().any(|b| b.is_ascii_alphabetic());
    let keyword = span[..op].to_ascii_lowercase();
    let password_word = ["password", "passwd", "pwd", "passphrase"]
        .iter()
        .any(|w| keyword.contains(w));
    (password_word && !code_like && (quoted || mixed)).then_some((start, end, "password_assignment"))
}

/// Sorted by start; where spans overlap, the earlier one wins, and at the
/// same start the longer one.
fn settle(mut found: Vec<Finding>) -> Vec<Finding> {
    found.sort_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
    let mut out: Vec<Finding> = Vec::with_capacity(found.len());
    for f in found {
        if out.last().is_none_or(|last| f.start >= last.end) {
            out.push(f);
        }
    }
    out
}
