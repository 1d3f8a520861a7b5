//! The rule table: every pattern the guard looks for, compiled into one
//! multi-pattern regex, and what each match is checked with.
//!
//! Order matters: where two patterns match at the same place, the one listed
//! first wins (leftmost-first), so specific shapes come before general ones.

/// What a match of a rule is handed to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Check {
    /// A run of digits and separators: a card, an SSN, an IPv4 address or a
    /// phone number, or nothing.
    NumberRun,
    Iban,
    Email,
    Ipv6,
    /// A token whose shape alone is the credential (a known prefix).
    Token,
    Jwt,
    PrivateKey,
    /// `password = value`, `api_key: value`: the value is the secret when it
    /// is a literal or random-looking.
    Assignment,
    /// Words aimed at a model, with their weight toward the injection score.
    Instruction(f32),
    /// Text a reader would not see, with its weight.
    Hidden(f32),
}

pub struct Rule {
    pub name: &'static str,
    pub pattern: &'static str,
    pub check: Check,
}

const fn rule(name: &'static str, check: Check, pattern: &'static str) -> Rule {
    Rule { name, pattern, check }
}

/// Whitespace between the words of a phrase.
macro_rules! ws {
    () => {
        r"[ \t\r\n]+"
    };
}

pub const RULES: &[Rule] = &[
    // Secrets with a shape of their own.
    rule(
        "private_key",
        Check::PrivateKey,
        r"-----BEGIN[A-Z ]{0,24} PRIVATE KEY(?: BLOCK)?-----(?s:.)*?-----END[A-Z ]{0,24} PRIVATE KEY(?: BLOCK)?-----",
    ),
    rule(
        "private_key_header",
        Check::PrivateKey,
        r"-----BEGIN[A-Z ]{0,24} PRIVATE KEY(?: BLOCK)?-----[A-Za-z0-9+/=\r\n \t:,\-]*",
    ),
    rule(
        "aws_access_key_id",
        Check::Token,
        r"(?-u:\b)(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}(?-u:\b)",
    ),
    rule(
        "github_token",
        Check::Token,
        r"(?-u:\b)(?:gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{22,})(?-u:\b)",
    ),
    rule(
        "slack_token",
        Check::Token,
        r"(?-u:\b)xox[abposr]-[A-Za-z0-9\-]{10,}",
    ),
    rule(
        "stripe_key",
        Check::Token,
        r"(?-u:\b)[rs]k_(?:live|test)_[0-9A-Za-z]{16,}(?-u:\b)",
    ),
    rule("google_api_key", Check::Token, r"(?-u:\b)AIza[0-9A-Za-z_\-]{35}"),
    rule(
        "openai_key",
        Check::Token,
        r"(?-u:\b)sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{32,}",
    ),
    rule(
        "jwt",
        Check::Jwt,
        r"(?-u:\b)eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*",
    ),
    rule(
        "credential_assignment",
        Check::Assignment,
        r#"(?i)(?-u:\b)[a-z0-9_\-]{0,24}(?:password|passwd|pwd|passphrase|secret|token|api_?key|apikey|access_?key|auth_?key|private_?key|credentials?)[a-z0-9_\-]{0,24}["']?[ \t]*(?::=|=>|=|:)[ \t]*(?:"[^"\r\n]{4,}"|'[^'\r\n]{4,}'|[^ \t\r\n"'`,;()<>\[\]{}]{4,})"#,
    ),
    // Entities.
    rule(
        "email",
        Check::Email,
        r"[A-Za-z0-9][A-Za-z0-9._%+\-]{0,63}@[A-Za-z0-9][A-Za-z0-9\-]{0,62}(?:\.[A-Za-z0-9][A-Za-z0-9\-]{0,62}){1,8}",
    ),
    rule(
        "iban",
        Check::Iban,
        r"(?-u:\b)[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?(?-u:\b)",
    ),
    rule(
        "ipv6",
        Check::Ipv6,
        r"[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:[0-9]{1,3}(?:\.[0-9]{1,3}){3})?",
    ),
    rule(
        "number",
        Check::NumberRun,
        r"(?:\+|\(|(?-u:\b))[0-9](?:[ .\-/]?[()]?[ .\-]?[0-9]){3,30}(?-u:\b)",
    ),
    // Prompt injection: instructions aimed at a model.
    rule(
        "ignore_instructions",
        Check::Instruction(0.9),
        concat!(
            r"(?i)(?:ignore|disregard|forget|skip|override)",
            ws!(),
            r"(?:all",
            ws!(),
            r"|any",
            ws!(),
            r"|the",
            ws!(),
            r"|your",
            ws!(),
            r"|of",
            ws!(),
            r"|everything",
            ws!(),
            r")*(?:previous|prior|above|earlier|preceding|former|original|system)",
            ws!(),
            r"(?:instructions?|prompts?|directions?|rules|messages|guidelines|context)"
        ),
    ),
    rule(
        "reveal_system_prompt",
        Check::Instruction(0.9),
        concat!(
            r"(?i)(?:reveal|print|show|repeat|output|leak|display|tell",
            ws!(),
            r"me|give",
            ws!(),
            r"me)",
            ws!(),
            r"(?:me",
            ws!(),
            r")?(?:your|the)",
            ws!(),
            r"(?:full",
            ws!(),
            r"|entire",
            ws!(),
            r"|hidden",
            ws!(),
            r"|initial",
            ws!(),
            r"|original",
            ws!(),
            r")*(?:system",
            ws!(),
            r"prompt|instructions|prompt)"
        ),
    ),
    rule(
        "role_override",
        Check::Instruction(0.7),
        concat!(
            r"(?i)you",
            ws!(),
            r"are",
            ws!(),
            r"(?:now|no",
            ws!(),
            r"longer)",
            ws!(),
            r"(?:an?",
            ws!(),
            r")?(?:DAN|in",
            ws!(),
            r"developer",
            ws!(),
            r"mode|unrestricted|unfiltered|jailbroken|free",
            ws!(),
            r"of|bound",
            ws!(),
            r"by|an?",
            ws!(),
            r"AI",
            ws!(),
            r"(?:without|with",
            ws!(),
            r"no))"
        ),
    ),
    rule(
        "new_instructions",
        Check::Instruction(0.6),
        concat!(
            r"(?i)(?:new|updated|real|actual)",
            ws!(),
            r"(?:system",
            ws!(),
            r")?instructions",
            ws!(),
            r"?:"
        ),
    ),
    rule(
        "chat_markup",
        Check::Instruction(0.6),
        r"(?i)<\|im_start\|>|<\|system\|>|\[/?INST\]|<</?SYS>>|###[ \t]*(?:system|instruction)[ \t]*:?",
    ),
    rule(
        "conceal_from_user",
        Check::Instruction(0.6),
        concat!(
            r"(?i)(?:do",
            ws!(),
            r"not|don't|never)",
            ws!(),
            r"(?:tell|inform|mention",
            ws!(),
            r"to|reveal",
            ws!(),
            r"to|let)",
            ws!(),
            r"the",
            ws!(),
            r"user"
        ),
    ),
    rule(
        "act_as",
        Check::Instruction(0.4),
        concat!(
            r"(?i)(?:pretend",
            ws!(),
            r"(?:you",
            ws!(),
            r"are|to",
            ws!(),
            r"be)|act",
            ws!(),
            r"as",
            ws!(),
            r"(?:if",
            ws!(),
            r"you",
            ws!(),
            r"were)?|roleplay",
            ws!(),
            r"as)",
            ws!(),
            r"(?:an?",
            ws!(),
            r")?(?:unrestricted|unfiltered|evil|malicious|jailbroken|different)"
        ),
    ),
    // Hidden text that survived the parse.
    rule(
        "zero_width",
        Check::Hidden(0.35),
        r"[\u{200B}\u{200C}\u{200D}\u{2060}\u{FEFF}]+",
    ),
    rule("html_comment", Check::Hidden(0.2), r"<!--(?s:.)*?-->"),
    rule(
        "hidden_style",
        Check::Hidden(0.3),
        r#"(?i)(?:color[ \t]*:[ \t]*(?:#fff(?:fff)?(?-u:\b)|white|rgba?\([ \t]*255[ \t]*,[ \t]*255[ \t]*,[ \t]*255)|font-size[ \t]*:[ \t]*0(?:px|pt|em)?[ \t]*[;"']|display[ \t]*:[ \t]*none|visibility[ \t]*:[ \t]*hidden|opacity[ \t]*:[ \t]*0[ \t]*[;"'])"#,
    ),
];

/// The index of the zero-width rule, whose matches make the scanner look
/// again with them removed.
pub fn zero_width_rule() -> usize {
    RULES
        .iter()
        .position(|r| r.name == "zero_width")
        .expect("the zero_width rule")
}
