//! Plate text: normalisation, the folded search key and edit distance.

/// Upper case, A–Z and 0–9 only: separators, spaces, punctuation and anything outside ASCII
/// letters and digits are dropped (`"ka-01 ab 1234"` → `"KA01AB1234"`).
pub fn normalize(raw: &str) -> String {
    raw.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// The character a confusable one folds to in the search key, or itself.
pub fn fold_char(c: char) -> char {
    match c {
        'O' | 'Q' | 'D' => '0',
        'I' | 'L' => '1',
        'S' => '5',
        'B' => '8',
        'Z' => '2',
        'G' => '6',
        other => other,
    }
}

/// The folded search key of a normalised text: characters OCR confuses map to one digit
/// (O/Q/D→0, I/L→1, S→5, B→8, Z→2, G→6), so `KA0IAB1234` and `KAO1A81234` share a key.
/// Input that is not normalised is normalised first.
pub fn fold(text: &str) -> String {
    normalize(text).chars().map(fold_char).collect()
}

/// Levenshtein distance in characters.
pub fn distance(a: &str, b: &str) -> usize {
    strsim::levenshtein(a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_case_and_separators() {
        assert_eq!(normalize("ka-01 ab·1234"), "KA01AB1234");
        assert_eq!(normalize(" !? "), "");
        assert_eq!(normalize("ÄB12"), "B12");
    }

    #[test]
    fn folds_confusables_to_one_key() {
        assert_eq!(fold("KA0IAB1234"), "KA01A81234");
        assert_eq!(fold("KAO1A81234"), "KA01A81234");
        assert_eq!(fold("qdz-gs"), "00265");
        assert_eq!(fold("ABC"), "A8C");
    }

    #[test]
    fn distance_counts_edits() {
        assert_eq!(distance("KA01AB1234", "KA01AB1234"), 0);
        assert_eq!(distance("KA01AB1234", "KA01AB123"), 1);
        assert_eq!(distance("KA01AB1234", "KA01A81234"), 1);
        assert_eq!(distance("", "AB"), 2);
    }
}
