//! Retrieval metrics over one ranking, with binary relevance.
//!
//! A question lists relevant items R; each hit of the ranking may match some.
//! At a cutoff `k`:
//! - **recall@k**: the share of R that some hit among the first `k` matches;
//! - **MRR@k**: 1 / the rank of the first hit that matches anything (0 if none
//!   in the first `k`);
//! - **nDCG@k**: Σ gain_i / log2(i + 1) over the first `k` hits, where gain_i is
//!   1 when hit i matches an item no earlier hit matched, divided by the best
//!   possible, Σ 1 / log2(i + 1) for i up to min(|R|, k). A second chunk of a
//!   document already found adds nothing, so the figure stays within 0 and 1.

use serde::{Deserialize, Serialize};

/// What each hit of a ranking matched: the indexes of the relevant items.
pub type Matches = Vec<Vec<usize>>;

/// One question's figures at one cutoff.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Scores {
    pub recall: f64,
    pub mrr: f64,
    pub ndcg: f64,
}

/// The figures at cutoff `k` of a ranking whose hits matched `matches`, out
/// of `relevant` items.
pub fn at_k(matches: &Matches, relevant: usize, k: usize) -> Scores {
    if relevant == 0 || k == 0 {
        return Scores::default();
    }
    let mut found = vec![false; relevant];
    let mut mrr = 0.0;
    let mut dcg = 0.0;
    for (i, hit) in matches.iter().take(k).enumerate() {
        if !hit.is_empty() && mrr == 0.0 {
            mrr = 1.0 / (i + 1) as f64;
        }
        let mut new = false;
        for &r in hit.iter().filter(|&&r| r < relevant) {
            new |= !found[r];
            found[r] = true;
        }
        if new {
            dcg += 1.0 / ((i + 2) as f64).log2();
        }
    }
    let ideal: f64 = (0..relevant.min(k)).map(|i| 1.0 / ((i + 2) as f64).log2()).sum();
    Scores {
        recall: found.iter().filter(|f| **f).count() as f64 / relevant as f64,
        mrr,
        ndcg: dcg / ideal,
    }
}

/// The mean of each figure.
pub fn mean(all: &[Scores]) -> Scores {
    if all.is_empty() {
        return Scores::default();
    }
    let n = all.len() as f64;
    Scores {
        recall: all.iter().map(|s| s.recall).sum::<f64>() / n,
        mrr: all.iter().map(|s| s.mrr).sum::<f64>() / n,
        ndcg: all.iter().map(|s| s.ndcg).sum::<f64>() / n,
    }
}

/// Latency percentiles, milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Latency {
    pub p50: f64,
    pub p95: f64,
    pub mean: f64,
    pub max: f64,
}

/// The nearest-rank percentile `p` (0–100) of sorted `values`.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

pub fn latency(mut ms: Vec<f64>) -> Latency {
    if ms.is_empty() {
        return Latency::default();
    }
    ms.sort_by(f64::total_cmp);
    Latency {
        p50: percentile(&ms, 50.0),
        p95: percentile(&ms, 95.0),
        mean: ms.iter().sum::<f64>() / ms.len() as f64,
        max: ms[ms.len() - 1],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-9, "{a} != {b}");
    }

    #[test]
    fn figures_equal_the_ones_worked_by_hand() {
        // Two relevant items; hits: miss, item 0, item 0 again, item 1.
        let m: Matches = vec![vec![], vec![0], vec![0], vec![1]];
        let s1 = at_k(&m, 2, 1);
        assert_eq!(s1, Scores::default());
        let s2 = at_k(&m, 2, 2);
        close(s2.recall, 0.5);
        close(s2.mrr, 0.5);
        // DCG = 1/log2(3); ideal = 1 + 1/log2(3).
        close(s2.ndcg, (1.0 / 3f64.log2()) / (1.0 + 1.0 / 3f64.log2()));
        let s4 = at_k(&m, 2, 4);
        close(s4.recall, 1.0);
        close(s4.mrr, 0.5);
        // DCG = 1/log2(3) + 1/log2(5) (the repeat at rank 3 adds nothing).
        close(
            s4.ndcg,
            (1.0 / 3f64.log2() + 1.0 / 5f64.log2()) / (1.0 + 1.0 / 3f64.log2()),
        );
        // A perfect ranking.
        let perfect = at_k(&vec![vec![0], vec![1]], 2, 10);
        assert_eq!(
            perfect,
            Scores {
                recall: 1.0,
                mrr: 1.0,
                ndcg: 1.0
            }
        );
        // One hit matching both items at once.
        let both = at_k(&vec![vec![0, 1]], 2, 5);
        close(both.recall, 1.0);
        close(both.ndcg, 1.0 / (1.0 + 1.0 / 3f64.log2()));
        let avg = mean(&[s2, perfect]);
        close(avg.recall, 0.75);
        close(avg.mrr, 0.75);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let l = latency((1..=20).map(f64::from).collect());
        assert_eq!((l.p50, l.p95, l.max), (10.0, 19.0, 20.0));
        close(l.mean, 10.5);
        let one = latency(vec![7.0]);
        assert_eq!((one.p50, one.p95), (7.0, 7.0));
        assert_eq!(latency(vec![]), Latency::default());
    }
}
