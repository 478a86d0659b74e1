//! The plate index (issue 13): one row per (plate event, candidate text), so a plate can be
//! found by what was read, by its folded key (OCR confusions O/0, I/1, B/8, …) and by the
//! other candidates of the vote, without parsing event payloads.
//!
//! Rows are written by the event insert, in its transaction, for the events it newly stored
//! (a replayed duplicate adds nothing), and go with their event through the foreign key.
//!
//! A search runs in two steps. SQL narrows the rows with the indexes: equality and prefix
//! ranges on the b-tree indexes of `text` and `key`, infix `LIKE` on the trigram index
//! (SQLite FTS5 `trigram`, PostgreSQL `pg_trgm` GIN). A fuzzy query (edit distance ≤ k) is cut
//! into k + 1 pieces: k edits leave at least one piece intact, so every answer contains one of
//! them and the trigram index finds a superset (a query too short for three-character pieces
//! scans, bounded by length). Rust then decides each row exactly
//! ([`PlateQuery::matches`], Levenshtein through `sightline_anpr`), keeps the best-ranked
//! matching row of each event, and pages by event id, newest first.

use crate::codec::{corrupt, to_ms};
use crate::error::{Result, StoreError};
use crate::events::EventRow;
use crate::page::{Page, clamp_limit, paginate};
use crate::store::{Backend, Store, Tx, on_pool, on_tx};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sightline_anpr::search::PlateQuery;
use sightline_anpr::{distance, fold, normalize};
use sightline_core::{Event, EventKind, RunId};
use std::cell::RefCell;
use std::collections::HashMap;
use uuid::Uuid;

/// Plate rows per INSERT statement (9 parameters each).
const PLATE_CHUNK: usize = 1000;
/// Rows fetched per round while collecting a page.
const SCAN_BATCH: i64 = 500;
/// Rows examined for one page at most: a query the indexes cannot narrow (a fuzzy query with
/// pieces under three characters) returns a short page with a cursor rather than scanning
/// the whole index in one request.
const MAX_SCANNED: usize = 50_000;
/// Above every character of a normalised plate: `p..p~` is the range of texts starting
/// with `p`.
const PREFIX_END: char = '~';

/// A plate search (see [`Store::search_plates`]).
#[derive(Debug, Clone)]
pub struct PlateSearch {
    pub query: PlateQuery,
    pub run: Option<RunId>,
    /// Inclusive (wall-clock time).
    pub since: Option<DateTime<Utc>>,
    /// Exclusive.
    pub until: Option<DateTime<Utc>>,
    /// `next_cursor` of the previous page (an event id).
    pub cursor: Option<String>,
    /// Page size (0 = default, clamped to [`crate::MAX_LIMIT`]).
    pub limit: u32,
    /// Also match the vote's other candidate texts (default true).
    pub candidates: bool,
}

impl PlateSearch {
    /// A search for `query` over everything, default page, candidates included.
    pub fn new(query: PlateQuery) -> Self {
        PlateSearch {
            query,
            run: None,
            since: None,
            until: None,
            cursor: None,
            limit: 0,
            candidates: true,
        }
    }
}

/// What a hit matched on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchedOn {
    /// The voted text.
    Text,
    /// The folded key of the voted text (the query folded too).
    Key,
    /// Another candidate of the vote, by its text or its key.
    Candidate,
}

impl MatchedOn {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchedOn::Text => "text",
            MatchedOn::Key => "key",
            MatchedOn::Candidate => "candidate",
        }
    }
}

/// One event found by a plate search.
#[derive(Debug, Clone)]
pub struct PlateHit {
    /// The whole event, with its plate read and pictures.
    pub event: Event,
    /// The stored text that matched (the voted text or a candidate).
    pub matched_text: String,
    pub matched_on: MatchedOn,
    /// Edit distance between the query and what matched (the text, or the key against the
    /// folded query); 0 for exact, prefix and wildcard queries.
    pub distance: u32,
}

impl PlateHit {
    /// The event's JSON (as in the event list) with `matched_text`, `matched_on` and
    /// `distance` added: one item of the API's and the CLI's answers.
    pub fn to_json(&self) -> serde_json::Result<serde_json::Value> {
        let mut v = serde_json::to_value(&self.event)?;
        if let serde_json::Value::Object(m) = &mut v {
            m.insert("matched_text".into(), self.matched_text.clone().into());
            m.insert("matched_on".into(), self.matched_on.as_str().into());
            m.insert("distance".into(), self.distance.into());
        }
        Ok(v)
    }
}

/// One index row to write.
struct NewPlate<'a> {
    event_id: Uuid,
    run_id: &'a str,
    wall_ms: i64,
    text: String,
    key: String,
    rank: i32,
    confidence: Option<f64>,
    kind: &'static str,
    label: Option<&'a str>,
}

/// The index rows of one event: the voted text (rank 0), then each other distinct candidate.
fn plate_rows(ev: &Event) -> Vec<NewPlate<'_>> {
    let (EventKind::Plate | EventKind::PlateMatch) = ev.body.kind else {
        return Vec::new();
    };
    let Some(p) = &ev.body.plate else {
        return Vec::new();
    };
    let row = |text: String, rank: i32, confidence: f32| NewPlate {
        event_id: ev.id.0,
        run_id: ev.run_id.as_str(),
        wall_ms: ev.wall_ms,
        key: fold(&text),
        text,
        rank,
        confidence: Some(f64::from(confidence)).filter(|c| c.is_finite()),
        kind: ev.body.kind.as_str(),
        label: p.label.as_deref(),
    };
    let mut rows = Vec::with_capacity(1 + p.candidates.len());
    let voted = normalize(&p.text);
    if !voted.is_empty() {
        rows.push(row(voted, 0, p.confidence));
    }
    for c in &p.candidates {
        let text = normalize(&c.text);
        if text.is_empty() || rows.iter().any(|r| r.text == text) {
            continue;
        }
        let mean = if c.readings > 0 {
            c.votes / c.readings as f32
        } else {
            c.votes
        };
        let rank = i32::try_from(rows.len()).unwrap_or(i32::MAX).max(1);
        rows.push(row(text, rank, mean));
    }
    rows
}

/// Writes the index rows of `events` (the ones the caller just stored) inside `tx`.
pub(crate) async fn insert_plates<'e>(
    tx: &mut Tx,
    events: impl Iterator<Item = &'e Event>,
) -> Result<()> {
    let rows: Vec<NewPlate<'e>> = events.flat_map(plate_rows).collect();
    for chunk in rows.chunks(PLATE_CHUNK) {
        on_tx!(&mut *tx, c => {
            let mut qb = sqlx::QueryBuilder::new(
                "INSERT INTO plates (event_id, run_id, wall_ms, text, key, rank, confidence, \
                 kind, label) ");
            qb.push_values(chunk.iter(), |mut b, r| {
                b.push_bind(r.event_id)
                    .push_bind(r.run_id)
                    .push_bind(r.wall_ms)
                    .push_bind(r.text.as_str())
                    .push_bind(r.key.as_str())
                    .push_bind(r.rank)
                    .push_bind(r.confidence)
                    .push_bind(r.kind)
                    .push_bind(r.label);
            });
            qb.build().execute(&mut *c).await?.rows_affected()
        });
    }
    Ok(())
}

/// A condition on one text column that an index answers.
#[derive(Debug, Clone, PartialEq)]
enum Cond {
    Eq(String),
    /// `lo <= col < hi`.
    Range(String, String),
    /// `col LIKE pattern` (trigram index).
    Like(String),
}

/// What SQL can narrow for a query: conditions on `text` and on `key` (ORed; none at all
/// means scan), and a length bound.
#[derive(Debug, Clone, PartialEq)]
struct Narrow {
    text: Vec<Cond>,
    key: Vec<Cond>,
    len: Option<(i64, i64)>,
}

impl Narrow {
    fn of(q: &PlateQuery) -> Narrow {
        let per_column = |q: &PlateQuery| -> (Vec<Cond>, Option<(i64, i64)>) {
            match q {
                PlateQuery::Exact(t) => (vec![Cond::Eq(t.clone())], None),
                PlateQuery::Prefix(p) => (
                    vec![Cond::Range(p.clone(), format!("{p}{PREFIX_END}"))],
                    None,
                ),
                PlateQuery::Wildcard(_) => {
                    (q.like_pattern().map(Cond::Like).into_iter().collect(), None)
                }
                PlateQuery::Fuzzy { text, distance } => {
                    let n = text.chars().count() as i64;
                    let k = i64::from(*distance);
                    let pieces = pieces(text, *distance as usize + 1);
                    let conds = if pieces.iter().all(|p| p.len() >= 3) {
                        pieces
                            .into_iter()
                            .map(|p| Cond::Like(format!("%{p}%")))
                            .collect()
                    } else {
                        Vec::new()
                    };
                    (conds, Some(((n - k).max(0), n + k)))
                }
            }
        };
        let (text, len) = per_column(q);
        let (key, _) = per_column(&q.folded());
        if text.is_empty() || key.is_empty() {
            // One column unnarrowed: both must be scanned.
            return Narrow {
                text: Vec::new(),
                key: Vec::new(),
                len,
            };
        }
        Narrow { text, key, len }
    }

    fn indexed(&self) -> bool {
        !self.text.is_empty()
    }
}

/// `s` cut into `n` contiguous pieces of near-equal length (fewer when `s` is shorter).
fn pieces(s: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    let n = n.clamp(1, chars.len().max(1));
    (0..n)
        .map(|i| {
            let a = i * chars.len() / n;
            let b = (i + 1) * chars.len() / n;
            chars[a..b].iter().collect()
        })
        .collect()
}

/// Appends `col <cond>` for each condition, ORed, to `qb`.
fn push_conds<DB: sqlx::Database>(
    qb: &mut sqlx::QueryBuilder<DB>,
    dialect: Backend,
    col: &'static str,
    conds: &[Cond],
    first: &mut bool,
) where
    String: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    for c in conds {
        qb.push(if *first { "" } else { " OR " });
        *first = false;
        match c {
            Cond::Eq(v) => {
                qb.push(col).push(" = ").push_bind(v.clone());
            }
            Cond::Range(lo, hi) => {
                qb.push("(").push(col).push(" >= ").push_bind(lo.clone());
                qb.push(" AND ").push(col).push(" < ").push_bind(hi.clone());
                qb.push(")");
            }
            Cond::Like(p) if dialect == Backend::Sqlite => {
                // The FTS5 trigram table answers LIKE on its own columns from its index.
                qb.push("id IN (SELECT rowid FROM plates_fts WHERE plates_fts.")
                    .push(col)
                    .push(" LIKE ")
                    .push_bind(p.clone())
                    .push(")");
            }
            Cond::Like(p) => {
                qb.push(col).push(" LIKE ").push_bind(p.clone());
            }
        }
    }
}

#[derive(sqlx::FromRow)]
struct CandidateRow {
    event_id: Uuid,
    rank: i32,
    text: String,
    key: String,
}

/// A matching row: what matched, on what, how far.
struct RowMatch {
    text: String,
    on: MatchedOn,
    distance: u32,
}

fn query_distance(q: &PlateQuery, s: &str) -> u32 {
    match q {
        PlateQuery::Fuzzy { text, .. } => u32::try_from(distance(text, s)).unwrap_or(u32::MAX),
        _ => 0,
    }
}

/// Decides one row exactly: its text against the query, its key against the folded query
/// (the closer wins, the text on a tie).
fn match_row(q: &PlateQuery, folded: &PlateQuery, r: &CandidateRow) -> Option<RowMatch> {
    let by_text = q.matches(&r.text).then(|| query_distance(q, &r.text));
    let by_key = folded
        .matches(&r.key)
        .then(|| query_distance(folded, &r.key));
    let (on, distance) = match (by_text, by_key) {
        (Some(t), Some(k)) if k < t => (MatchedOn::Key, k),
        (Some(t), _) => (MatchedOn::Text, t),
        (None, Some(k)) => (MatchedOn::Key, k),
        (None, None) => return None,
    };
    Some(RowMatch {
        text: r.text.clone(),
        on: if r.rank > 0 { MatchedOn::Candidate } else { on },
        distance,
    })
}

/// An event whose rows matched, before the event itself is loaded.
struct Found {
    event_id: Uuid,
    best: RowMatch,
}

impl Store {
    /// Plate and plate-match events whose voted text, folded key or (with `candidates`) other
    /// candidate texts match `q.query`; one hit per event (its best-ranked matching row),
    /// newest first, one page at a time. A page may come back short with a `next_cursor`
    /// when the query could not be narrowed by an index and the scan bound was reached.
    pub async fn search_plates(&self, q: &PlateSearch) -> Result<Page<PlateHit>> {
        let limit = clamp_limit(q.limit);
        let cursor = q
            .cursor
            .as_deref()
            .map(|c| {
                Uuid::parse_str(c).map_err(|_| StoreError::invalid("cursor", "not an event cursor"))
            })
            .transpose()?;
        let narrow = Narrow::of(&q.query);
        let folded = q.query.folded();
        // Rows come newest event first, and within an event the highest rank first, so the
        // last matching row of an event's run is its best-ranked one. `(cursor, -1)` is
        // before every row of the cursor's event.
        let mut after = cursor.map(|c| (c, -1));
        let mut found: Vec<Found> = Vec::new();
        let mut group: Option<(Uuid, Option<RowMatch>)> = None;
        let mut last_done: Option<Uuid> = None;
        let mut scanned = 0usize;
        let mut cut = false;
        'scan: loop {
            let rows = self.plate_rows_after(q, &narrow, after).await?;
            let exhausted = rows.len() < SCAN_BATCH as usize;
            scanned += rows.len();
            for r in rows {
                after = Some((r.event_id, r.rank));
                if group.as_ref().is_some_and(|(id, _)| *id != r.event_id)
                    && let Some((id, best)) = group.take()
                {
                    last_done = Some(id);
                    if let Some(best) = best {
                        found.push(Found { event_id: id, best });
                        if found.len() > limit as usize {
                            break 'scan;
                        }
                    }
                }
                let m = match_row(&q.query, &folded, &r);
                let g = group.get_or_insert((r.event_id, None));
                if m.is_some() {
                    g.1 = m;
                }
            }
            if exhausted {
                if let Some((id, Some(best))) = group.take() {
                    found.push(Found { event_id: id, best });
                }
                break;
            }
            if scanned >= MAX_SCANNED {
                cut = found.len() <= limit as usize;
                break;
            }
        }
        let events = RefCell::new(self.events_by_id(&found).await?);
        let mut page = paginate(
            found,
            limit,
            |f| f.event_id.to_string(),
            |f| {
                let key = f.event_id.to_string();
                let event = events
                    .borrow_mut()
                    .remove(&f.event_id)
                    .ok_or_else(|| corrupt("plates", &key, "event deleted during the search"))?
                    .decode()?;
                Ok(PlateHit {
                    event,
                    matched_text: f.best.text,
                    matched_on: f.best.on,
                    distance: f.best.distance,
                })
            },
        );
        if cut {
            page.next_cursor = last_done.map(|id| id.to_string());
        }
        Ok(page)
    }

    /// The next [`SCAN_BATCH`] index rows after `after` (event id, rank), in (event id, rank)
    /// descending order, narrowed by the indexes and the filters.
    async fn plate_rows_after(
        &self,
        q: &PlateSearch,
        narrow: &Narrow,
        after: Option<(Uuid, i32)>,
    ) -> Result<Vec<CandidateRow>> {
        let dialect = self.backend();
        Ok(on_pool!(self, p => {
            let mut qb = sqlx::QueryBuilder::new("");
            if narrow.indexed() {
                // Evaluate the indexed conditions first (a fence): ordered by event id, a
                // planner may otherwise walk the whole event index hoping to meet a match.
                qb.push("WITH m AS MATERIALIZED (");
            }
            qb.push("SELECT event_id, rank, text, key FROM plates WHERE 1 = 1");
            if narrow.indexed() {
                let mut first = true;
                qb.push(" AND (");
                push_conds(&mut qb, dialect, "text", &narrow.text, &mut first);
                push_conds(&mut qb, dialect, "key", &narrow.key, &mut first);
                qb.push(")");
            }
            if let Some((lo, hi)) = narrow.len {
                qb.push(" AND length(text) BETWEEN ").push_bind(lo).push(" AND ").push_bind(hi);
            }
            if !q.candidates {
                qb.push(" AND rank = 0");
            }
            if let Some(r) = &q.run {
                qb.push(" AND run_id = ").push_bind(r.as_str().to_owned());
            }
            if let Some(s) = q.since {
                qb.push(" AND wall_ms >= ").push_bind(to_ms(s));
            }
            if let Some(u) = q.until {
                qb.push(" AND wall_ms < ").push_bind(to_ms(u));
            }
            if let Some((id, rank)) = after {
                qb.push(" AND (event_id < ").push_bind(id);
                qb.push(" OR (event_id = ").push_bind(id);
                qb.push(" AND rank < ").push_bind(rank).push("))");
            }
            if narrow.indexed() {
                qb.push(") SELECT event_id, rank, text, key FROM m");
            }
            qb.push(" ORDER BY event_id DESC, rank DESC LIMIT ").push_bind(SCAN_BATCH);
            qb.build_query_as::<CandidateRow>().fetch_all(p).await?
        }))
    }

    /// The events of `found`, by id.
    async fn events_by_id(&self, found: &[Found]) -> Result<HashMap<Uuid, EventRow>> {
        if found.is_empty() {
            return Ok(HashMap::new());
        }
        let rows: Vec<EventRow> = on_pool!(self, p => {
            let mut qb = sqlx::QueryBuilder::new(
                "SELECT id, run_id, type, rule, class, track_id, zone, line, direction, pts_ns, \
                 wall_ms, confidence, bbox, payload FROM events WHERE id IN (");
            let mut ids = qb.separated(", ");
            for f in found {
                ids.push_bind(f.event_id);
            }
            qb.push(")");
            qb.build_query_as::<EventRow>().fetch_all(p).await?
        });
        Ok(rows.into_iter().map(|r| (r.id, r)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_cover_the_text() {
        assert_eq!(pieces("KA01AB1234", 2), vec!["KA01A", "B1234"]);
        assert_eq!(pieces("KA01AB1234", 3), vec!["KA0", "1AB", "1234"]);
        assert_eq!(pieces("AB", 3), vec!["A", "B"]);
    }

    #[test]
    fn short_fuzzy_queries_scan_by_length() {
        let n = Narrow::of(&PlateQuery::Fuzzy {
            text: "AB12".into(),
            distance: 1,
        });
        assert!(!n.indexed());
        assert_eq!(n.len, Some((3, 5)));
        let n = Narrow::of(&PlateQuery::Fuzzy {
            text: "KA01AB1234".into(),
            distance: 1,
        });
        assert_eq!(
            n.text,
            vec![Cond::Like("%KA01A%".into()), Cond::Like("%B1234%".into())]
        );
        assert_eq!(
            n.key,
            vec![Cond::Like("%KA01A%".into()), Cond::Like("%81234%".into())]
        );
    }
}
