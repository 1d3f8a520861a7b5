//! The evaluation gate of `sluice migrate promote --require`: conditions on
//! the shadow's eval figures, against a number or against the live table's.
//!
//! ```text
//! recall@10 >= live
//! ndcg@5 >= live - 0.02, mrr@10 > 0.5
//! vector:recall@10 >= 0.9        (a mode other than the sink's default)
//! ```

use crate::eval::Report;
use crate::search::Mode;
use crate::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    Recall,
    Mrr,
    Ndcg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Ge,
    Gt,
    Le,
    Lt,
}

/// What a figure is compared with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound {
    Number(f64),
    /// The live table's figure, plus this.
    Live(f64),
}

/// One condition.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub mode: Option<Mode>,
    pub metric: Metric,
    pub k: usize,
    pub op: Op,
    pub bound: Bound,
    pub text: String,
}

fn usage(text: &str, why: &str) -> Error {
    Error::Usage(format!(
        "--require `{text}`: {why}; write e.g. \"recall@10 >= live\" or \"ndcg@5 >= live - 0.02, mrr@10 > 0.5\""
    ))
}

/// Parse conditions separated by commas or `and`.
pub fn parse(text: &str) -> Result<Vec<Condition>> {
    let conditions: Vec<Condition> = text
        .split(',')
        .flat_map(|part| part.split(" and "))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(parse_one)
        .collect::<Result<_>>()?;
    if conditions.is_empty() {
        return Err(usage(text, "no condition"));
    }
    Ok(conditions)
}

fn parse_one(text: &str) -> Result<Condition> {
    let ops = [(">=", Op::Ge), ("<=", Op::Le), (">", Op::Gt), ("<", Op::Lt)];
    let (at, op, rest) = ops
        .iter()
        .find_map(|(s, op)| text.split_once(s).map(|(l, r)| (l.trim(), *op, r.trim())))
        .ok_or_else(|| usage(text, "no comparison (>=, >, <=, <)"))?;
    let (mode, figure) = match at.split_once(':') {
        Some((m, f)) => (
            Some(parse_mode(m.trim()).ok_or_else(|| usage(text, "the mode is vector, text or hybrid"))?),
            f.trim(),
        ),
        None => (None, at),
    };
    let (name, k) = figure
        .split_once('@')
        .ok_or_else(|| usage(text, "name a figure at a cutoff, like recall@10"))?;
    let metric = match name.trim().to_ascii_lowercase().as_str() {
        "recall" => Metric::Recall,
        "mrr" => Metric::Mrr,
        "ndcg" => Metric::Ndcg,
        _ => return Err(usage(text, "the figures are recall, mrr and ndcg")),
    };
    let k: usize = k
        .trim()
        .parse()
        .ok()
        .filter(|k| (1..=crate::search::MAX_K).contains(k))
        .ok_or_else(|| usage(text, "the cutoff is a whole number from 1"))?;
    Ok(Condition {
        mode,
        metric,
        k,
        op,
        bound: parse_bound(rest)
            .ok_or_else(|| usage(text, "compare with a number or `live` (± a number)"))?,
        text: text.to_string(),
    })
}

fn parse_mode(m: &str) -> Option<Mode> {
    match m.to_ascii_lowercase().as_str() {
        "vector" => Some(Mode::Vector),
        "text" => Some(Mode::Text),
        "hybrid" => Some(Mode::Hybrid),
        _ => None,
    }
}

fn parse_bound(s: &str) -> Option<Bound> {
    let finite = |v: f64| v.is_finite().then_some(v);
    let Some(rest) = s.strip_prefix("live") else {
        return s.parse().ok().and_then(finite).map(Bound::Number);
    };
    let rest = rest.trim();
    if rest.is_empty() {
        return Some(Bound::Live(0.0));
    }
    let (sign, n) = match (rest.strip_prefix('+'), rest.strip_prefix('-')) {
        (Some(n), _) => (1.0, n),
        (_, Some(n)) => (-1.0, n),
        _ => return None,
    };
    n.trim()
        .parse::<f64>()
        .ok()
        .and_then(finite)
        .map(|v| Bound::Live(sign * v))
}

/// The figure a condition reads from `report`.
fn figure(report: &Report, mode: Mode, metric: Metric, k: usize) -> Option<f64> {
    let m = report.modes.iter().find(|m| m.mode == mode)?;
    let a = m.at_k.iter().find(|a| a.k == k)?;
    Some(match metric {
        Metric::Recall => a.scores.recall,
        Metric::Mrr => a.scores.mrr,
        Metric::Ndcg => a.scores.ndcg,
    })
}

/// Each condition with the shadow's figure and what it was held to, and
/// whether it holds.
pub fn check(
    conditions: &[Condition],
    default_mode: Mode,
    live: &Report,
    shadow: &Report,
) -> Result<Vec<(String, bool)>> {
    conditions
        .iter()
        .map(|c| {
            let mode = c.mode.unwrap_or(default_mode);
            let missing = || {
                Error::Internal(format!(
                    "the eval has no {mode:?} figure at k={} for `{}`",
                    c.k, c.text
                ))
            };
            let have = figure(shadow, mode, c.metric, c.k).ok_or_else(missing)?;
            let want = match c.bound {
                Bound::Number(v) => v,
                Bound::Live(d) => figure(live, mode, c.metric, c.k).ok_or_else(missing)? + d,
            };
            // Figures are means of a few dozen questions: compare with a
            // tolerance well below one question's weight.
            let eps = 1e-9;
            let holds = match c.op {
                Op::Ge => have >= want - eps,
                Op::Gt => have > want + eps,
                Op::Le => have <= want + eps,
                Op::Lt => have < want - eps,
            };
            Ok((format!("{}: shadow {have:.3}, needed {want:.3}", c.text), holds))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_parse_and_bad_ones_say_how_to_write_them() {
        let c = parse("recall@10 >= live, ndcg@5 >= live - 0.02 and vector:mrr@1 > 0.5").unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(
            (c[0].metric, c[0].k, c[0].op, c[0].bound),
            (Metric::Recall, 10, Op::Ge, Bound::Live(0.0))
        );
        assert_eq!(c[1].bound, Bound::Live(-0.02));
        assert_eq!(
            (c[2].mode, c[2].op, c[2].bound),
            (Some(Mode::Vector), Op::Gt, Bound::Number(0.5))
        );
        for bad in [
            "",
            "recall >= live",
            "recall@0 >= 1",
            "precision@5 >= live",
            "recall@5 == live",
            "recall@5 >= live * 2",
            "recall@5 >= NaN",
            "fast:recall@5 >= 1",
            "recall@5 >= live€",
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains("--require"), "{bad}: {e}");
        }
    }
}
