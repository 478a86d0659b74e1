//! The plate index and search: OCR errors found by the folded key and by edit distance,
//! candidates, filters, pagination, duplicates and retention.

use crate::common::{TestDb, both_backends, seed_runs};
use chrono::{DateTime, Utc};
use sightline_anpr::search::{PlateQuery, parse_query};
use sightline_core::{Event, EventId, EventKind, PlateCandidate, PlateRead, Pts, RuleEvent, RunId};
use sightline_store::{MatchedOn, PlateHit, PlateSearch};
use std::collections::HashSet;
use uuid::Uuid;

const T0: i64 = 1_735_689_600_000;

/// Event ids in creation order: `seq` orders them like UUIDv7 ids a second apart.
fn id(seq: u64) -> EventId {
    EventId(Uuid::from_u128(
        (u128::from(T0 as u64 + seq * 1000) << 80) | 0x7000_8000_0000_0000_0000 | u128::from(seq),
    ))
}

/// A plate event read as `text`, with the other candidate texts `others`.
pub fn plate_event(run: &RunId, seq: u64, text: &str, others: &[&str]) -> Event {
    let mut body = RuleEvent::new(
        EventKind::Plate,
        "plates",
        Pts::from_millis(seq as i64 * 40),
    );
    body.class = Some("car".into());
    let mut candidates = vec![PlateCandidate {
        text: text.into(),
        votes: 2.7,
        readings: 3,
    }];
    candidates.extend(others.iter().map(|t| PlateCandidate {
        text: (*t).into(),
        votes: 0.6,
        readings: 1,
    }));
    body.plate = Some(PlateRead {
        text: text.into(),
        key: sightline_anpr::fold(text),
        confidence: 0.9,
        readings: 4,
        candidates,
        plate_bbox: None,
        label: None,
        distance: None,
    });
    Event {
        id: id(seq),
        run_id: run.clone(),
        wall_ms: T0 + seq as i64 * 1000,
        body,
        media: None,
    }
}

fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap()
}

/// The true plate is KA01AB1234; the stored reads carry OCR errors.
const READS: &[(&str, &[&str])] = &[
    ("KA01AB1234", &[]),             // 0: exact
    ("KA0IAB1234", &[]),             // 1: I for 1 (same key)
    ("KAO1AB1234", &[]),             // 2: O for 0 (same key)
    ("KA01A81234", &[]),             // 3: 8 for B (same key)
    ("KA01AB1235", &[]),             // 4: one edit, not a confusion
    ("MH12XY9876", &["KA01AB1234"]), // 5: only a candidate
    ("KA01AB12", &[]),               // 6: a prefix of it
    ("TN22AB1299", &[]),             // 7: shares AB12
    ("DL3CAF0001", &[]),             // 8: unrelated
];

async fn seed(db: &TestDb) -> Vec<RunId> {
    let runs = seed_runs(db, 2).await;
    let events: Vec<Event> = READS
        .iter()
        .enumerate()
        .map(|(i, (t, o))| plate_event(&runs[i % 2], i as u64, t, o))
        .collect();
    assert_eq!(
        db.store.insert_events(&events).await.unwrap(),
        READS.len() as u64
    );
    runs
}

async fn search(db: &TestDb, s: &PlateSearch) -> Vec<PlateHit> {
    db.store.search_plates(s).await.unwrap().items
}

/// The reads found (by their position in READS), in answer order.
async fn found(db: &TestDb, q: &str, distance: Option<u32>) -> Vec<usize> {
    let s = PlateSearch::new(parse_query(q, distance).unwrap());
    seqs(&search(db, &s).await)
}

fn seqs(hits: &[PlateHit]) -> Vec<usize> {
    hits.iter()
        .map(|h| (h.event.wall_ms - T0) as usize / 1000)
        .collect()
}

async fn query_kinds(db: &TestDb) {
    seed(db).await;
    // Exact: the text itself, and the reads whose confusions fold to the same key; not the
    // one-edit read, not the longer or shorter ones. Newest first.
    assert_eq!(found(db, "KA01AB1234", None).await, vec![5, 3, 2, 1, 0]);
    let hits = search(
        db,
        &PlateSearch::new(parse_query("KA01AB1234", None).unwrap()),
    )
    .await;
    let on: Vec<(MatchedOn, &str)> = hits
        .iter()
        .map(|h| (h.matched_on, h.matched_text.as_str()))
        .collect();
    assert_eq!(
        on,
        vec![
            (MatchedOn::Candidate, "KA01AB1234"),
            (MatchedOn::Key, "KA01A81234"),
            (MatchedOn::Key, "KAO1AB1234"),
            (MatchedOn::Key, "KA0IAB1234"),
            (MatchedOn::Text, "KA01AB1234"),
        ]
    );
    assert!(hits.iter().all(|h| h.distance == 0));
    // The full event comes back, plate read included.
    let plate = hits[4].event.body.plate.as_ref().unwrap();
    assert_eq!(plate.text, "KA01AB1234");
    assert_eq!(plate.readings, 4);
    // A read that differs by a non-confusable character is not an exact match.
    assert_eq!(found(db, "KA01AB1235", None).await, vec![4]);
    // Separators and case are normalised away.
    assert_eq!(found(db, "ka-01 ab 1235", None).await, vec![4]);

    // Prefix: everything starting KA01 by text or key (KAO1… and KA0I… fold to KA01…).
    assert_eq!(found(db, "KA01*", None).await, vec![6, 5, 4, 3, 2, 1, 0]);
    // Wildcard: AB12 anywhere (A812 in the key of read 3).
    assert_eq!(
        found(db, "*AB12*", None).await,
        vec![7, 6, 5, 4, 3, 2, 1, 0]
    );
    assert_eq!(found(db, "DL*0001", None).await, vec![8]);

    // Fuzzy, distance 1: the one-edit reads, by text (4, 6 is two edits away) or by key.
    let hits = search(
        db,
        &PlateSearch::new(parse_query("KA01AB1234", Some(1)).unwrap()),
    )
    .await;
    assert_eq!(seqs(&hits), vec![5, 4, 3, 2, 1, 0]);
    let d: Vec<(MatchedOn, u32)> = hits.iter().map(|h| (h.matched_on, h.distance)).collect();
    assert_eq!(
        d,
        vec![
            (MatchedOn::Candidate, 0),
            (MatchedOn::Text, 1),
            (MatchedOn::Key, 0),
            (MatchedOn::Key, 0),
            (MatchedOn::Key, 0),
            (MatchedOn::Text, 0),
        ]
    );
    // Distance 2 reaches the shortened read.
    assert_eq!(
        found(db, "KA01AB1234", Some(2)).await,
        vec![6, 5, 4, 3, 2, 1, 0]
    );
    // Pieces under three characters: a scan bounded by length.
    assert_eq!(
        found(db, "KA01AB12", Some(3)).await,
        vec![6, 5, 4, 3, 2, 1, 0]
    );

    // Without candidates the candidate-only hit goes.
    let mut s = PlateSearch::new(parse_query("KA01AB1234", None).unwrap());
    s.candidates = false;
    assert_eq!(seqs(&search(db, &s).await), vec![3, 2, 1, 0]);
}

async fn filters_and_pages(db: &TestDb) {
    let runs = seed(db).await;
    let q = parse_query("*AB12*", None).unwrap();
    let mut s = PlateSearch::new(q.clone());
    s.run = Some(runs[1].clone());
    assert_eq!(seqs(&search(db, &s).await), vec![7, 5, 3, 1]);
    let mut s = PlateSearch::new(q.clone());
    s.since = Some(at(T0 + 2000));
    s.until = Some(at(T0 + 6000));
    assert_eq!(seqs(&search(db, &s).await), vec![5, 4, 3, 2]);

    // Pages of 3: every hit once, newest first, then no cursor.
    let mut s = PlateSearch::new(q);
    s.limit = 3;
    let mut all = Vec::new();
    loop {
        let page = db.store.search_plates(&s).await.unwrap();
        assert!(page.items.len() <= 3);
        all.extend(seqs(&page.items));
        match page.next_cursor {
            Some(c) => s.cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(all, vec![7, 6, 5, 4, 3, 2, 1, 0]);

    let mut s = PlateSearch::new(parse_query("KA01*", None).unwrap());
    s.cursor = Some("not-a-uuid".into());
    assert!(db.store.search_plates(&s).await.is_err());
}

async fn duplicates_and_retention(db: &TestDb) {
    let runs = seed(db).await;
    // The same event id again with another read (a replay): nothing new stored or indexed.
    let replay = plate_event(&runs[0], 0, "ZZ99ZZ9999", &["YY88YY8888"]);
    assert_eq!(db.store.insert_events(&[replay]).await.unwrap(), 0);
    for q in ["ZZ99ZZ9999", "YY88YY8888"] {
        assert!(found(db, q, None).await.is_empty(), "{q}");
    }
    assert_eq!(found(db, "KA01AB1234", None).await, vec![5, 3, 2, 1, 0]);

    // Events that are not plate events are not indexed, even with a plate field.
    let mut other = plate_event(&runs[0], 20, "XX11XX1111", &[]);
    other.body.kind = EventKind::Detected;
    db.store.insert_events(&[other]).await.unwrap();
    assert!(found(db, "XX11XX1111", None).await.is_empty());

    // Retention takes the plates with their events.
    let deleted = db
        .store
        .delete_events_older_than(at(T0 + 3000))
        .await
        .unwrap();
    assert_eq!(deleted, 3);
    assert_eq!(found(db, "KA01AB1234", None).await, vec![5, 3]);
    assert_eq!(found(db, "*AB12*", None).await, vec![7, 6, 5, 4, 3]);
    if db.store.backend() == sightline_store::Backend::Sqlite {
        // The trigram index follows the cascade (its delete trigger fired).
        db.exec("INSERT INTO plates_fts (plates_fts) VALUES ('integrity-check')")
            .await;
    }
    let ids: HashSet<String> = search(db, &PlateSearch::new(PlateQuery::Prefix(String::new())))
        .await
        .iter()
        .map(|h| h.event.id.to_string())
        .collect();
    assert_eq!(ids.len(), 6);
}

both_backends!(query_kinds, filters_and_pages, duplicates_and_retention);

/// Search latency on a million plate events (not in CI; one run takes minutes):
/// `cargo test -p sightline-store --test integration plates::bench -- --ignored --nocapture`
/// (`SIGHTLINE_PLATES_BENCH_N` sets the number of events).
mod bench {
    use super::*;
    use std::time::{Duration, Instant};

    /// A query text and its distance.
    type Query = (String, Option<u32>);

    const STATES: &[&str] = &["KA", "MH", "DL", "TN", "AP", "GJ", "UP", "WB", "KL", "RJ"];

    /// xorshift64*: reproducible plates without a dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn letter(&mut self) -> char {
            char::from(b'A' + self.below(26) as u8)
        }
        /// `KA01AB1234`-shaped: state, district, one or two letters, four digits.
        fn plate(&mut self) -> String {
            let mut s = format!(
                "{}{:02}",
                STATES[self.below(STATES.len())],
                1 + self.below(99)
            );
            for _ in 0..1 + self.below(2) {
                s.push(self.letter());
            }
            s.push_str(&format!("{:04}", self.below(10_000)));
            s
        }
        /// One OCR-like substitution.
        fn misread(&mut self, s: &str) -> String {
            let mut c: Vec<char> = s.chars().collect();
            let i = self.below(c.len());
            c[i] = if c[i].is_ascii_digit() {
                char::from(b'0' + self.below(10) as u8)
            } else {
                self.letter()
            };
            c.into_iter().collect()
        }
    }

    fn percentile(v: &mut [Duration], p: f64) -> Duration {
        v.sort();
        v[((v.len() as f64 - 1.0) * p).round() as usize]
    }

    #[allow(clippy::print_stderr)]
    async fn run(db: &TestDb, name: &str) {
        let n: usize = std::env::var("SIGHTLINE_PLATES_BENCH_N")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1_000_000);
        let runs = seed_runs(db, 4).await;
        let mut rng = Rng(0x5eed_1234_abcd_ef01);
        let mut sample = Vec::new();
        let started = Instant::now();
        let batch = 5000;
        let mut seq = 0u64;
        while (seq as usize) < n {
            let events: Vec<Event> = (0..batch.min(n - seq as usize))
                .map(|_| {
                    let text = rng.plate();
                    // A third of the reads carry a second candidate (a misread).
                    let other = (rng.below(3) == 0).then(|| rng.misread(&text));
                    let mut e = plate_event(
                        &runs[rng.below(runs.len())],
                        seq,
                        &text,
                        other
                            .as_slice()
                            .iter()
                            .map(String::as_str)
                            .collect::<Vec<_>>()
                            .as_slice(),
                    );
                    e.id = EventId::generate();
                    e.wall_ms = T0 + (seq as i64) * 2_600; // a month over a million events
                    if rng.below(n / 200 + 1) == 0 && sample.len() < 200 {
                        sample.push(text);
                    }
                    seq += 1;
                    e
                })
                .collect();
            db.store.insert_events(&events).await.unwrap();
        }
        let insert = started.elapsed();
        let mut kinds: Vec<(&str, Vec<Query>)> = vec![
            (
                "exact",
                sample.iter().take(50).map(|t| (t.clone(), None)).collect(),
            ),
            (
                "prefix",
                sample
                    .iter()
                    .take(50)
                    .map(|t| (format!("{}*", &t[..4]), None))
                    .collect(),
            ),
            (
                "wildcard",
                sample
                    .iter()
                    .take(50)
                    .map(|t| (format!("*{}*", &t[4..8]), None))
                    .collect(),
            ),
            (
                "fuzzy1",
                sample
                    .iter()
                    .take(50)
                    .map(|t| (rng.misread(t), Some(1)))
                    .collect(),
            ),
        ];
        eprintln!(
            "[{name}] {n} plate events inserted in {:.1} s",
            insert.as_secs_f64()
        );
        for (kind, queries) in &mut kinds {
            let mut times = Vec::new();
            let mut hits = 0;
            for (q, d) in queries.iter() {
                let s = PlateSearch::new(parse_query(q, *d).unwrap());
                let t = Instant::now();
                hits += db.store.search_plates(&s).await.unwrap().items.len();
                times.push(t.elapsed());
            }
            let p50 = percentile(&mut times, 0.5);
            let p95 = percentile(&mut times, 0.95);
            eprintln!(
                "[{name}] {kind:<8} {} queries: p50 {:.1} ms, p95 {:.1} ms, {:.1} hits/query",
                times.len(),
                p50.as_secs_f64() * 1e3,
                p95.as_secs_f64() * 1e3,
                hits as f64 / times.len() as f64
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "benchmark: a million events, minutes"]
    async fn sqlite() {
        let db = crate::common::sqlite().await;
        run(&db, "sqlite").await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "benchmark: a million events, minutes"]
    async fn postgres() {
        let Some(db) = crate::common::postgres().await else {
            return;
        };
        run(&db, "postgres").await;
    }
}
