//! The OpenAI encodings' pre-tokenizers over ASCII text, by hand.
//!
//! cl100k_base's pattern (bpe-openai's form of tiktoken's, the look-ahead
//! `\s+(?!\S)` written as a second pattern `\s+\s` that gives one character
//! back), and o200k_base's, which has no contractions of its own but after a
//! word, splits words on case, and takes a `/` after symbols:
//!
//! ```text
//! cl100k: (?i:'s|'t|'re|'ve|'m|'ll|'d) | [^\r\n\p{L}\p{N}]?\p{L}+ | \p{N}{1,3}
//!         | ?[^\s\p{L}\p{N}]+[\r\n]* | \s*[\r\n]+ | \s+$ | \s+\s | \s+
//! o200k:  [^\r\n\p{L}\p{N}]?[\p{Lu}..]*[\p{Ll}..]+(?i:'s|..)?
//!         | [^\r\n\p{L}\p{N}]?[\p{Lu}..]+[\p{Ll}..]*(?i:'s|..)? | \p{N}{1,3}
//!         | ?[^\s\p{L}\p{N}]+[\r\n/]* | \s*[\r\n]+ | \s+$ | \s+\s | \s+
//! ```
//!
//! tried in that order (leftmost-first) at the start of each piece. Over ASCII
//! the classes are plain byte tests, and a piece is found in one pass with no
//! search set-up, where the regex's lazy DFA spent about a fifth of a chunking
//! run. Wherever a piece's end depends on a byte that is not ASCII (a letter,
//! mark, digit, space or case fold outside ASCII could continue or end it),
//! these answer `None` and the caller asks the regex: the two never disagree
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

/// Where cl100k_base's piece starting at `at` ends, or `None` where only the
/// regex can tell.
pub(super) fn cl100k_piece_end(text: &[u8], at: usize) -> Option<usize> {
    let (b, next) = ascii_pair(text, at)?;
    if b == b'\'' {
        if let Some(end) = contraction(text, at) {
            return Some(end);
        }
    }
    // [^\r\n\p{L}\p{N}]?\p{L}+
    if let Some(from) = word_start(b, next, at) {
        return run(text, from, |b| b.is_ascii_alphabetic());
    }
    rest(text, at, false)
}

/// Where o200k_base's piece starting at `at` ends, or `None` where only the
/// regex can tell.
pub(super) fn o200k_piece_end(text: &[u8], at: usize) -> Option<usize> {
    let (b, next) = ascii_pair(text, at)?;
    match word_start(b, next, at) {
        Some(from) => cased_word(text, from),
        None => rest(text, at, true),
    }
}

/// The byte at `at` and the one after it, if both are ASCII (a byte after a
/// byte outside ASCII belongs to the same character and is not ASCII either).
fn ascii_pair(text: &[u8], at: usize) -> Option<(u8, Option<u8>)> {
    let b = *text.get(at)?;
    let next = text.get(at + 1).copied();
    (!wide(b) && !next.is_some_and(wide)).then_some((b, next))
}

/// `[^\r\n\p{L}\p{N}]?` before a letter: where the letters start, if they do.
fn word_start(b: u8, next: Option<u8>, at: usize) -> Option<usize> {
    if b.is_ascii_alphabetic() {
        Some(at)
    } else if !newline(b) && !b.is_ascii_digit() && next.is_some_and(|n| n.is_ascii_alphabetic()) {
        Some(at + 1)
    } else {
        None
    }
}

/// o200k_base's words from `from`, a letter: `[\p{Lu}..]*[\p{Ll}..]+`, or else
/// `[\p{Lu}..]+[\p{Ll}..]*`, then `(?i:'s|'t|'re|'ve|'m|'ll|'d)?`. Over ASCII
/// both are the capitals, then the small letters after them.
fn cased_word(text: &[u8], from: usize) -> Option<usize> {
    let capitals = run(text, from, |b| b.is_ascii_uppercase())?;
    let end = run(text, capitals, |b| b.is_ascii_lowercase())?;
    if text.get(end) != Some(&b'\'') {
        return Some(end);
    }
    if text.get(end + 1).is_some_and(|&b| wide(b)) {
        return None;
    }
    Some(contraction(text, end).unwrap_or(end))
}

/// The alternatives after the words, at `at` (ASCII, and so is the next
/// byte): `\p{N}{1,3}`, then ` ?[^\s\p{L}\p{N}]+[\r\n]*` (`[\r\n/]*` with
/// `slash`, as o200k_base has it), then the whitespace ones.
fn rest(text: &[u8], at: usize, slash: bool) -> Option<usize> {
    let b = text[at];
    let next = text.get(at + 1).copied();
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
    let others = if b == b' ' && next.is_some_and(other) {
        Some(at + 1)
    } else if other(b) {
        Some(at)
    } else {
        None
    };
    if let Some(from) = others {
        let end = run(text, from, other)?;
        let tail = |b: u8| newline(b) || (slash && b == b'/');
        return Some(end + text[end..].iter().take_while(|&&b| tail(b)).count());
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
