//! cl100k_base's pre-tokenizer over ASCII text, by hand.
//!
//! The pattern (bpe-openai's form of tiktoken's, the look-ahead `\s+(?!\S)`
//! written as a second pattern `\s+\s` that gives one character back):
//!
//! ```text
//! (?i:'s|'t|'re|'ve|'m|'ll|'d) | [^\r\n\p{L}\p{N}]?\p{L}+ | \p{N}{1,3}
//!   | ?[^\s\p{L}\p{N}]+[\r\n]* | \s*[\r\n]+ | \s+$ | \s+\s | \s+
//! ```
//!
//! tried in that order (leftmost-first) at the start of each piece. Over ASCII
//! the classes are plain byte tests, and a piece is found in one pass with no
//! search set-up, where the regex's lazy DFA spent about a fifth of a chunking
//! run. Wherever a piece's end depends on a byte that is not ASCII (a letter,
//! digit, space or case fold outside ASCII could continue or end it), [`piece_end`]
//! answers `None` and the caller asks the regex: the two never disagree
//! (`tests::ascii_pieces_are_the_regexs`).

/// A byte the pieces' classes cannot judge alone.
fn wide(b: u8) -> bool {
    b >= 0x80
}

/// `\s` over ASCII: tab, line feed, vertical tab, form feed, carriage return, space.
fn space(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ')
}

fn newline(b: u8) -> bool {
    b == b'\r' || b == b'\n'
}

/// `[^\s\p{L}\p{N}]` over ASCII.
fn other(b: u8) -> bool {
    !space(b) && !b.is_ascii_alphanumeric()
}

/// The end of the run from `at` of bytes `class` takes, or `None` if the byte
/// that ends it is not ASCII (it might belong to the class).
fn run(text: &[u8], at: usize, class: impl Fn(u8) -> bool) -> Option<usize> {
    let end = at + text[at..].iter().take_while(|&&b| !wide(b) && class(b)).count();
    match text.get(end) {
        Some(&b) if wide(b) => None,
        _ => Some(end),
    }
}

/// Where the piece starting at `at` ends, or `None` where only the regex can tell.
pub(super) fn piece_end(text: &[u8], at: usize) -> Option<usize> {
    let b = *text.get(at)?;
    if wide(b) {
        return None;
    }
    let next = text.get(at + 1).copied();
    if next.is_some_and(wide) {
        return None;
    }
    if b == b'\'' {
        if let Some(end) = contraction(text, at) {
            return Some(end);
        }
    }
    // [^\r\n\p{L}\p{N}]?\p{L}+
    if b.is_ascii_alphabetic() {
        return run(text, at, |b| b.is_ascii_alphabetic());
    }
    if !newline(b) && !b.is_ascii_digit() && next.is_some_and(|n| n.is_ascii_alphabetic()) {
        return run(text, at + 1, |b| b.is_ascii_alphabetic());
    }
    // \p{N}{1,3}
    if b.is_ascii_digit() {
        let digits = text[at..]
            .iter()
            .take(3)
            .take_while(|b| b.is_ascii_digit())
            .count();
        return match text.get(at + digits) {
            Some(&b) if digits < 3 && wide(b) => None,
            _ => Some(at + digits),
        };
    }
    // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
    let others = if b == b' ' && next.is_some_and(other) {
        Some(at + 1)
    } else if other(b) {
        Some(at)
    } else {
        None
    };
    if let Some(from) = others {
        let end = run(text, from, other)?;
        return Some(end + text[end..].iter().take_while(|&&b| newline(b)).count());
    }
    whitespace(text, at)
}

/// `(?i:'s|'t|'re|'ve|'m|'ll|'d)` at `at` (an apostrophe), if it matches. The
/// byte after the apostrophe is ASCII; the one after that may not be, but no
/// character outside ASCII folds to `e`, `l` or `v`.
fn contraction(text: &[u8], at: usize) -> Option<usize> {
    let lower = |i: usize| text.get(at + i).map(u8::to_ascii_lowercase);
    match (lower(1)?, lower(2)) {
        (b's' | b't' | b'm' | b'd', _) => Some(at + 2),
        (b'r', Some(b'e')) | (b'v', Some(b'e')) | (b'l', Some(b'l')) => Some(at + 3),
        _ => None,
    }
}

/// The whitespace alternatives at `at`, a space character:
/// `\s*[\r\n]+ | \s+$ | \s+\s (one given back) | \s+`.
fn whitespace(text: &[u8], at: usize) -> Option<usize> {
    let end = run(text, at, space)?;
    if let Some(last) = text[at..end].iter().rposition(|&b| newline(b)) {
        return Some(at + last + 1);
    }
    if end == text.len() || end - at == 1 {
        return Some(end);
    }
    Some(end - 1)
}
