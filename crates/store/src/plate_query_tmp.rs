//! TMP stand-in for sightline_anpr::search until it lands.
#![allow(dead_code)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlateQuery {
    Exact(String),
    Prefix(String),
    Wildcard(String),
    Fuzzy { text: String, distance: u32 },
}
pub fn parse_query(q: &str, distance: Option<u32>) -> Result<PlateQuery, String> {
    let n: String = q
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '*')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if n.trim_matches('*').is_empty() {
        return Err("empty".into());
    }
    if let Some(d) = distance {
        if n.contains('*') {
            return Err("fuzzy with *".into());
        }
        return Ok(PlateQuery::Fuzzy {
            text: n,
            distance: d,
        });
    }
    if !n.contains('*') {
        return Ok(PlateQuery::Exact(n));
    }
    if n.ends_with('*') && !n[..n.len() - 1].contains('*') {
        return Ok(PlateQuery::Prefix(n[..n.len() - 1].into()));
    }
    Ok(PlateQuery::Wildcard(n))
}
impl PlateQuery {
    pub fn like_pattern(&self) -> Option<String> {
        match self {
            PlateQuery::Exact(t) => Some(t.clone()),
            PlateQuery::Prefix(p) => Some(format!("{p}%")),
            PlateQuery::Wildcard(w) => Some(w.replace('*', "%")),
            PlateQuery::Fuzzy { .. } => None,
        }
    }
    pub fn folded(&self) -> PlateQuery {
        let f = |s: &str| {
            s.chars()
                .map(|c| {
                    if c == '*' {
                        c
                    } else {
                        sightline_anpr::fold_char(c)
                    }
                })
                .collect::<String>()
        };
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
    pub fn matches(&self, text: &str) -> bool {
        match self {
            PlateQuery::Exact(t) => t == text,
            PlateQuery::Prefix(p) => text.starts_with(p.as_str()),
            PlateQuery::Wildcard(w) => glob(w.as_bytes(), text.as_bytes()),
            PlateQuery::Fuzzy { text: t, distance } => {
                sightline_anpr::distance(t, text) <= *distance as usize
            }
        }
    }
}
fn glob(p: &[u8], t: &[u8]) -> bool {
    match p.first() {
        None => t.is_empty(),
        Some(b'*') => (0..=t.len()).any(|i| glob(&p[1..], &t[i..])),
        Some(c) => t.first() == Some(c) && glob(&p[1..], &t[1..]),
    }
}
