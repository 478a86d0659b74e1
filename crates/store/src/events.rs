//! Events: written in batches (one multi-row statement per few hundred events, one
//! transaction per call, so the pipeline never pays a round trip per event), optionally with
//! their outbox rows in the same transaction (an event is stored if and only if its
//! notifications are queued), queried with filters and cursor pagination, and deleted by
//! age for retention.

use crate::codec::{DbJson, corrupt, to_ms};
use crate::error::{CorruptRow, Result, StoreError};
use crate::page::{Page, SortOrder, clamp_limit, paginate};
use crate::store::{Backend, Store, Tx, on_pool, on_tx};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sightline_core::event::Level;
use sightline_core::{
    BBox, Direction, Event, EventId, EventKind, EventMedia, PlateRead, Pts, RuleEvent, RunId,
    TrackId,
};
use sqlx::types::Json;
use std::collections::HashSet;
use uuid::Uuid;

/// Events per INSERT statement (14 parameters each: well under SQLite's 32 766 and
/// PostgreSQL's 65 535 bind limits).
const EVENT_CHUNK: usize = 500;
/// Outbox rows per INSERT statement (5 parameters each).
const OUTBOX_CHUNK: usize = 1000;
/// Rows deleted per retention statement, so no single statement holds the write lock long.
const RETENTION_CHUNK: i64 = 5000;

/// Filters of [`Store::query_events`]. All optional; `since` is inclusive, `until`
/// exclusive (wall-clock time).
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    pub run: Option<RunId>,
    pub kind: Option<EventKind>,
    pub class: Option<String>,
    pub zone: Option<String>,
    pub line: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// `next_cursor` of the previous page (an event id).
    pub cursor: Option<String>,
    /// Page size (0 = default, clamped to [`crate::MAX_LIMIT`]).
    pub limit: u32,
    /// Ids are UUIDv7, so id order is creation order.
    pub order: SortOrder,
}

/// The rule fields that have no column of their own.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Extra {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    level: Option<Level>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dwell_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    media: Option<EventMedia>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    plate: Option<PlateRead>,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    attributes: std::collections::BTreeMap<String, String>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct EventRow {
    pub(crate) id: Uuid,
    run_id: String,
    #[sqlx(rename = "type")]
    kind: String,
    rule: String,
    class: Option<String>,
    track_id: Option<i64>,
    zone: Option<String>,
    line: Option<String>,
    direction: Option<String>,
    pts_ns: i64,
    wall_ms: i64,
    confidence: Option<f64>,
    bbox: Option<DbJson>,
    payload: DbJson,
}

const T: &str = "events";

impl EventRow {
    pub(crate) fn decode(self) -> Result<Event, CorruptRow> {
        let k = self.id.to_string();
        let k = k.as_str();
        let kind = EventKind::parse(&self.kind)
            .ok_or_else(|| corrupt(T, k, format!("unknown event type {:?}", self.kind)))?;
        let direction = match self.direction.as_deref() {
            None => None,
            Some("in") => Some(Direction::In),
            Some("out") => Some(Direction::Out),
            Some(other) => return Err(corrupt(T, k, format!("unknown direction {other:?}"))),
        };
        let bbox = match self.bbox {
            None => None,
            Some(j) => Some(
                serde_json::from_value::<BBox>(j.value(T, k, "bbox")?)
                    .map_err(|e| corrupt(T, k, format!("column bbox: {e}")))?,
            ),
        };
        let extra: Extra = serde_json::from_value(self.payload.value(T, k, "payload")?)
            .map_err(|e| corrupt(T, k, format!("column payload: {e}")))?;
        let track_id = match self.track_id {
            None => None,
            Some(t) => {
                Some(TrackId(u64::try_from(t).map_err(|_| {
                    corrupt(T, k, format!("negative track id {t}"))
                })?))
            }
        };
        Ok(Event {
            id: EventId(self.id),
            run_id: RunId::parse(&self.run_id).map_err(|e| corrupt(T, k, e))?,
            wall_ms: self.wall_ms,
            body: RuleEvent {
                kind,
                rule: self.rule,
                pts: Pts::from_nanos(self.pts_ns),
                track_id,
                class: self.class,
                confidence: self.confidence.map(|c| c as f32),
                bbox,
                zone: self.zone,
                line: self.line,
                direction,
                count: extra.count,
                level: extra.level,
                dwell_s: extra.dwell_s,
                plate: extra.plate,
                attributes: extra.attributes,
            },
            media: extra.media.filter(|m| !m.is_empty()),
        })
    }
}

/// An event flattened into bindable column values.
struct EventCols<'a> {
    id: Uuid,
    run_id: &'a str,
    kind: &'static str,
    e: &'a RuleEvent,
    track_id: Option<i64>,
    bbox: Option<Value>,
    extra: Value,
    wall_ms: i64,
}

fn flatten(ev: &Event) -> Result<EventCols<'_>> {
    let e = &ev.body;
    let track_id = e
        .track_id
        .map(|t| i64::try_from(t.0))
        .transpose()
        .map_err(|_| StoreError::invalid("track_id", "exceeds the stored range"))?;
    let bbox = e
        .bbox
        .map(serde_json::to_value)
        .transpose()
        .map_err(|err| StoreError::invalid("bbox", err.to_string()))?;
    let extra = serde_json::to_value(Extra {
        count: e.count,
        level: e.level,
        dwell_s: e.dwell_s.filter(|d| d.is_finite()),
        media: ev.media.clone().filter(|m| !m.is_empty()),
        plate: e.plate.clone(),
        attributes: e.attributes.clone(),
    })
    .map_err(|err| StoreError::invalid("event", err.to_string()))?;
    Ok(EventCols {
        id: ev.id.0,
        run_id: ev.run_id.as_str(),
        kind: e.kind.as_str(),
        e,
        track_id,
        bbox,
        extra,
        wall_ms: ev.wall_ms,
    })
}

/// Inserts `events` (and one outbox row per event and sink chosen by `route`) inside `tx`.
/// Returns the number of events newly inserted. An id already stored is skipped, with its
/// outbox rows: a batch retried after an ambiguous failure, or the events of a file run
/// replayed after a takeover (derived ids), are neither stored nor notified twice.
async fn insert_batch(
    tx: &mut Tx,
    now: i64,
    events: &[Event],
    route: &(dyn Fn(&Event) -> Vec<String> + Send + Sync),
) -> Result<u64> {
    let mut inserted: HashSet<Uuid> = HashSet::with_capacity(events.len());
    for chunk in events.chunks(EVENT_CHUNK) {
        let cols = chunk.iter().map(flatten).collect::<Result<Vec<_>>>()?;
        let new_ids: Vec<Uuid> = on_tx!(&mut *tx, c => {
            let mut qb = sqlx::QueryBuilder::new(
                "INSERT INTO events (id, run_id, type, rule, class, track_id, zone, line, \
                 direction, pts_ns, wall_ms, confidence, bbox, payload) ");
            qb.push_values(cols.iter(), |mut b, ev| {
                b.push_bind(ev.id)
                    .push_bind(ev.run_id)
                    .push_bind(ev.kind)
                    .push_bind(ev.e.rule.as_str())
                    .push_bind(ev.e.class.as_deref())
                    .push_bind(ev.track_id)
                    .push_bind(ev.e.zone.as_deref())
                    .push_bind(ev.e.line.as_deref())
                    .push_bind(ev.e.direction.map(|d| d.as_str()))
                    .push_bind(ev.e.pts.nanos())
                    .push_bind(ev.wall_ms)
                    .push_bind(ev.e.confidence.filter(|c| c.is_finite()).map(f64::from))
                    .push_bind(ev.bbox.as_ref().map(Json))
                    .push_bind(Json(&ev.extra));
            });
            qb.push(" ON CONFLICT (id) DO NOTHING RETURNING id");
            qb.build_query_scalar::<Uuid>().fetch_all(&mut *c).await?
        });
        inserted.extend(new_ids);
    }
    crate::plates::insert_plates(tx, events.iter().filter(|e| inserted.contains(&e.id.0))).await?;
    let mut rows: Vec<(Uuid, String, Value)> = Vec::new();
    for ev in events {
        if !inserted.contains(&ev.id.0) {
            continue;
        }
        let sinks = route(ev);
        if sinks.is_empty() {
            continue;
        }
        let payload =
            serde_json::to_value(ev).map_err(|e| StoreError::invalid("event", e.to_string()))?;
        for sink in sinks {
            rows.push((ev.id.0, sink, payload.clone()));
        }
    }
    for chunk in rows.chunks(OUTBOX_CHUNK) {
        on_tx!(&mut *tx, c => {
            let mut qb = sqlx::QueryBuilder::new(
                "INSERT INTO outbox (event_id, sink, payload, next_attempt_at, created_at) ");
            qb.push_values(chunk.iter(), |mut b, (id, sink, payload)| {
                b.push_bind(*id)
                    .push_bind(sink.as_str())
                    .push_bind(Json(payload))
                    .push_bind(now)
                    .push_bind(now);
            });
            qb.push(" ON CONFLICT (event_id, sink) DO NOTHING");
            qb.build().execute(&mut *c).await?.rows_affected()
        });
    }
    if tx.dialect() == Backend::Postgres && !events.is_empty() {
        let mut runs: Vec<&str> = events.iter().map(|e| e.run_id.as_str()).collect();
        runs.sort_unstable();
        runs.dedup();
        let mut payload = runs.join(",");
        if payload.len() > 7000 {
            payload.clear(); // over NOTIFY's payload limit: "some runs"
        }
        on_tx!(&mut *tx, c => sqlx::query("SELECT pg_notify('sightline_events', $1)")
            .bind(payload)
            .execute(&mut *c)
            .await?
            .rows_affected());
    }
    Ok(inserted.len() as u64)
}

impl Store {
    /// Inserts a batch of events in one transaction. Returns how many were new.
    pub async fn insert_events(&self, events: &[Event]) -> Result<u64> {
        self.insert_events_routed(events, |_| Vec::new()).await
    }

    /// Inserts a batch of events and, in the same transaction, one outbox row per event for
    /// each of `sinks`.
    pub async fn insert_events_with_outbox(&self, events: &[Event], sinks: &[&str]) -> Result<u64> {
        let sinks: Vec<String> = sinks.iter().map(|s| (*s).to_owned()).collect();
        self.insert_events_routed(events, move |_| sinks.clone())
            .await
    }

    /// Inserts a batch of events and, in the same transaction, an outbox row for each sink
    /// `route` names for that event (per-customer routing by type and class).
    pub async fn insert_events_routed(
        &self,
        events: &[Event],
        route: impl Fn(&Event) -> Vec<String> + Send + Sync,
    ) -> Result<u64> {
        if events.is_empty() {
            return Ok(0);
        }
        let now = self.now_ms();
        let mut tx = self.begin_write().await?;
        let n = insert_batch(&mut tx, now, events, &route).await?;
        tx.commit().await?;
        tracing::debug!(batch = events.len(), inserted = n, "events stored");
        Ok(n)
    }

    /// Events matching `q`, in id (creation) order, one page at a time.
    pub async fn query_events(&self, q: &EventQuery) -> Result<Page<Event>> {
        let limit = clamp_limit(q.limit);
        let cursor = q
            .cursor
            .as_deref()
            .map(|c| {
                Uuid::parse_str(c).map_err(|_| StoreError::invalid("cursor", "not an event cursor"))
            })
            .transpose()?;
        let rows: Vec<EventRow> = on_pool!(self, p => {
            let mut qb = sqlx::QueryBuilder::new(
                "SELECT id, run_id, type, rule, class, track_id, zone, line, direction, pts_ns, \
                 wall_ms, confidence, bbox, payload FROM events WHERE 1 = 1");
            if let Some(r) = &q.run {
                qb.push(" AND run_id = ").push_bind(r.as_str().to_owned());
            }
            if let Some(k) = q.kind {
                qb.push(" AND type = ").push_bind(k.as_str());
            }
            if let Some(c) = &q.class {
                qb.push(" AND class = ").push_bind(c.clone());
            }
            if let Some(z) = &q.zone {
                qb.push(" AND zone = ").push_bind(z.clone());
            }
            if let Some(l) = &q.line {
                qb.push(" AND line = ").push_bind(l.clone());
            }
            if let Some(s) = q.since {
                qb.push(" AND wall_ms >= ").push_bind(to_ms(s));
            }
            if let Some(u) = q.until {
                qb.push(" AND wall_ms < ").push_bind(to_ms(u));
            }
            match (q.order, cursor) {
                (SortOrder::Asc, Some(c)) => { qb.push(" AND id > ").push_bind(c); }
                (SortOrder::Desc, Some(c)) => { qb.push(" AND id < ").push_bind(c); }
                (_, None) => {}
            }
            qb.push(match q.order {
                SortOrder::Asc => " ORDER BY id ASC LIMIT ",
                SortOrder::Desc => " ORDER BY id DESC LIMIT ",
            });
            qb.push_bind(i64::from(limit) + 1);
            qb.build_query_as::<EventRow>().fetch_all(p).await?
        });
        Ok(paginate(
            rows,
            limit,
            |r| r.id.to_string(),
            EventRow::decode,
        ))
    }

    /// One event by id.
    pub async fn get_event(&self, id: EventId) -> Result<Event> {
        let row: Option<EventRow> = on_pool!(self, p => sqlx::query_as(
            "SELECT id, run_id, type, rule, class, track_id, zone, line, direction, pts_ns, \
             wall_ms, confidence, bbox, payload FROM events WHERE id = $1")
            .bind(id.0)
            .fetch_optional(p)
            .await?);
        match row {
            Some(r) => Ok(r.decode()?),
            None => Err(StoreError::not_found("event", id.to_string())),
        }
    }

    /// Deletes events (and their outbox rows) older than `before`, in chunks. Returns how
    /// many events were deleted.
    pub async fn delete_events_older_than(&self, before: DateTime<Utc>) -> Result<u64> {
        let mut total = 0;
        loop {
            let n = self
                .delete_events_batch(to_ms(before), &crate::media::RunScope::All, RETENTION_CHUNK)
                .await?;
            total += n;
            if n < RETENTION_CHUNK as u64 {
                break;
            }
        }
        if total > 0 {
            tracing::info!(deleted = total, "old events deleted");
        }
        Ok(total)
    }

    /// Deletes at most `limit` events older than `before_ms` of the runs in `scope` (one
    /// retention batch). Returns how many were deleted.
    pub async fn delete_events_batch(
        &self,
        before_ms: i64,
        scope: &crate::media::RunScope,
        limit: i64,
    ) -> Result<u64> {
        Ok(on_pool!(self, p => {
            let mut qb = sqlx::QueryBuilder::new(
                "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE wall_ms < ");
            qb.push_bind(before_ms);
            crate::media::push_scope(&mut qb, scope);
            qb.push(" LIMIT ").push_bind(limit).push(")");
            qb.build().execute(p).await?.rows_affected()
        }))
    }
}
