//! Cursor pagination shared by every list: a page of items, the cursor to continue after the
//! last one, and the rows on this page that could not be decoded (reported, not hidden, and
//! never allowed to break the listing of the others).

use crate::error::CorruptRow;
use serde::Serialize;

/// Default page size when the caller passes 0.
pub const DEFAULT_LIMIT: u32 = 100;
/// Largest page size; larger requests are clamped.
pub const MAX_LIMIT: u32 = 1000;

/// One page of a listing.
#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass back as `cursor` to get the next page; `None` on the last page.
    pub next_cursor: Option<String>,
    /// Rows of this page that could not be decoded.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub corrupt: Vec<CorruptRow>,
}

impl<T> Page<T> {
    pub fn empty() -> Self {
        Page {
            items: Vec::new(),
            next_cursor: None,
            corrupt: Vec::new(),
        }
    }
}

/// Direction of a listing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SortOrder {
    /// Oldest first (ids ascending); the cursor continues forwards.
    #[default]
    Asc,
    /// Newest first.
    Desc,
}

/// The page size to fetch: `limit` clamped to `1..=MAX_LIMIT`, 0 meaning the default.
pub(crate) fn clamp_limit(limit: u32) -> u32 {
    match limit {
        0 => DEFAULT_LIMIT,
        n => n.min(MAX_LIMIT),
    }
}

/// Splits `limit + 1` fetched rows into a page: if there is an extra row, the page is full and
/// the cursor is the key of its last row.
pub(crate) fn paginate<R, T>(
    mut rows: Vec<R>,
    limit: u32,
    key: impl Fn(&R) -> String,
    decode: impl Fn(R) -> Result<T, CorruptRow>,
) -> Page<T> {
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_cursor = if more { rows.last().map(&key) } else { None };
    let mut page = Page {
        items: Vec::with_capacity(rows.len()),
        next_cursor,
        corrupt: Vec::new(),
    };
    for r in rows {
        match decode(r) {
            Ok(t) => page.items.push(t),
            Err(c) => {
                tracing::error!(table = c.table, key = %c.key, detail = %c.detail, "corrupt row skipped");
                page.corrupt.push(c);
            }
        }
    }
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_clamped() {
        assert_eq!(clamp_limit(0), DEFAULT_LIMIT);
        assert_eq!(clamp_limit(5), 5);
        assert_eq!(clamp_limit(1_000_000), MAX_LIMIT);
    }

    #[test]
    fn cursor_only_when_more() {
        let p = paginate(vec![1, 2, 3], 2, |r| r.to_string(), Ok::<_, CorruptRow>);
        assert_eq!(p.items, vec![1, 2]);
        assert_eq!(p.next_cursor.as_deref(), Some("2"));
        let p = paginate(vec![1, 2], 2, |r| r.to_string(), Ok::<_, CorruptRow>);
        assert_eq!(p.next_cursor, None);
        let p = paginate(
            vec![1, 2],
            5,
            |r| r.to_string(),
            |r| {
                if r == 2 {
                    Err(CorruptRow {
                        table: "t",
                        key: "2".into(),
                        detail: "bad".into(),
                    })
                } else {
                    Ok(r)
                }
            },
        );
        assert_eq!(p.items, vec![1]);
        assert_eq!(p.corrupt.len(), 1);
    }
}
