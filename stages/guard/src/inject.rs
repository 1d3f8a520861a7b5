//! Prompt-injection scoring. Each rule that matches a text (an instruction
//! aimed at a model, or text a reader would not see) has a weight; a text's
//! score is `1 - Π(1 - weight)` over the distinct rules it matched, so one
//! strong phrase ("ignore previous instructions", 0.9) passes the default
//! threshold of 0.5 alone, while hidden text alone (an HTML comment, 0.2;
//! zero-width characters, 0.35) does not, and the two together with a weak
//! phrase do.

use crate::kind::{Finding, Kind};

#[derive(Debug, Clone)]
pub struct Hit {
    pub start: usize,
    pub end: usize,
    pub rule: &'static str,
    pub weight: f32,
}

/// The injection rules a text matched.
#[derive(Debug, Default)]
pub struct Injection {
    hits: Vec<Hit>,
}

impl Injection {
    pub fn hit(&mut self, start: usize, end: usize, rule: &'static str, weight: f32) {
        let dup = self.hits.iter().any(|h| h.start == start && h.rule == rule);
        if !dup {
            self.hits.push(Hit {
                start,
                end,
                rule,
                weight,
            });
        }
    }

    pub fn hits(&self) -> &[Hit] {
        &self.hits
    }

    /// The text's score: each rule counted once, at its weight.
    pub fn score(&self) -> f32 {
        let mut rules: Vec<(&str, f32)> = Vec::new();
        for h in &self.hits {
            if !rules.iter().any(|(r, _)| *r == h.rule) {
                rules.push((h.rule, h.weight));
            }
        }
        1.0 - rules.iter().map(|(_, w)| 1.0 - w).product::<f32>()
    }

    /// Every hit as a finding carrying the text's score, when the score
    /// reaches `threshold`; nothing otherwise.
    pub fn findings(&self, threshold: f32) -> Vec<Finding> {
        let score = self.score();
        if self.hits.is_empty() || score < threshold {
            return Vec::new();
        }
        self.hits
            .iter()
            .map(|h| Finding {
                kind: Kind::PromptInjection,
                start: h.start,
                end: h.end,
                rule: h.rule,
                score,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_strong_phrase_passes_hidden_text_alone_does_not() {
        let mut strong = Injection::default();
        strong.hit(0, 10, "ignore_instructions", 0.9);
        assert_eq!(strong.findings(0.5).len(), 1);

        let mut hidden = Injection::default();
        hidden.hit(0, 10, "html_comment", 0.2);
        hidden.hit(20, 23, "zero_width", 0.35);
        hidden.hit(40, 43, "zero_width", 0.35);
        assert!((hidden.score() - 0.48).abs() < 1e-6, "{}", hidden.score());
        assert!(hidden.findings(0.5).is_empty());

        hidden.hit(50, 60, "act_as", 0.4);
        assert!(hidden.findings(0.5).len() == 4);
    }
}
