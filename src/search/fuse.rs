//! Reciprocal rank fusion: the hybrid ranking from a vector and a text ranking.
//!
//! Each ranking adds `1 / (RRF_K + rank)` (rank from 1) to an item's score;
//! items are ordered by the sum, ties by where they first appeared. Only ranks
//! count, so the two stores' scores, which mean different things, need no
//! scaling to be fused.

use std::collections::HashMap;

/// The constant of Cormack et al. (2009), which damps the weight of the very
/// top ranks.
pub const RRF_K: f64 = 60.0;

/// The fused order of `rankings` (each a list of keys, best first), with each
/// key's score.
pub fn rrf(rankings: &[Vec<String>]) -> Vec<(String, f64)> {
    let mut scores: HashMap<&str, (f64, usize)> = HashMap::new();
    let mut seen = 0;
    for ranking in rankings {
        for (i, key) in ranking.iter().enumerate() {
            let entry = scores.entry(key.as_str()).or_insert_with(|| {
                seen += 1;
                (0.0, seen)
            });
            entry.0 += 1.0 / (RRF_K + (i + 1) as f64);
        }
    }
    let mut fused: Vec<(&str, (f64, usize))> = scores.into_iter().collect();
    fused.sort_by(|a, b| b.1 .0.total_cmp(&a.1 .0).then(a.1 .1.cmp(&b.1 .1)));
    fused.into_iter().map(|(k, (s, _))| (k.to_string(), s)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(s: &str) -> Vec<String> {
        s.split(' ').map(str::to_string).collect()
    }

    #[test]
    fn fused_scores_are_the_sums_of_reciprocal_ranks() {
        let fused = rrf(&[keys("a b c"), keys("c d a")]);
        let order: Vec<&str> = fused.iter().map(|(k, _)| k.as_str()).collect();
        // a: 1/61 + 1/63; c: 1/63 + 1/61 (tied, a seen first); b: 1/62; d: 1/62.
        assert_eq!(order, ["a", "c", "b", "d"]);
        assert!((fused[0].1 - (1.0 / 61.0 + 1.0 / 63.0)).abs() < 1e-12);
        assert!((fused[2].1 - 1.0 / 62.0).abs() < 1e-12);
        assert!(rrf(&[vec![], vec![]]).is_empty());
    }
}
