//! The worker registry: each engine process heart-beats a row so operators (and `/ready`)
//! can see which workers are alive, their capacity and how many runs they hold. Ownership of
//! runs does not depend on this table — leases on the run rows do — so a stale worker row is
//! harmless.

use crate::codec::{count_u32, ts};
use crate::error::{CorruptRow, Result};
use crate::runs::active_states;
use crate::store::{Store, on_pool};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// What a worker says about itself.
#[derive(Debug, Clone)]
pub struct WorkerInfo {
    /// Unique per process (e.g. `host-<uuid>`).
    pub id: String,
    pub host: String,
    /// Its `max_runs`.
    pub capacity: u32,
}

/// A registered worker.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkerRecord {
    pub id: String,
    pub host: String,
    pub capacity: u32,
    pub started_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
    /// Active runs it owns now.
    pub active_runs: u32,
}

#[derive(sqlx::FromRow)]
struct WorkerRow {
    id: String,
    host: String,
    capacity: i64,
    started_at: i64,
    heartbeat_at: i64,
    active_runs: i64,
}

impl WorkerRow {
    fn decode(self) -> Result<WorkerRecord, CorruptRow> {
        const T: &str = "workers";
        let k = self.id.as_str();
        Ok(WorkerRecord {
            host: self.host,
            capacity: count_u32(self.capacity, T, k, "capacity")?,
            started_at: ts(self.started_at, T, k, "started_at")?,
            heartbeat_at: ts(self.heartbeat_at, T, k, "heartbeat_at")?,
            active_runs: count_u32(self.active_runs, T, k, "active_runs")?,
            id: self.id,
        })
    }
}

impl Store {
    /// Registers the worker or refreshes its heartbeat (and host/capacity).
    pub async fn heartbeat_worker(&self, w: &WorkerInfo) -> Result<()> {
        let now = self.now_ms();
        on_pool!(self, p => sqlx::query(
            "INSERT INTO workers (id, host, capacity, started_at, heartbeat_at) \
             VALUES ($1, $2, $3, $4, $4) \
             ON CONFLICT (id) DO UPDATE SET host = excluded.host, \
             capacity = excluded.capacity, heartbeat_at = excluded.heartbeat_at")
            .bind(&w.id)
            .bind(&w.host)
            .bind(i64::from(w.capacity))
            .bind(now)
            .execute(p)
            .await?
            .rows_affected());
        Ok(())
    }

    /// Workers with their active run counts, most recent heartbeat first. Corrupt rows are
    /// skipped and logged.
    pub async fn list_workers(&self) -> Result<Vec<WorkerRecord>> {
        let rows: Vec<WorkerRow> = on_pool!(self, p => sqlx::query_as(concat!(
            "SELECT w.id, w.host, w.capacity, w.started_at, w.heartbeat_at, \
             (SELECT COUNT(*) FROM runs r WHERE r.owner = w.id AND r.state IN ",
            active_states!(), ") AS active_runs \
             FROM workers w ORDER BY w.heartbeat_at DESC, w.id"))
            .fetch_all(p)
            .await?);
        Ok(rows
            .into_iter()
            .filter_map(|r| match r.decode() {
                Ok(w) => Some(w),
                Err(c) => {
                    tracing::error!(table = c.table, key = %c.key, detail = %c.detail, "corrupt worker row skipped");
                    None
                }
            })
            .collect())
    }

    /// Removes the worker's row (graceful shutdown). Returns whether it existed.
    pub async fn remove_worker(&self, id: &str) -> Result<bool> {
        let n = on_pool!(self, p => sqlx::query("DELETE FROM workers WHERE id = $1")
            .bind(id)
            .execute(p)
            .await?
            .rows_affected());
        Ok(n > 0)
    }

    /// Removes workers whose last heartbeat is older than `before` (crashed processes).
    pub async fn remove_stale_workers(&self, before: DateTime<Utc>) -> Result<u64> {
        let n = on_pool!(self, p => sqlx::query("DELETE FROM workers WHERE heartbeat_at < $1")
            .bind(before.timestamp_millis())
            .execute(p)
            .await?
            .rows_affected());
        Ok(n)
    }
}

/// A run currently held by a worker.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LeaseView {
    pub run_id: String,
    pub owner: String,
    pub state: String,
    /// Milliseconds since the epoch.
    pub lease_expires_at: Option<i64>,
}

/// What the dashboard's system page shows of the database.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SystemOverview {
    pub workers: Vec<WorkerRecord>,
    pub leases: Vec<LeaseView>,
    /// Number of runs in each state.
    pub runs_by_state: std::collections::BTreeMap<String, u64>,
    /// Backlog of every notification sink that has rows.
    pub outbox: std::collections::BTreeMap<String, crate::OutboxDepth>,
}

impl Store {
    /// Workers, leases, runs by state and outbox depth per sink, in a few queries.
    pub async fn system_overview(&self) -> Result<SystemOverview> {
        let workers = self.list_workers().await?;
        let leases: Vec<(String, String, String, Option<i64>)> = on_pool!(self, p => sqlx::query_as(
            "SELECT id, owner, state, lease_expires_at FROM runs WHERE owner IS NOT NULL \
             ORDER BY owner, id LIMIT 1000")
            .fetch_all(p)
            .await?);
        let by_state: Vec<(String, i64)> = on_pool!(self, p => sqlx::query_as(
            "SELECT state, COUNT(*) FROM runs GROUP BY state")
            .fetch_all(p)
            .await?);
        let outbox: Vec<(String, String, i64)> = on_pool!(self, p => sqlx::query_as(
            "SELECT sink, state, COUNT(*) FROM outbox WHERE state IN ('pending', 'dead') \
             GROUP BY sink, state")
            .fetch_all(p)
            .await?);
        let mut ob: std::collections::BTreeMap<String, crate::OutboxDepth> = Default::default();
        for (sink, state, n) in outbox {
            let d = ob.entry(sink).or_default();
            let n = u64::try_from(n).unwrap_or(0);
            if state == "pending" {
                d.pending = n;
            } else {
                d.dead = n;
            }
        }
        Ok(SystemOverview {
            workers,
            leases: leases
                .into_iter()
                .map(|(run_id, owner, state, lease_expires_at)| LeaseView {
                    run_id,
                    owner,
                    state,
                    lease_expires_at,
                })
                .collect(),
            runs_by_state: by_state
                .into_iter()
                .map(|(s, n)| (s, u64::try_from(n).unwrap_or(0)))
                .collect(),
            outbox: ob,
        })
    }
}
