//! Greedy CTC decoding of a text recogniser's output.

/// A line of text read by the recogniser.
#[derive(Debug, Clone, PartialEq)]
pub struct TextLine {
    pub text: String,
    /// Confidence of each character of `text` (the probability of its winning column),
    /// aligned with `text.chars()`.
    pub char_conf: Vec<f32>,
}

impl TextLine {
    /// Mean character confidence (0 for an empty line).
    pub fn confidence(&self) -> f32 {
        if self.char_conf.is_empty() {
            0.0
        } else {
            self.char_conf.iter().sum::<f32>() / self.char_conf.len() as f32
        }
    }
}

/// Greedy CTC: `probs` is `[steps, classes]` row-major (probabilities or logits: only the
/// arg-max of each step and its value are used). Class 0 is the blank; class `i ≥ 1` is
/// `charset[i - 1]`. Repeats of one class in consecutive steps are one character unless a
/// blank separates them. A class beyond the charset is dropped.
pub fn ctc_greedy(probs: &[f32], classes: usize, charset: &[String]) -> TextLine {
    let mut text = String::new();
    let mut char_conf = Vec::new();
    let mut prev = 0usize;
    if classes == 0 {
        return TextLine { text, char_conf };
    }
    for step in probs.chunks_exact(classes) {
        let (best, p) =
            step.iter()
                .copied()
                .enumerate()
                .fold((0usize, f32::NEG_INFINITY), |acc, (i, v)| {
                    if v > acc.1 { (i, v) } else { acc }
                });
        if best != 0
            && best != prev
            && let Some(s) = charset.get(best - 1)
        {
            for c in s.chars() {
                text.push(c);
                char_conf.push(p);
            }
        }
        prev = best;
    }
    TextLine { text, char_conf }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn onehot(seq: &[usize], classes: usize, p: f32) -> Vec<f32> {
        let mut v = vec![0.0; seq.len() * classes];
        for (t, &c) in seq.iter().enumerate() {
            v[t * classes + c] = p;
        }
        v
    }

    #[test]
    fn collapses_repeats_and_drops_blanks() {
        let cs: Vec<String> = ["A", "B", "1"].iter().map(|s| s.to_string()).collect();
        // A A _ A B B _ 1
        let probs = onehot(&[1, 1, 0, 1, 2, 2, 0, 3], 4, 0.9);
        let line = ctc_greedy(&probs, 4, &cs);
        assert_eq!(line.text, "AAB1");
        assert_eq!(line.char_conf.len(), 4);
        assert!((line.confidence() - 0.9).abs() < 1e-6);
    }

    #[test]
    fn keeps_the_winning_probability_per_character() {
        let cs: Vec<String> = ["X", "Y"].iter().map(|s| s.to_string()).collect();
        let probs = vec![
            0.1, 0.8, 0.1, // X (0.8)
            0.7, 0.2, 0.1, // blank
            0.2, 0.2, 0.6, // Y (0.6)
        ];
        let line = ctc_greedy(&probs, 3, &cs);
        assert_eq!(line.text, "XY");
        assert_eq!(line.char_conf, vec![0.8, 0.6]);
    }

    #[test]
    fn classes_outside_the_charset_are_dropped() {
        let cs: Vec<String> = vec!["A".into()];
        let probs = onehot(&[1, 0, 5], 6, 1.0);
        assert_eq!(ctc_greedy(&probs, 6, &cs).text, "A");
        assert_eq!(ctc_greedy(&[], 0, &cs).text, "");
    }
}
