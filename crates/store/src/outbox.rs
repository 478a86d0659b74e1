//! The transactional outbox. Outbox rows are written with their events (see
//! [`Store::insert_events_with_outbox`]); delivery tasks read the due rows of their sink in
//! order, deliver, and mark them delivered, or failed with the next attempt time, or dead
//! after too many attempts. Delivery is at-least-once; the event id is the idempotency key.
//!
//! Several workers may run a delivery task for the same sink: [`Store::claim_due`] hides the
//! rows it hands out for a visibility timeout (with `FOR UPDATE SKIP LOCKED` on PostgreSQL)
//! so concurrent tasks do not deliver the same rows at the same time; [`Store::fetch_due`] is
//! the plain read for a single task.

use crate::codec::{DbJson, corrupt, count_u32, dur_ms, to_ms, ts, ts_opt};
use crate::error::{CorruptRow, Result, StoreError};
use crate::store::{Backend, Store, on_pool, on_tx};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sightline_core::EventId;
use std::time::Duration;
use uuid::Uuid;

/// Delivery state of an outbox row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxState {
    Pending,
    Delivered,
    /// Gave up after too many attempts (dead letter); visible through the API/CLI.
    Dead,
}

impl OutboxState {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxState::Pending => "pending",
            OutboxState::Delivered => "delivered",
            OutboxState::Dead => "dead",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(OutboxState::Pending),
            "delivered" => Some(OutboxState::Delivered),
            "dead" => Some(OutboxState::Dead),
            _ => None,
        }
    }
}

/// One notification to deliver: an event for a sink.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutboxRow {
    pub id: i64,
    pub event_id: EventId,
    pub sink: String,
    /// The event as JSON (`sightline_core::Event`).
    pub payload: Value,
    pub state: OutboxState,
    /// Failed delivery attempts so far.
    pub attempts: u32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// Backlog of a sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct OutboxDepth {
    /// Not yet delivered (due or waiting for a retry).
    pub pending: u64,
    /// Dead letters.
    pub dead: u64,
}

#[derive(sqlx::FromRow)]
struct OutboxDbRow {
    id: i64,
    event_id: Uuid,
    sink: String,
    payload: DbJson,
    state: String,
    attempts: i64,
    next_attempt_at: i64,
    last_error: Option<String>,
    created_at: i64,
    delivered_at: Option<i64>,
}

macro_rules! outbox_cols {
    () => {
        "id, event_id, sink, payload, state, attempts, next_attempt_at, last_error, created_at, \
         delivered_at"
    };
}

const T: &str = "outbox";

impl OutboxDbRow {
    fn decode(self) -> Result<OutboxRow, CorruptRow> {
        let k = self.id.to_string();
        let k = k.as_str();
        Ok(OutboxRow {
            id: self.id,
            event_id: EventId(self.event_id),
            sink: self.sink,
            payload: self.payload.value(T, k, "payload")?,
            state: OutboxState::parse(&self.state)
                .ok_or_else(|| corrupt(T, k, format!("unknown state {:?}", self.state)))?,
            attempts: count_u32(self.attempts, T, k, "attempts")?,
            next_attempt_at: ts(self.next_attempt_at, T, k, "next_attempt_at")?,
            last_error: self.last_error,
            created_at: ts(self.created_at, T, k, "created_at")?,
            delivered_at: ts_opt(self.delivered_at, T, k, "delivered_at")?,
        })
    }
}

impl Store {
    /// Decodes rows; a row that cannot be decoded is made a dead letter (with the reason) so
    /// it never blocks the sink, and is not returned.
    async fn decode_outbox(&self, rows: Vec<OutboxDbRow>) -> Result<Vec<OutboxRow>> {
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let id = r.id;
            match r.decode() {
                Ok(row) => out.push(row),
                Err(c) => {
                    tracing::error!(outbox_id = id, detail = %c.detail, "corrupt outbox row made dead");
                    self.mark_failed(id, self.clock_now(), &c.to_string(), true)
                        .await?;
                }
            }
        }
        Ok(out)
    }

    fn clock_now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.now_ms()).unwrap_or_default()
    }

    /// Up to `limit` pending rows of `sink` due at `now`, oldest first.
    pub async fn fetch_due(
        &self,
        sink: &str,
        limit: u32,
        now: DateTime<Utc>,
    ) -> Result<Vec<OutboxRow>> {
        let rows: Vec<OutboxDbRow> = on_pool!(self, p => sqlx::query_as(concat!(
            "SELECT ", outbox_cols!(), " FROM outbox \
             WHERE sink = $1 AND state = 'pending' AND next_attempt_at <= $2 \
             ORDER BY id LIMIT $3"))
            .bind(sink)
            .bind(to_ms(now))
            .bind(i64::from(limit.max(1)))
            .fetch_all(p)
            .await?);
        self.decode_outbox(rows).await
    }

    /// Like [`Store::fetch_due`], but atomically postpones the returned rows by `visibility`
    /// so that another delivery task does not pick them up meanwhile. Rows neither marked
    /// delivered nor failed within `visibility` become due again (at-least-once).
    pub async fn claim_due(
        &self,
        sink: &str,
        limit: u32,
        now: DateTime<Utc>,
        visibility: Duration,
    ) -> Result<Vec<OutboxRow>> {
        let now_ms = to_ms(now);
        let hidden_until = now_ms.saturating_add(dur_ms(visibility));
        let mut tx = self.begin_write().await?;
        let sql = match tx.dialect() {
            Backend::Sqlite => concat!(
                "SELECT ",
                outbox_cols!(),
                " FROM outbox \
                 WHERE sink = $1 AND state = 'pending' AND next_attempt_at <= $2 \
                 ORDER BY id LIMIT $3"
            ),
            Backend::Postgres => concat!(
                "SELECT ",
                outbox_cols!(),
                " FROM outbox \
                 WHERE sink = $1 AND state = 'pending' AND next_attempt_at <= $2 \
                 ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED"
            ),
        };
        let rows: Vec<OutboxDbRow> = on_tx!(&mut tx, c => sqlx::query_as(sql)
            .bind(sink)
            .bind(now_ms)
            .bind(i64::from(limit.max(1)))
            .fetch_all(&mut *c)
            .await?);
        if !rows.is_empty() {
            on_tx!(&mut tx, c => {
                let mut qb = sqlx::QueryBuilder::new("UPDATE outbox SET next_attempt_at = ");
                qb.push_bind(hidden_until).push(" WHERE id IN (");
                let mut sep = qb.separated(", ");
                for r in &rows {
                    sep.push_bind(r.id);
                }
                qb.push(")");
                qb.build().execute(&mut *c).await?.rows_affected()
            });
        }
        tx.commit().await?;
        self.decode_outbox(rows).await
    }

    /// Marks rows delivered. Returns how many changed.
    pub async fn mark_delivered(&self, ids: &[i64]) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let now = self.now_ms();
        let mut total = 0;
        for chunk in ids.chunks(1000) {
            total += on_pool!(self, p => {
                let mut qb = sqlx::QueryBuilder::new(
                    "UPDATE outbox SET state = 'delivered', delivered_at = ");
                qb.push_bind(now).push(" WHERE state = 'pending' AND id IN (");
                let mut sep = qb.separated(", ");
                for id in chunk {
                    sep.push_bind(*id);
                }
                qb.push(")");
                qb.build().execute(p).await?.rows_affected()
            });
        }
        Ok(total)
    }

    /// Records a failed attempt: the row is retried at `next_attempt_at`, or becomes a dead
    /// letter when `dead`.
    pub async fn mark_failed(
        &self,
        id: i64,
        next_attempt_at: DateTime<Utc>,
        error: &str,
        dead: bool,
    ) -> Result<()> {
        let state = if dead {
            OutboxState::Dead
        } else {
            OutboxState::Pending
        };
        let n = on_pool!(self, p => sqlx::query(
            "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $2, last_error = $3, \
             state = $4 WHERE id = $1 AND state = 'pending'")
            .bind(id)
            .bind(to_ms(next_attempt_at))
            .bind(error)
            .bind(state.as_str())
            .execute(p)
            .await?
            .rows_affected());
        if n == 0 {
            return Err(StoreError::not_found("pending outbox row", id.to_string()));
        }
        if dead {
            tracing::warn!(outbox_id = id, error, "notification dead-lettered");
        }
        Ok(())
    }

    /// Pending and dead rows of `sink`.
    pub async fn outbox_depth(&self, sink: &str) -> Result<OutboxDepth> {
        let rows: Vec<(String, i64)> = on_pool!(self, p => sqlx::query_as(
            "SELECT state, COUNT(*) FROM outbox WHERE sink = $1 AND state IN ('pending', 'dead') \
             GROUP BY state")
            .bind(sink)
            .fetch_all(p)
            .await?);
        let mut d = OutboxDepth::default();
        for (state, n) in rows {
            let n = u64::try_from(n).unwrap_or(0);
            match state.as_str() {
                "pending" => d.pending = n,
                "dead" => d.dead = n,
                _ => {}
            }
        }
        Ok(d)
    }

    /// Dead letters of `sink` (all sinks when `None`), oldest first.
    pub async fn list_dead_letters(
        &self,
        sink: Option<&str>,
        limit: u32,
    ) -> Result<Vec<OutboxRow>> {
        let rows: Vec<OutboxDbRow> = on_pool!(self, p => sqlx::query_as(concat!(
            "SELECT ", outbox_cols!(), " FROM outbox \
             WHERE state = 'dead' AND ($1 IS NULL OR sink = $1) ORDER BY id LIMIT $2"))
            .bind(sink)
            .bind(i64::from(crate::page::clamp_limit(limit)))
            .fetch_all(p)
            .await?);
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            match r.decode() {
                Ok(row) => out.push(row),
                Err(c) => {
                    tracing::error!(key = %c.key, detail = %c.detail, "corrupt dead letter skipped")
                }
            }
        }
        Ok(out)
    }

    /// Makes dead letters pending again (attempts reset, due now). Returns how many.
    pub async fn requeue_dead_letters(&self, ids: &[i64]) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let now = self.now_ms();
        let n = on_pool!(self, p => {
            let mut qb = sqlx::QueryBuilder::new(
                "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = ");
            qb.push_bind(now).push(" WHERE state = 'dead' AND id IN (");
            let mut sep = qb.separated(", ");
            for id in ids {
                sep.push_bind(*id);
            }
            qb.push(")");
            qb.build().execute(p).await?.rows_affected()
        });
        Ok(n)
    }

    /// Deletes delivered rows delivered before `before` (retention). Returns how many.
    pub async fn delete_delivered_before(&self, before: DateTime<Utc>) -> Result<u64> {
        let n = on_pool!(self, p => sqlx::query(
            "DELETE FROM outbox WHERE state = 'delivered' AND delivered_at < $1")
            .bind(to_ms(before))
            .execute(p)
            .await?
            .rows_affected());
        Ok(n)
    }
}
