//! Properties of the chunker over generated text: exact offsets, full coverage,
//! token limits, and agreement with tiktoken-rs on token counts.

use proptest::prelude::*;
use sluice::stages::chunk::{count_tokens, Encoding, Splitter, Strategy as Boundaries};

fn piece() -> impl proptest::strategy::Strategy<Value = String> {
    prop_oneof![
        6 => "[a-zA-Z]{1,12}".prop_map(|w| format!("{w} ")),
        2 => Just(". ".to_string()),
        1 => Just("\n".to_string()),
        1 => Just("\n\n".to_string()),
        1 => "[a-z]{1,8}".prop_map(|w| format!("\n## {w}\n")),
        1 => Just("  ".to_string()),
        1 => Just("Grüße, naïve café. ".to_string()),
        1 => Just("日本語のテキスト。".to_string()),
        1 => Just("emoji 🦀🚀 ".to_string()),
        1 => "[0-9]{1,9}".prop_map(|n| format!("{n} ")),
        1 => "[!-/:-@]{1,4}".prop_map(|p| p.to_string()),
    ]
}

fn text() -> impl proptest::strategy::Strategy<Value = String> {
    proptest::collection::vec(piece(), 0..300).prop_map(|p| p.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn chunks_are_exact_cover_the_text_and_respect_the_limit(
        text in text(),
        max in 4usize..120,
        overlap_pct in 0usize..50,
        markdown in any::<bool>(),
        o200k in any::<bool>(),
    ) {
        let encoding = if o200k { Encoding::O200kBase } else { Encoding::Cl100kBase };
        let strategy = if markdown { Boundaries::Markdown } else { Boundaries::Text };
        let overlap = max * overlap_pct / 100;
        let splitter = Splitter { encoding, max_tokens: max, overlap_tokens: overlap, strategy };
        let spans = splitter.split(&text);
        if text.is_empty() {
            prop_assert!(spans.is_empty());
            return Ok(());
        }
        prop_assert_eq!(spans[0].byte_start, 0);
        prop_assert_eq!(spans.last().unwrap().byte_end, text.len());
        let chars: Vec<char> = text.chars().collect();
        for (i, s) in spans.iter().enumerate() {
            let chunk = &text[s.byte_start..s.byte_end];
            prop_assert!(!chunk.is_empty());
            // char offsets are exact: they select the same text as the byte offsets.
            let by_chars: String = chars[s.char_start..s.char_end].iter().collect();
            prop_assert_eq!(&by_chars, chunk);
            prop_assert!(s.token_count >= 1 && s.token_count <= max, "{} tokens > {}", s.token_count, max);
            // Re-encoding the chunk on its own stays within the limit (a cut inside a
            // pre-tokenizer piece can merge differently, never into more than one
            // extra token at each of the two ends).
            let alone = count_tokens(encoding, chunk);
            prop_assert!(alone <= s.token_count + 2, "chunk re-encodes to {} tokens, counted {}", alone, s.token_count);
            if i > 0 {
                let prev = spans[i - 1];
                prop_assert!(s.byte_start > prev.byte_start, "no progress");
                prop_assert!(s.byte_start <= prev.byte_end, "gap between chunks");
                // The text two chunks share is the overlap: none without one, and
                // never more than `overlap_tokens` (plus the re-encoding slack).
                if overlap == 0 {
                    prop_assert_eq!(s.byte_start, prev.byte_end, "overlap without overlap_tokens");
                } else {
                    let shared = count_tokens(encoding, &text[s.byte_start..prev.byte_end]);
                    prop_assert!(shared <= overlap + 2, "{} tokens shared, overlap {}", shared, overlap);
                }
            }
        }
        // Token counts add up to the document's when there is no overlap.
        if overlap == 0 {
            let total: usize = spans.iter().map(|s| s.token_count).sum();
            prop_assert_eq!(total, count_tokens(encoding, &text));
        }
    }
}

/// On prose, consecutive chunks share between one token and `overlap_tokens`.
#[test]
fn prose_chunks_overlap_by_about_overlap_tokens() {
    let text = "The river carried the boats down to the sea, past mills and towns and fields. ".repeat(40);
    let splitter = Splitter {
        encoding: Encoding::Cl100kBase,
        max_tokens: 32,
        overlap_tokens: 8,
        strategy: Boundaries::Text,
    };
    let spans = splitter.split(&text);
    assert!(spans.len() > 10, "{} chunks", spans.len());
    for pair in spans.windows(2) {
        let shared = &text[pair[1].byte_start..pair[0].byte_end.max(pair[1].byte_start)];
        let tokens = count_tokens(Encoding::Cl100kBase, shared);
        assert!((1..=10).contains(&tokens), "{tokens} tokens shared: {shared:?}");
    }
}

/// bpe-openai must count exactly like tiktoken-rs (the reference) on the corpus.
#[test]
fn token_counts_equal_tiktoken_rs_on_the_sample_corpus() {
    let cl100k = tiktoken_rs::cl100k_base().unwrap();
    let o200k = tiktoken_rs::o200k_base().unwrap();
    let root = &std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    );
    let mut texts: Vec<String> = Vec::new();
    for dir in [
        "pipelines/data/md",
        "pipelines/data/txt",
        "pipelines/data/html",
        "pipelines/data/json",
        "src/stages/chunk",
    ] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            texts.push(String::from_utf8_lossy(&bytes).into_owned());
        }
    }
    texts.push("Grüße 日本語 🦀 ''s 'll    \n\n\t x".repeat(20));
    for t in &texts {
        assert_eq!(
            count_tokens(Encoding::Cl100kBase, t),
            cl100k.encode_ordinary(t).len()
        );
        assert_eq!(
            count_tokens(Encoding::O200kBase, t),
            o200k.encode_ordinary(t).len()
        );
    }
    assert!(texts.len() > 30);
}

/// A deterministic document shaped like reStructuredText prose: lines of 6 to
/// 14 words, paragraphs of 1 to 8 lines, a heading now and then.
fn prose(seed: u64, paragraphs: usize) -> String {
    let mut x = seed;
    let mut next = |n: u64| {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 33) % n
    };
    const WORDS: [&str; 16] = [
        "the", "sink", "commits", "an", "epoch", "when", "every", "barrier", "has", "passed", "through",
        "its", "stage", "and", "rows", "wait",
    ];
    let mut out = String::new();
    for p in 0..paragraphs {
        if p % 9 == 0 {
            out.push_str(&format!("Section {p}\n==========\n\n"));
        }
        for _ in 0..1 + next(8) {
            let words: Vec<&str> = (0..6 + next(9)).map(|_| WORDS[next(16) as usize]).collect();
            out.push_str(&words.join(" "));
            out.push_str(if next(3) == 0 { ".\n" } else { "\n" });
        }
        out.push('\n');
    }
    out
}

/// One small edit in the middle of a long document makes few chunks new (each
/// must be embedded again): the cuts after it fall back into step. Measured on
/// real documents against LangChain in benches/churn.py.
#[test]
fn a_small_edit_makes_few_new_chunks() {
    let splitter = Splitter {
        encoding: Encoding::Cl100kBase,
        max_tokens: 256,
        overlap_tokens: 32,
        strategy: Boundaries::Text,
    };
    let chunks = |text: &str| -> Vec<String> {
        splitter
            .split(text)
            .iter()
            .map(|s| text[s.byte_start..s.byte_end].to_string())
            .collect()
    };
    let (mut total, mut edits, mut worst) = (0, 0, 0);
    for seed in 0..12u64 {
        let text = prose(seed, 160);
        let old = chunks(&text);
        assert!(old.len() >= 20, "{} chunks", old.len());
        let lines: Vec<&str> = text.split('\n').collect();
        for k in 0..6 {
            let at = lines.len() / 3 + k * lines.len() / 18;
            if lines[at].split(' ').count() < 4 {
                continue;
            }
            let mut edited: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
            match k % 3 {
                0 => edited[at] = edited[at].replacen("the", "a", 1),
                1 => edited[at].push_str(" and one inserted clause that says a little more"),
                _ => {
                    edited.remove(at);
                }
            }
            let new = chunks(&edited.join("\n"));
            let seen: std::collections::HashSet<&String> = old.iter().collect();
            let fresh = new.iter().filter(|c| !seen.contains(c)).count();
            total += fresh;
            edits += 1;
            worst = worst.max(fresh);
        }
    }
    let mean = total as f64 / edits as f64;
    assert!(edits >= 50, "{edits} edits");
    assert!(
        mean <= 2.0 && worst <= 10,
        "{mean:.2} new chunks per edit on average, {worst} at most"
    );
}
