//! Plate search queries of the HTTP API and the CLI.
//!
//! A query is parsed once here into one of four kinds; the store turns it into SQL
//! ([`PlateQuery::like_pattern`], on the text or, with [`PlateQuery::folded`], on the folded
//! key) and post-filters rows with [`PlateQuery::matches`], the reference semantics.

use crate::text::{distance, fold_char};

/// The longest query accepted, in characters after normalisation (`*` included).
pub const MAX_QUERY_CHARS: usize = 16;
/// The largest edit distance of a fuzzy query.
pub const MAX_QUERY_DISTANCE: u32 = 3;

/// A parsed plate query. Texts are normalised (A–Z, 0–9) and, in `Wildcard`, `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlateQuery {
    /// The whole text.
    Exact(String),
    /// Texts starting with this.
    Prefix(String),
    /// `*` stands for any run of characters, possibly empty.
    Wildcard(String),
    /// Texts within `distance` edits (Levenshtein).
    Fuzzy { text: String, distance: u32 },
}

/// Parses a query.
///
/// `q` is normalised (upper case, A–Z and 0–9) keeping `*`; consecutive `*` count as one.
/// - only a single trailing `*` → [`PlateQuery::Prefix`];
/// - any other `*` → [`PlateQuery::Wildcard`];
/// - no `*` and `distance` of 1..=3 → [`PlateQuery::Fuzzy`];
/// - no `*` and no `distance` or 0 → [`PlateQuery::Exact`].
///
/// Refused: a query with no letters or digits, longer than [`MAX_QUERY_CHARS`], a distance
/// above [`MAX_QUERY_DISTANCE`]. A distance is ignored for a query with `*`.
pub fn parse_query(q: &str, distance: Option<u32>) -> Result<PlateQuery, String> {
    let mut text = String::with_capacity(q.len());
    for c in q.chars() {
        if c == '*' {
            if !text.ends_with('*') {
                text.push('*');
            }
        } else if c.is_ascii_alphanumeric() {
            text.push(c.to_ascii_uppercase());
        }
    }
    if !text.chars().any(|c| c != '*') {
        return Err("the query has no letters or digits".into());
    }
    let n = text.chars().count();
    if n > MAX_QUERY_CHARS {
        return Err(format!(
            "the query has {n} characters, more than {MAX_QUERY_CHARS}"
        ));
    }
    let distance = distance.unwrap_or(0);
    if distance > MAX_QUERY_DISTANCE {
        return Err(format!(
            "distance {distance} is more than {MAX_QUERY_DISTANCE}"
        ));
    }
    // A pattern with `*` is matched as written: a distance does not apply to it (ignored, so
    // a form that always sends `distance` still searches wildcards).
    let stars = text.matches('*').count();
    Ok(match (stars, text.strip_suffix('*')) {
        (0, _) if distance > 0 => PlateQuery::Fuzzy { text, distance },
        (0, _) => PlateQuery::Exact(text),
        (1, Some(prefix)) => PlateQuery::Prefix(prefix.to_string()),
        _ => PlateQuery::Wildcard(text),
    })
}

/// Whether `text` matches `pattern`, where `*` matches any run of characters.
fn glob(pattern: &[char], text: &[char]) -> bool {
    // Greedy with backtracking to the last star: O(len(pattern) × len(text)) at worst.
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

impl PlateQuery {
    /// An SQL `LIKE` pattern on the normalised text for `Exact`, `Prefix` and `Wildcard`
    /// (`*` → `%`); None for `Fuzzy`. Texts only hold A–Z and 0–9, so nothing needs escaping.
    pub fn like_pattern(&self) -> Option<String> {
        match self {
            PlateQuery::Exact(t) => Some(t.clone()),
            PlateQuery::Prefix(t) => Some(format!("{t}%")),
            PlateQuery::Wildcard(t) => Some(t.replace('*', "%")),
            PlateQuery::Fuzzy { .. } => None,
        }
    }

    /// The same query on the folded key space: every character but `*` folded.
    pub fn folded(&self) -> PlateQuery {
        let f = |t: &str| t.chars().map(fold_char).collect::<String>();
        match self {
            PlateQuery::Exact(t) => PlateQuery::Exact(f(t)),
            PlateQuery::Prefix(t) => PlateQuery::Prefix(f(t)),
            PlateQuery::Wildcard(t) => PlateQuery::Wildcard(f(t)),
            PlateQuery::Fuzzy { text, distance } => PlateQuery::Fuzzy {
                text: f(text),
                distance: *distance,
            },
        }
    }

    /// Whether a stored text (or, for a folded query, a key) matches: the reference semantics
    /// the SQL is checked against. `text` is compared as given, upper case.
    pub fn matches(&self, text: &str) -> bool {
        match self {
            PlateQuery::Exact(q) => text == q,
            PlateQuery::Prefix(q) => text.starts_with(q.as_str()),
            PlateQuery::Wildcard(q) => {
                let p: Vec<char> = q.chars().collect();
                let t: Vec<char> = text.chars().collect();
                glob(&p, &t)
            }
            PlateQuery::Fuzzy {
                text: q,
                distance: d,
            } => u32::try_from(distance(q, text)).is_ok_and(|n| n <= *d),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(q: &str) -> PlateQuery {
        parse_query(q, None).unwrap()
    }

    #[test]
    fn parses_each_kind() {
        assert_eq!(parse("ka-01 ab"), PlateQuery::Exact("KA01AB".into()));
        assert_eq!(
            parse_query("KA01", Some(0)),
            Ok(PlateQuery::Exact("KA01".into()))
        );
        assert_eq!(parse("ka01*"), PlateQuery::Prefix("KA01".into()));
        assert_eq!(parse("ka01**"), PlateQuery::Prefix("KA01".into()));
        assert_eq!(parse("*1234"), PlateQuery::Wildcard("*1234".into()));
        assert_eq!(parse("KA*12*"), PlateQuery::Wildcard("KA*12*".into()));
        assert_eq!(parse("KA * 34"), PlateQuery::Wildcard("KA*34".into()));
        assert_eq!(
            parse_query("ka01ab1234", Some(2)),
            Ok(PlateQuery::Fuzzy {
                text: "KA01AB1234".into(),
                distance: 2
            })
        );
    }

    #[test]
    fn refuses_bad_queries_saying_why() {
        let err = |q: &str, d| parse_query(q, d).unwrap_err();
        assert!(err(" - ", None).contains("no letters or digits"));
        assert!(err("**", None).contains("no letters or digits"));
        assert!(err("ABCDEFGHIJ1234567", None).contains("17 characters"));
        assert!(parse_query("ABCDEFGHIJ123456", None).is_ok());
        assert!(err("KA01", Some(4)).contains("distance 4"));
        assert!(parse_query("KA01", Some(3)).is_ok());
        assert_eq!(
            parse_query("KA*", Some(1)),
            Ok(PlateQuery::Prefix("KA".into()))
        );
    }

    #[test]
    fn like_patterns() {
        assert_eq!(parse("KA01").like_pattern().as_deref(), Some("KA01"));
        assert_eq!(parse("KA01*").like_pattern().as_deref(), Some("KA01%"));
        assert_eq!(parse("*01*34").like_pattern().as_deref(), Some("%01%34"));
        assert_eq!(parse_query("KA01", Some(1)).unwrap().like_pattern(), None);
    }

    #[test]
    fn folded_queries_live_in_key_space() {
        assert_eq!(parse("KAOI*").folded(), PlateQuery::Prefix("KA01".into()));
        assert_eq!(parse("*SB*").folded(), PlateQuery::Wildcard("*58*".into()));
        assert_eq!(
            parse_query("KAOIB", Some(1)).unwrap().folded(),
            PlateQuery::Fuzzy {
                text: "KA018".into(),
                distance: 1
            }
        );
        assert!(
            parse("KAOIAB1234")
                .folded()
                .matches(&crate::text::fold("KA01A81234"))
        );
    }

    #[test]
    fn matches_exact_and_prefix() {
        assert!(parse("KA01AB1234").matches("KA01AB1234"));
        assert!(!parse("KA01AB1234").matches("KA01AB12345"));
        assert!(parse("KA01*").matches("KA01AB1234"));
        assert!(parse("KA01*").matches("KA01"));
        assert!(!parse("KA01*").matches("XKA01"));
    }

    #[test]
    fn matches_wildcards_anywhere() {
        let q = parse("*AB*34");
        assert!(q.matches("KA01AB1234"));
        assert!(q.matches("AB34"));
        assert!(!q.matches("KA01AB1243"));
        assert!(parse("K*A*4").matches("KA01AB1234"));
        // Needs backtracking: the first '1' is not the one before "234".
        assert!(parse("*1234").matches("KA01AB1234"));
        assert!(!parse("*1234").matches("KA01AB123"));
        assert!(parse("KA*").matches("KA"));
    }

    #[test]
    fn matches_within_the_fuzzy_distance() {
        let q = parse_query("KA01AB1234", Some(1)).unwrap();
        assert!(q.matches("KA01AB1234"));
        assert!(q.matches("KA01AB123"));
        assert!(q.matches("KA0IAB1234"));
        assert!(!q.matches("KA0IAB123"));
    }
}
