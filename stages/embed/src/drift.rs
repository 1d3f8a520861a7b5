//! A drift signal for embeddings: the running mean of the vectors' L2 norm, and
//! how far each epoch's centroid has moved from the first epoch's.
//!
//! A model swap, a tokenizer change or a shift in the documents moves the
//! centroid long before anyone looks at search quality. The distance is the
//! cosine distance (1 − cos) between the centroid of the latest finished epoch
//! and the centroid of the first epoch this process embedded: 0 while the data
//! looks like it did, growing as it moves.

use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct Drift(Mutex<State>);

#[derive(Debug, Default)]
struct State {
    vectors: u64,
    norm_sum: f64,
    epoch_sum: Vec<f64>,
    epoch_vectors: u64,
    first: Option<Vec<f64>>,
    distance: f64,
}

impl Drift {
    /// Count the rows of `values` (row-major, `dim` wide) whose `present` flag is set.
    pub fn observe(&self, values: &[f32], dim: usize, present: impl Iterator<Item = bool>) {
        if dim == 0 {
            return;
        }
        let mut s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if s.epoch_sum.len() != dim {
            s.epoch_sum = vec![0.0; dim];
        }
        for (row, keep) in values.chunks_exact(dim).zip(present) {
            if !keep {
                continue;
            }
            let norm = row.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>().sqrt();
            s.norm_sum += norm;
            s.vectors += 1;
            s.epoch_vectors += 1;
            for (acc, v) in s.epoch_sum.iter_mut().zip(row) {
                *acc += f64::from(*v);
            }
        }
    }

    /// Close the epoch: its centroid becomes the reference if it is the first,
    /// otherwise its distance from the reference is the new signal. An epoch
    /// without vectors changes nothing.
    pub fn end_epoch(&self) {
        let mut s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if s.epoch_vectors == 0 {
            return;
        }
        let n = s.epoch_vectors as f64;
        let centroid: Vec<f64> = s.epoch_sum.iter().map(|v| v / n).collect();
        s.epoch_sum.iter_mut().for_each(|v| *v = 0.0);
        s.epoch_vectors = 0;
        match &s.first {
            None => s.first = Some(centroid),
            Some(first) => s.distance = cosine_distance(first, &centroid),
        }
    }

    /// Mean L2 norm of every vector seen (None before the first).
    pub fn norm_mean(&self) -> Option<f64> {
        let s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        (s.vectors > 0).then(|| s.norm_sum / s.vectors as f64)
    }

    /// Cosine distance of the latest epoch's centroid from the first's (None
    /// before the first epoch closed).
    pub fn centroid_distance(&self) -> Option<f64> {
        let s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        s.first.as_ref().map(|_| s.distance)
    }
}

fn cosine_distance(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    if na == 0.0 || nb == 0.0 {
        return 0.0;
    }
    (1.0 - dot / (na * nb)).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_epoch_is_the_reference_and_a_turn_shows_as_distance() {
        let d = Drift::default();
        assert_eq!(d.centroid_distance(), None);
        d.observe(&[3.0, 4.0, 3.0, 4.0], 2, [true, true].into_iter());
        d.end_epoch();
        assert_eq!(d.norm_mean(), Some(5.0));
        assert_eq!(d.centroid_distance(), Some(0.0));
        // Same direction, other length: no drift.
        d.observe(&[6.0, 8.0], 2, [true].into_iter());
        d.end_epoch();
        assert!(d.centroid_distance().unwrap() < 1e-12);
        // Orthogonal: distance 1. A missing row is not counted.
        d.observe(&[-4.0, 3.0, 100.0, 100.0], 2, [true, false].into_iter());
        d.end_epoch();
        assert!((d.centroid_distance().unwrap() - 1.0).abs() < 1e-12);
        // Norms 5, 5, 10 and 5.
        assert_eq!(d.norm_mean(), Some(6.25));
        // An empty epoch changes nothing.
        d.end_epoch();
        assert!((d.centroid_distance().unwrap() - 1.0).abs() < 1e-12);
    }
}
