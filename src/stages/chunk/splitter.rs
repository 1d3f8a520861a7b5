//! Token-aware splitting that tokenizes each document exactly once.
//!
//! The text is pre-tokenized and BPE-encoded once (with GitHub's `bpe-openai`, which
//! gives the same tokens as tiktoken; cl100k_base's pieces are cut by hand over
//! ASCII, a piece that is itself a token is found in the vocabulary, and a short
//! piece the thread saw lately is not encoded again), keeping each token's byte
//! end. Split points
//! are then chosen on token boundaries only, scored by what precedes them: a
//! heading, a blank line, a line end, a sentence end, a word start. Nothing is
//! re-tokenized while searching, which is what makes this fast. Among cuts of
//! the best kind, a hash of the text around each picks half of them before
//! the last one wins, so an edit, which shifts the window, mostly leaves the
//! cuts after it where they were: 1.7 new chunks per small edit, as many as
//! LangChain's splitter (benches/README.md, edit churn).

use serde::Deserialize;

use super::vocab::TokenSet;

/// The OpenAI encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    Cl100kBase,
    O200kBase,
}

impl Encoding {
    pub fn tokenizer(self) -> &'static bpe_openai::Tokenizer {
        match self {
            Encoding::Cl100kBase => bpe_openai::cl100k_base(),
            Encoding::O200kBase => bpe_openai::o200k_base(),
        }
    }

    fn whole_tokens(self) -> &'static TokenSet {
        static CL100K: std::sync::LazyLock<TokenSet> =
            std::sync::LazyLock::new(|| TokenSet::new(Encoding::Cl100kBase));
        static O200K: std::sync::LazyLock<TokenSet> =
            std::sync::LazyLock::new(|| TokenSet::new(Encoding::O200kBase));
        match self {
            Encoding::Cl100kBase => &CL100K,
            Encoding::O200kBase => &O200K,
        }
    }

    fn pretokenizer(self) -> &'static Pretokenizer {
        static CL100K: std::sync::LazyLock<Pretokenizer> = std::sync::LazyLock::new(|| {
            Pretokenizer::new(
                "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+$",
                Some(super::ascii::cl100k_piece_end),
            )
        });
        static O200K: std::sync::LazyLock<Pretokenizer> = std::sync::LazyLock::new(|| {
            Pretokenizer::new(
                &[
                    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
                    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
                    "\\p{N}{1,3}",
                    " ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*",
                    "\\s*[\\r\\n]+",
                    "\\s+$",
                ]
                .join("|"),
                Some(super::ascii::o200k_piece_end),
            )
        });
        match self {
            Encoding::Cl100kBase => &CL100K,
            Encoding::O200kBase => &O200K,
        }
    }
}

/// The encodings' pre-tokenizer, as bpe-openai builds it (its patterns, the
/// second a one-character look-ahead), searched with one cache per document:
/// bpe-openai's own `split` takes a cache from the regex's shared pool for
/// every piece, and on every thread but the pool's owner that is a lock
/// (8% of a chunking run's time). `tests::pieces_are_bpe_openais` holds the
/// two to the same pieces.
struct Pretokenizer {
    pat: regex_automata::meta::Regex,
    /// The same pieces by hand where the text allows (`None`: ask `pat`).
    fast: Option<PieceEnd>,
}

/// Where the piece at a byte offset ends, or `None` to ask the regex.
type PieceEnd = fn(&[u8], usize) -> Option<usize>;

impl Pretokenizer {
    fn new(first: &str, fast: Option<PieceEnd>) -> Self {
        let pat = regex_automata::meta::Regex::new_many(&[first, "\\s+\\s", "\\s+"])
            .expect("the encodings' pre-tokenizer patterns are valid");
        Pretokenizer { pat, fast }
    }

    /// The pieces of `text`, in order, calling `each` with each one. The
    /// search cache is the thread's own and kept across documents (the lazy
    /// DFA in it learns its states once).
    fn split<'t>(&self, text: &'t str, each: impl FnMut(&'t str)) {
        thread_local! {
            static CACHES: std::cell::RefCell<Vec<(usize, regex_automata::meta::Cache)>> =
                const { std::cell::RefCell::new(Vec::new()) };
        }
        let key = self as *const Self as usize;
        let cache = CACHES.with(|c| {
            let mut c = c.borrow_mut();
            match c.iter().position(|(k, _)| *k == key) {
                Some(i) => c.swap_remove(i).1,
                None => self.pat.create_cache(),
            }
        });
        let cache = self.split_with(cache, text, each);
        CACHES.with(|c| c.borrow_mut().push((key, cache)));
    }

    fn split_with<'t>(
        &self,
        mut cache: regex_automata::meta::Cache,
        text: &'t str,
        mut each: impl FnMut(&'t str),
    ) -> regex_automata::meta::Cache {
        use regex_automata::{Anchored, Input};
        let mut last = 0;
        while last < text.len() {
            let fast = self.fast.and_then(|f| f(text.as_bytes(), last));
            debug_assert!(fast.is_none_or(|end| end > last), "an empty piece at {last}");
            // Never an empty piece, even from a bug there: the regex takes over.
            if let Some(end) = fast.filter(|&end| end > last) {
                each(&text[last..end]);
                last = end;
                continue;
            }
            let input = Input::new(&text[last..]).anchored(Anchored::Yes);
            let Some(m) = self.pat.search_with(&mut cache, &input) else {
                break;
            };
            let mut end = last + m.range().end;
            // Pattern 1 matched one character of look-ahead: give it back.
            if m.pattern().as_usize() == 1 {
                let back = text[last..end].chars().next_back().map_or(0, char::len_utf8);
                end -= back;
            }
            if end == last {
                break;
            }
            each(&text[last..end]);
            last = end;
        }
        cache
    }
}

/// Which boundaries the splitter prefers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Paragraphs, lines, sentences, then words.
    #[default]
    Text,
    /// Headings first, then as `text`.
    Markdown,
}

/// One chunk of a document. `text[byte_start..byte_end]` is the chunk, and so is
/// the `char_start..char_end` range counted in Unicode scalar values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub byte_start: usize,
    pub byte_end: usize,
    pub char_start: usize,
    pub char_end: usize,
    /// Tokens of the document inside the chunk.
    pub token_count: usize,
}

/// Splits text into chunks of at most `max_tokens` tokens, consecutive chunks
/// sharing about `overlap_tokens`.
#[derive(Debug, Clone, Copy)]
pub struct Splitter {
    pub encoding: Encoding,
    pub max_tokens: usize,
    pub overlap_tokens: usize,
    pub strategy: Strategy,
}

/// Byte offsets where each token starts (plus the text length), and whether the
/// token starts a pre-tokenizer piece.
struct Tokens {
    starts: Vec<usize>,
    piece_start: Vec<bool>,
}

fn tokenize(encoding: Encoding, text: &str) -> Tokens {
    let tok = encoding.tokenizer();
    let whole = encoding.whole_tokens();
    let mut starts = Vec::with_capacity(text.len() / 3 + 1);
    let mut piece_start = Vec::with_capacity(text.len() / 3 + 1);
    let base = text.as_ptr() as usize;
    whole.lookup(|whole| {
        encoding.pretokenizer().split(text, |piece| {
            let mut pos = piece.as_ptr() as usize - base;
            // Most pieces are short and seen before (a word with its leading
            // space), and most of those are one token, as tiktoken encodes it.
            if let Some(mut lens) = whole.token_lens(piece.as_bytes(), &tok.bpe) {
                let mut first = true;
                while lens != 0 {
                    starts.push(pos);
                    piece_start.push(std::mem::take(&mut first));
                    pos += (lens & 0xf) as usize;
                    lens >>= 4;
                }
                return;
            }
            for (j, t) in tok
                .bpe
                .encode_via_backtracking(piece.as_bytes())
                .into_iter()
                .enumerate()
            {
                starts.push(pos);
                piece_start.push(j == 0);
                pos += tok.bpe.token_len(t);
            }
        })
    });
    starts.push(text.len());
    piece_start.push(true);
    Tokens { starts, piece_start }
}

impl Splitter {
    /// Score of a split at byte `p` (the start of a token that begins a piece or
    /// not). Negative: not allowed (inside a UTF-8 character).
    fn score(&self, text: &str, p: usize, piece_start: bool) -> i32 {
        if !text.is_char_boundary(p) {
            return -1;
        }
        let before = &text.as_bytes()[..p];
        let after = &text.as_bytes()[p..];
        let line_start = before.last() == Some(&b'\n');
        if self.strategy == Strategy::Markdown && line_start && after.first() == Some(&b'#') {
            return 5;
        }
        if before.ends_with(b"\n\n") || (line_start && after.first() == Some(&b'\n')) {
            return 4;
        }
        if line_start {
            return 3;
        }
        let sentence_end = matches!(before.last(), Some(b'.' | b'!' | b'?' | b':' | b';'));
        if sentence_end && after.first().is_some_and(u8::is_ascii_whitespace) {
            return 2;
        }
        if piece_start {
            return 1;
        }
        0
    }

    /// Split `text`. Every byte of the text is in at least one chunk.
    pub fn split(&self, text: &str) -> Vec<Span> {
        if text.is_empty() {
            return Vec::new();
        }
        let toks = tokenize(self.encoding, text);
        let n = toks.starts.len() - 1;
        let max = self.max_tokens.max(1);
        let mut bounds: Vec<(usize, usize)> = Vec::new(); // token index ranges
        let mut s = 0usize;
        loop {
            if n - s <= max {
                bounds.push((s, n));
                break;
            }
            let hi = s + max;
            let lo = s + (max / 2).max(1);
            let score = |i: usize| self.score(text, toks.starts[i], toks.piece_start[i]);
            // The best kind of boundary wins; among those, the ones whose
            // text around them hashes into the upper half; then the last.
            // Without the middle step an edit that moves the window by a few
            // tokens moves the last good boundary too, and every chunk after
            // it (benches/README.md, edit churn).
            let mut best: Option<(i32, bool, usize)> = None;
            for i in lo..=hi {
                let sc = score(i);
                // Hashing only what could still win keeps this cheap.
                if sc < 0 || best.is_some_and(|(b, _, _)| sc < b) {
                    continue;
                }
                let key = (sc, upper_half(text, toks.starts[i]), i);
                if best.is_none_or(|b| key >= b) {
                    best = Some(key);
                }
            }
            let e = best
                .map(|(_, _, i)| i)
                .or_else(|| (s + 1..lo).rev().find(|&i| score(i) >= 0))
                .unwrap_or(hi);
            bounds.push((s, e));
            // The next chunk starts about `overlap` tokens back, on a word start.
            let mut ns = e.saturating_sub(self.overlap_tokens).max(s + 1);
            if ns < e {
                let word = (ns..e).find(|&i| score(i) >= 1);
                let any = (ns..e).find(|&i| score(i) >= 0);
                ns = word.or(any).unwrap_or(e);
            }
            s = ns;
        }
        self.spans(text, &toks, &bounds)
    }

    fn spans(&self, text: &str, toks: &Tokens, bounds: &[(usize, usize)]) -> Vec<Span> {
        let ascii = text.is_ascii();
        // Starts and ends both only move forward: count characters incrementally.
        let mut start_cur = (0usize, 0usize);
        let mut end_cur = (0usize, 0usize);
        let advance = |cur: &mut (usize, usize), byte: usize| -> usize {
            if ascii {
                return byte;
            }
            cur.1 += text[cur.0..byte].chars().count();
            cur.0 = byte;
            cur.1
        };
        bounds
            .iter()
            .map(|&(s, e)| {
                let (byte_start, byte_end) = (toks.starts[s], toks.starts[e]);
                Span {
                    byte_start,
                    byte_end,
                    char_start: advance(&mut start_cur, byte_start),
                    char_end: advance(&mut end_cur, byte_end),
                    token_count: e - s,
                }
            })
            .collect()
    }
}

/// Whether the bytes around byte `p` hash into the upper half (FNV-1a of
/// up to 12 bytes each side): a choice between cuts that depends on the
/// text there alone, not on where the chunk started.
fn upper_half(text: &str, p: usize) -> bool {
    let b = text.as_bytes();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &x in &b[p.saturating_sub(12)..(p + 12).min(b.len())] {
        h ^= u64::from(x);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h >> 63 == 1
}

/// Token count of `text` in `encoding` (the same as tiktoken's).
pub fn count_tokens(encoding: Encoding, text: &str) -> usize {
    encoding.tokenizer().count(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn splitter(max: usize, overlap: usize, strategy: Strategy) -> Splitter {
        Splitter {
            encoding: Encoding::Cl100kBase,
            max_tokens: max,
            overlap_tokens: overlap,
            strategy,
        }
    }

    /// Texts for checking against bpe-openai: spaces, line ends, digits,
    /// contractions, non-Latin scripts, words longer than any token, code.
    fn sample_texts() -> [String; 5] {
        [
            "Hello world.  It's   here\n\n\tand there\r\n123456 7 ok?!   ".to_string(),
            "Grüße 日本語 🦀 ''s 'll    \n\n\t x HTTPServer's URLs/paths\n".repeat(20),
            "   leading and trailing spaces   ".to_string(),
            "antidisestablishmentarianism pneumonoultramicroscopic ".repeat(5),
            std::fs::read_to_string(file!()).unwrap(),
        ]
    }

    /// The pre-tokenizer here cuts exactly where bpe-openai's does.
    #[test]
    fn pieces_are_bpe_openais() {
        for encoding in [Encoding::Cl100kBase, Encoding::O200kBase] {
            for t in &sample_texts() {
                let theirs: Vec<&str> = encoding.tokenizer().split(t).collect();
                let mut ours = Vec::new();
                encoding.pretokenizer().split(t, |p| ours.push(p));
                assert_eq!(ours, theirs, "{encoding:?}");
            }
        }
    }

    /// The hand-written ASCII pieces (`ascii.rs`) are the regex's, for both
    /// encodings, on texts mixing every class the patterns tell apart with the
    /// characters outside ASCII that could continue or end a piece (case folds,
    /// letters of each case, marks, digits, spaces and symbols).
    #[test]
    fn ascii_pieces_are_the_regexs() {
        use proptest::prelude::*;
        const PARTS: &[&str] = &[
            "a", "Z", "s", "S", "t", "r", "e", "v", "l", "L", "m", "d", "k", "word", "'", "0", "7", "123",
            " ", "  ", "\t", "\n", "\r", "\r\n", "\u{b}", "\u{c}", ".", ",", "!?", "-", "/", "\0", "\u{1f}",
            "\u{7f}", "é", "É", "ſ", "\u{212a}", "²", "٣", "\u{a0}", "\u{85}", "\u{2028}", "\u{3000}", "—",
            "日", "🦀", "\u{301}", "HTTP", "Server", "aB", "ǅ", "ʰ", "Σ", "'S", "'LL", "'Re",
        ];
        let text = proptest::collection::vec(0..PARTS.len(), 0..40)
            .prop_map(|ix| ix.into_iter().map(|i| PARTS[i]).collect::<String>());
        let config = ProptestConfig {
            cases: 4000,
            ..ProptestConfig::default()
        };
        proptest!(config, |(t in text)| {
            for encoding in [Encoding::Cl100kBase, Encoding::O200kBase] {
                let theirs: Vec<&str> = encoding.tokenizer().split(&t).collect();
                let mut ours = Vec::new();
                encoding.pretokenizer().split(&t, |p| ours.push(p));
                prop_assert_eq!(ours, theirs, "{:?}", encoding);
            }
        });
    }

    /// Token boundaries are bpe-openai's own encoding's, the pieces that are
    /// one token (looked up whole) and the others (byte-pair encoded) alike,
    /// with the thread's table of recent tokens filled by the texts before and
    /// by the other encoding.
    #[test]
    fn tokens_are_bpe_openais() {
        for encoding in [Encoding::Cl100kBase, Encoding::O200kBase] {
            let bpe = &encoding.tokenizer().bpe;
            for t in &sample_texts() {
                let mut theirs = Vec::new();
                let mut pos = 0;
                for piece in encoding.tokenizer().split(t) {
                    for (j, tok) in bpe.encode_via_backtracking(piece.as_bytes()).iter().enumerate() {
                        theirs.push((pos, j == 0));
                        pos += bpe.token_len(*tok);
                    }
                }
                theirs.push((t.len(), true));
                let ours = tokenize(encoding, t);
                let ours: Vec<(usize, bool)> = ours.starts.into_iter().zip(ours.piece_start).collect();
                assert_eq!(ours, theirs, "{encoding:?}");
            }
        }
    }

    #[test]
    fn short_text_is_one_chunk() {
        let spans = splitter(64, 8, Strategy::Text).split("Hello world.");
        assert_eq!(spans.len(), 1);
        assert_eq!(
            (spans[0].byte_start, spans[0].byte_end, spans[0].token_count),
            (0, 12, 3)
        );
    }

    #[test]
    fn markdown_prefers_headings() {
        let body = "Lorem ipsum dolor sit amet, consectetur adipiscing elit sed do. ".repeat(3);
        let text = format!("# One\n\n{body}\n\n# Two\n\n{body}");
        let spans = splitter(60, 0, Strategy::Markdown).split(&text);
        assert!(spans.len() >= 2);
        assert!(
            text[spans[1].byte_start..].starts_with("# Two"),
            "{:?}",
            &text[spans[1].byte_start..][..20]
        );
    }

    #[test]
    fn char_offsets_count_unicode_scalars() {
        let text = "Grüße aus Köln! ".repeat(40);
        for sp in splitter(16, 4, Strategy::Text).split(&text) {
            let by_chars: String = text
                .chars()
                .skip(sp.char_start)
                .take(sp.char_end - sp.char_start)
                .collect();
            assert_eq!(by_chars, &text[sp.byte_start..sp.byte_end]);
        }
    }
}
