use std::sync::Mutex;

use arrow::array::{Array, AsArray, StringArray};
use arrow::datatypes::{DataType, Field, Float32Type, Schema};

use super::*;
use crate::embedding_type;

/// Vector = [number of words, sum of the bytes]; records each forward pass's row
/// lengths.
#[derive(Default)]
struct WordCounter {
    calls: Calls,
}

/// The row lengths of every forward pass.
type Calls = Arc<Mutex<Vec<Vec<usize>>>>;

impl Encoder for WordCounter {
    fn dim(&self) -> usize {
        2
    }
    fn tokenize(&self, texts: &[&str]) -> std::result::Result<Vec<Tokens>, ModelError> {
        Ok(texts
            .iter()
            .map(|t| Tokens {
                ids: t.bytes().map(i64::from).collect(),
                type_ids: vec![0; t.len()],
                truncated: t.len() > 40,
            })
            .collect())
    }
    fn embed(&self, rows: &[&Tokens]) -> std::result::Result<Vec<Vec<f32>>, ModelError> {
        self.calls
            .lock()
            .unwrap()
            .push(rows.iter().map(|r| r.ids.len()).collect());
        Ok(rows
            .iter()
            .map(|r| {
                let words = r.ids.iter().filter(|&&b| b == b' ' as i64).count() + 1;
                vec![words as f32, r.ids.iter().sum::<i64>() as f32]
            })
            .collect())
    }
}

/// What `WordCounter` gives `text`.
fn fake(text: &str) -> Vec<f32> {
    let words = text.split(' ').count() as f32;
    vec![words, text.bytes().map(f32::from).sum()]
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("text", DataType::Utf8, true)]))
}

fn batch(texts: &[Option<&str>]) -> RecordBatch {
    RecordBatch::try_new(schema(), vec![Arc::new(StringArray::from(texts.to_vec()))]).unwrap()
}

fn batcher(batch_size: usize, cache: Option<EmbedCache>) -> (EmbedBatcher, Calls, Arc<EmbedMetrics>) {
    windowed(batch_size, 1, cache)
}

fn windowed(
    batch_size: usize,
    sort_window: usize,
    cache: Option<EmbedCache>,
) -> (EmbedBatcher, Calls, Arc<EmbedMetrics>) {
    capped(batch_size, sort_window, usize::MAX, cache)
}

fn capped(
    batch_size: usize,
    sort_window: usize,
    max_batch_tokens: usize,
    cache: Option<EmbedCache>,
) -> (EmbedBatcher, Calls, Arc<EmbedMetrics>) {
    let encoder = WordCounter::default();
    let calls = encoder.calls.clone();
    let metrics = Arc::new(EmbedMetrics::default());
    let mut fields: Vec<Field> = schema().fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new("embedding", embedding_type(2), true));
    let settings = Settings {
        sort_window,
        text_column: "text".into(),
        batch_size,
        max_batch_tokens,
        max_wait: Duration::from_millis(100),
        output: Arc::new(Schema::new(fields)),
    };
    (
        EmbedBatcher::new(settings, Box::new(encoder), cache, metrics.clone()),
        calls,
        metrics,
    )
}

/// (text, vector) of every row of `outs`, in order.
fn rows(outs: &[StageOutput]) -> Vec<(Option<String>, Option<Vec<f32>>)> {
    let mut all = Vec::new();
    for o in outs {
        let text = o.batch.column(0).as_string::<i32>();
        let emb = o.batch.column(1).as_fixed_size_list();
        for r in 0..o.batch.num_rows() {
            let v = (!emb.is_null(r)).then(|| emb.value(r).as_primitive::<Float32Type>().values().to_vec());
            all.push((text.is_valid(r).then(|| text.value(r).to_string()), v));
        }
    }
    all
}

const TEXTS: [&str; 7] = [
    "one",
    "two words",
    "a somewhat longer row of five",
    "x",
    "three little words",
    "the longest row of them all, longer than forty bytes",
    "two words",
];

#[test]
fn output_keeps_input_order_for_every_batch_size() {
    let expected = {
        let (mut b, _, _) = batcher(1, None);
        let mut outs = b.push(batch(&TEXTS.map(Some))).unwrap();
        outs.extend(b.flush().unwrap());
        rows(&outs)
    };
    assert_eq!(expected.len(), 7);
    for (text, v) in &expected {
        assert_eq!(v.as_ref(), Some(&fake(text.as_deref().unwrap())));
    }
    for size in [2, 3, 5, 64] {
        let (mut b, _, _) = batcher(size, None);
        let mut outs = Vec::new();
        for part in TEXTS.chunks(2) {
            let part: Vec<Option<&str>> = part.iter().map(|t| Some(*t)).collect();
            outs.extend(b.push(batch(&part)).unwrap());
        }
        outs.extend(b.flush().unwrap());
        assert_eq!(outs.len(), 4, "one output per input batch (size {size})");
        assert_eq!(rows(&outs), expected, "batch size {size}");
        assert!(!b.has_pending());
    }
}

#[test]
fn micro_batches_are_sorted_by_length_and_padded_only_to_their_longest() {
    let (mut b, calls, metrics) = batcher(3, None);
    let mut outs = b
        .push(batch(&TEXTS[..6].iter().map(|t| Some(*t)).collect::<Vec<_>>()))
        .unwrap();
    outs.extend(b.flush().unwrap());
    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls, vec![vec![1, 3, 9], vec![18, 29, 52]]);
    assert_eq!(metrics.padded_tokens.get(), 3 * 9 + 3 * 52);
    assert_eq!(metrics.tokens.get(), 1 + 3 + 9 + 18 + 29 + 52);
    assert_eq!(metrics.truncated.get(), 1);
    assert_eq!(rows(&outs).len(), 6);
}

/// What a forward pass allocates grows with rows × length: long rows go
/// fewer at a time, and a row past the cap goes alone.
#[test]
fn micro_batches_hold_at_most_max_batch_tokens_padded_tokens() {
    let (mut b, calls, metrics) = capped(6, 1, 40, None);
    let texts: Vec<Option<&str>> = TEXTS[..6].iter().map(|t| Some(*t)).collect();
    let mut outs = b.push(batch(&texts)).unwrap();
    outs.extend(b.flush().unwrap());
    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls, vec![vec![1, 3, 9], vec![18], vec![29], vec![52]]);
    assert_eq!(metrics.padded_tokens.get(), 3 * 9 + 18 + 29 + 52);
    let expected: Vec<_> = TEXTS[..6]
        .iter()
        .map(|t| (Some(t.to_string()), Some(fake(t))))
        .collect();
    assert_eq!(rows(&outs), expected);
}

#[test]
fn a_partial_micro_batch_waits_until_flush() {
    let (mut b, calls, _) = batcher(4, None);
    let outs = b.push(batch(&[Some("a"), Some("b"), Some("c")])).unwrap();
    assert!(outs.is_empty(), "three rows wait for a fourth");
    assert!(b.has_pending());
    let outs = b.push(batch(&[Some("d"), Some("e")])).unwrap();
    assert_eq!(
        outs.len(),
        1,
        "the first batch is complete, the second waits for `e`"
    );
    assert_eq!(calls.lock().unwrap().len(), 1);
    let outs = b.flush().unwrap();
    assert_eq!(rows(&outs).len(), 2);
    assert!(!b.has_pending());
}

#[test]
fn nulls_get_no_vector_and_duplicates_run_once() {
    let (mut b, calls, metrics) = batcher(8, None);
    let mut outs = b.push(batch(&[Some("same"), None, Some("same")])).unwrap();
    outs.extend(b.flush().unwrap());
    let r = rows(&outs);
    assert_eq!(r[1], (None, None));
    assert_eq!(r[0].1, r[2].1);
    assert_eq!(calls.lock().unwrap().concat().len(), 1);
    assert_eq!((metrics.computed.get(), metrics.cache_hits.get()), (1, 1));
}

#[test]
fn a_cached_text_is_not_run_again() {
    let dir = tempfile::tempdir().unwrap();
    let (mut b, _, _) = batcher(2, Some(EmbedCache::open(dir.path(), "fp", 2).unwrap()));
    b.push(batch(&[Some("alpha"), Some("beta")])).unwrap();
    b.flush().unwrap();
    drop(b);
    let (mut b, calls, metrics) = batcher(2, Some(EmbedCache::open(dir.path(), "fp", 2).unwrap()));
    let mut outs = b
        .push(batch(&[Some("beta"), Some("gamma"), Some("alpha")]))
        .unwrap();
    outs.extend(b.flush().unwrap());
    assert_eq!(calls.lock().unwrap().concat(), vec![5], "only `gamma` is new");
    assert_eq!(metrics.cache_hits.get(), 2);
    assert_eq!(rows(&outs)[2].1, Some(fake("alpha")), "from the cache");
}

#[test]
fn rows_wait_for_a_full_sort_window_then_run_shortest_first() {
    let (mut b, calls, _) = windowed(2, 2, None);
    assert!(b
        .push(batch(&[Some("ccc"), Some("a"), Some("dddd")]))
        .unwrap()
        .is_empty());
    assert!(calls.lock().unwrap().is_empty(), "3 rows < a window of 2 × 2");
    let outs = b.push(batch(&[Some("bb")])).unwrap();
    assert_eq!(outs.len(), 2);
    assert_eq!(calls.lock().unwrap().clone(), vec![vec![1, 2], vec![3, 4]]);
}
