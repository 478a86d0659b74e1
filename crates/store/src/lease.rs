//! Ownership of runs: claiming with a lease, renewing it, moving an owned run through its
//! lifecycle, and releasing it.
//!
//! Exactly one worker owns an active run at a time. Every state change is a compare-and-set
//! on `(state, owner)` inside a write transaction that also appends the `run_transitions`
//! row, so a worker whose lease was taken over can no longer write anything: its next
//! transition fails with [`StoreError::LeaseLost`] and its next renewal no longer lists the
//! run. Claiming uses `SELECT … FOR UPDATE SKIP LOCKED` on PostgreSQL (concurrent claimers
//! skip each other's rows instead of waiting) and one `BEGIN IMMEDIATE` writer transaction on
//! SQLite. Legality of every transition is checked with
//! [`RunState::can_transition_to`], the single place that defines the lifecycle.

use crate::codec::dur_ms;
use crate::error::{Result, StoreError};
use crate::runs::{
    RunRecord, RunRow, active_states, insert_transition, parse_state, reasons, run_cols,
};
use crate::store::{Backend, Store, Tx, on_pool, on_tx};
use sightline_core::{RunId, RunState};
use std::time::Duration;

/// Why a transition happens: a stable code and an optional human-readable message. For
/// `failed` and `retrying` (and whenever a message is given) it also becomes the run's
/// `last_error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason {
    pub code: String,
    pub message: Option<String>,
}

impl Reason {
    pub fn new(code: impl Into<String>) -> Self {
        Reason {
            code: code.into(),
            message: None,
        }
    }
    pub fn with_message(code: impl Into<String>, message: impl Into<String>) -> Self {
        Reason {
            code: code.into(),
            message: Some(message.into()),
        }
    }
}

impl From<&str> for Reason {
    fn from(code: &str) -> Self {
        Reason::new(code)
    }
}

/// One compare-and-set state change.
pub(crate) struct Move<'a> {
    pub run: &'a str,
    pub from: RunState,
    /// The owner the row must have (`None`: unowned).
    pub expected_owner: Option<&'a str>,
    pub to: RunState,
    pub code: &'a str,
    pub message: Option<&'a str>,
    /// Recorded in the transition row.
    pub worker: Option<&'a str>,
    /// Owner after the move; `None` keeps the current one (cleared anyway for `pending` and
    /// terminal states).
    pub new_owner: Option<&'a str>,
    /// Lease expiry after the move; `None` keeps the current one.
    pub lease_until: Option<i64>,
}

/// Applies `m` if the row is still in `m.from` with `m.expected_owner`, writing the
/// transition row. Returns the updated row, or `None` when the compare-and-set failed.
pub(crate) async fn apply_move(tx: &mut Tx, now: i64, m: &Move<'_>) -> Result<Option<RunRow>> {
    if !m.from.can_transition_to(m.to) {
        return Err(StoreError::IllegalTransition {
            run: RunId::parse(m.run).map_err(|e| StoreError::invalid("run", e))?,
            from: m.from,
            to: m.to,
        });
    }
    let clear_owner = m.to == RunState::Pending || m.to.is_terminal();
    let error = matches!(m.to, RunState::Failed | RunState::Retrying) || m.message.is_some();
    let row = on_tx!(&mut *tx, c => sqlx::query_as::<_, RunRow>(concat!(
        "UPDATE runs SET state = $1, updated_at = $2, \
         owner = CASE WHEN $3 THEN NULL ELSE COALESCE($4, owner) END, \
         lease_expires_at = CASE WHEN $3 THEN NULL ELSE COALESCE($5, lease_expires_at) END, \
         attempts = attempts + $6, \
         started_at = COALESCE(started_at, $7), \
         ended_at = COALESCE($8, ended_at), \
         last_error_code = COALESCE($9, last_error_code), \
         last_error_message = COALESCE($10, last_error_message) \
         WHERE id = $11 AND state = $12 AND owner IS NOT DISTINCT FROM $13 \
         RETURNING ", run_cols!()))
        .bind(m.to.as_str())
        .bind(now)
        .bind(clear_owner)
        .bind(m.new_owner)
        .bind(m.lease_until)
        .bind(i64::from(m.to == RunState::Starting))
        .bind((m.to == RunState::Running).then_some(now))
        .bind(m.to.is_terminal().then_some(now))
        .bind(error.then_some(m.code))
        .bind(if error { Some(m.message.unwrap_or(m.code)) } else { None })
        .bind(m.run)
        .bind(m.from.as_str())
        .bind(m.expected_owner)
        .fetch_optional(&mut *c)
        .await?);
    if row.is_some() {
        insert_transition(
            tx,
            m.run,
            Some(m.from),
            m.to,
            m.code,
            m.message,
            m.worker,
            now,
        )
        .await?;
    }
    Ok(row)
}

/// Moves an unclaimable run (stop requested, or already stopping) to `stopped`, through
/// `stopping` when needed, on behalf of `worker`.
async fn finish_stop(
    tx: &mut Tx,
    now: i64,
    run: &str,
    from: RunState,
    owner: Option<&str>,
    worker: &str,
    code: &str,
) -> Result<bool> {
    let mut state = from;
    for to in [RunState::Stopping, RunState::Stopped] {
        if state == to || !state.can_transition_to(to) {
            continue;
        }
        let m = Move {
            run,
            from: state,
            expected_owner: owner,
            to,
            code,
            message: None,
            worker: Some(worker),
            new_owner: None,
            lease_until: None,
        };
        if apply_move(tx, now, &m).await?.is_none() {
            return Ok(false);
        }
        state = to;
    }
    Ok(state == RunState::Stopped)
}

impl Store {
    /// Claims work for `worker`: `pending` runs, and active runs whose lease expired
    /// (takeover), runs before jobs (a live camera waits for no batch job) and oldest first,
    /// up to `max_runs` minus the runs `worker` already holds with
    /// a live lease. Each claimed run becomes `starting`, owned by `worker` with a lease of
    /// `lease_ttl`, its `attempts` incremented and the transition recorded (reason `claimed`
    /// or `lease_expired`). Expired runs whose stop was requested are finished (`stopped`)
    /// instead of handed out; a claimed row that cannot be decoded is failed with reason
    /// `corrupt_row`. Worker ids must be unique per process.
    pub async fn claim_runs(
        &self,
        worker: &str,
        max_runs: u32,
        lease_ttl: Duration,
    ) -> Result<Vec<RunRecord>> {
        self.claim_work(worker, max_runs, max_runs, lease_ttl).await
    }

    /// [`Store::claim_runs`], holding at most `max_jobs` batch jobs (of the `max_runs`) at
    /// once, so some capacity is always left for live runs.
    pub async fn claim_work(
        &self,
        worker: &str,
        max_runs: u32,
        max_jobs: u32,
        lease_ttl: Duration,
    ) -> Result<Vec<RunRecord>> {
        let now = self.now_ms();
        let until = now.saturating_add(dur_ms(lease_ttl));
        let mut tx = self.begin_write().await?;
        let held: i64 = on_tx!(&mut tx, c => sqlx::query_scalar(concat!(
            "SELECT COUNT(*) FROM runs WHERE owner = $1 AND lease_expires_at >= $2 AND state IN ",
            active_states!()))
            .bind(worker)
            .bind(now)
            .fetch_one(&mut *c)
            .await?);
        let free = i64::from(max_runs) - held;
        if free <= 0 {
            return Ok(Vec::new());
        }
        // No job limit below the run limit (`claim_runs`): no count to read.
        let held_jobs: i64 = if max_jobs >= max_runs {
            0
        } else {
            on_tx!(&mut tx, c => sqlx::query_scalar(concat!(
            "SELECT COUNT(*) FROM runs WHERE owner = $1 AND lease_expires_at >= $2 \
             AND id IN (SELECT id FROM jobs) AND state IN ",
            active_states!()))
            .bind(worker)
            .bind(now)
            .fetch_one(&mut *c)
            .await?)
        };
        let mut free_jobs = i64::from(max_jobs) - held_jobs;
        let sql = match tx.dialect() {
            Backend::Sqlite => concat!(
                "SELECT id, state, desired_state, owner, \
                 CAST(CASE WHEN EXISTS (SELECT 1 FROM jobs j WHERE j.id = runs.id) \
                 THEN 1 ELSE 0 END AS BIGINT) AS is_job FROM runs \
                 WHERE (state = 'pending' AND desired_state = 'run') \
                 OR (state IN ",
                active_states!(),
                " AND lease_expires_at < $1) \
                 ORDER BY is_job, created_at, id \
                 LIMIT $2"
            ),
            Backend::Postgres => concat!(
                "SELECT id, state, desired_state, owner, \
                 CAST(CASE WHEN EXISTS (SELECT 1 FROM jobs j WHERE j.id = runs.id) \
                 THEN 1 ELSE 0 END AS BIGINT) AS is_job FROM runs \
                 WHERE (state = 'pending' AND desired_state = 'run') \
                 OR (state IN ",
                active_states!(),
                " AND lease_expires_at < $1) \
                 ORDER BY is_job, created_at, id \
                 LIMIT $2 FOR UPDATE SKIP LOCKED"
            ),
        };
        let candidates: Vec<(String, String, String, Option<String>, i64)> = on_tx!(&mut tx, c => sqlx::query_as(sql)
                .bind(now)
                .bind(free)
                .fetch_all(&mut *c)
                .await?);
        let mut claimed = Vec::new();
        for (id, state, desired, owner, is_job) in candidates {
            let from = parse_state(&state, &id)?;
            if from != RunState::Pending && (desired == "stop" || from == RunState::Stopping) {
                if finish_stop(
                    &mut tx,
                    now,
                    &id,
                    from,
                    owner.as_deref(),
                    worker,
                    reasons::LEASE_EXPIRED,
                )
                .await?
                {
                    tracing::info!(run_id = %id, previous_owner = ?owner, "expired run stopped as requested");
                }
                continue;
            }
            if is_job != 0 && free_jobs <= 0 {
                // Its job slots are full: the job waits for this or another worker.
                continue;
            }
            let message = owner
                .as_deref()
                .map(|o| format!("lease of worker {o} expired"));
            let m = Move {
                run: &id,
                from,
                expected_owner: owner.as_deref(),
                to: RunState::Starting,
                code: if from == RunState::Pending {
                    reasons::CLAIMED
                } else {
                    reasons::LEASE_EXPIRED
                },
                message: message.as_deref(),
                worker: Some(worker),
                new_owner: Some(worker),
                lease_until: Some(until),
            };
            let Some(row) = apply_move(&mut tx, now, &m).await? else {
                continue;
            };
            if is_job != 0 {
                free_jobs -= 1;
            }
            match row.decode() {
                Ok(rec) => {
                    if from != RunState::Pending {
                        tracing::warn!(run_id = %rec.id, worker, previous_owner = ?owner,
                            attempts = rec.attempts, "lease expired; run taken over");
                    }
                    claimed.push(rec);
                }
                Err(c) => {
                    tracing::error!(run_id = %id, detail = %c.detail, "claimed run is corrupt; failing it");
                    let fail = Move {
                        run: &id,
                        from: RunState::Starting,
                        expected_owner: Some(worker),
                        to: RunState::Failed,
                        code: reasons::CORRUPT_ROW,
                        message: Some(&c.detail),
                        worker: Some(worker),
                        new_owner: None,
                        lease_until: None,
                    };
                    apply_move(&mut tx, now, &fail).await?;
                }
            }
        }
        tx.commit().await?;
        if !claimed.is_empty() {
            tracing::info!(worker, count = claimed.len(), "runs claimed");
        }
        Ok(claimed)
    }

    /// Extends the lease of every active run `worker` still owns to now + `ttl` and returns
    /// their ids. A run taken over by another worker is not renewed and not returned: the
    /// caller must stop its pipeline.
    pub async fn renew_leases(&self, worker: &str, ttl: Duration) -> Result<Vec<RunId>> {
        let until = self.now_ms().saturating_add(dur_ms(ttl));
        let ids: Vec<String> = on_pool!(self, p => sqlx::query_scalar(concat!(
            "UPDATE runs SET lease_expires_at = $1 WHERE owner = $2 AND state IN ",
            active_states!(), " RETURNING id"))
            .bind(until)
            .bind(worker)
            .fetch_all(p)
            .await?);
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            match RunId::parse(&id) {
                Ok(r) => out.push(r),
                Err(e) => tracing::error!(run_id = %id, error = %e, "corrupt run id in renewal"),
            }
        }
        out.sort();
        Ok(out)
    }

    /// Moves an owned run from `from` to `to`. Fails with
    /// [`StoreError::IllegalTransition`] if the lifecycle forbids it,
    /// [`StoreError::LeaseLost`] if `worker` no longer owns the run,
    /// [`StoreError::StateMismatch`] if the run is no longer in `from`, and
    /// [`StoreError::NotFound`]. Entering `starting` again (a restart) counts an attempt;
    /// `pending` and terminal states clear the owner and lease.
    pub async fn transition(
        &self,
        run: &RunId,
        worker: &str,
        from: RunState,
        to: RunState,
        reason: impl Into<Reason>,
    ) -> Result<RunRecord> {
        let reason = reason.into();
        if !from.can_transition_to(to) {
            return Err(StoreError::IllegalTransition {
                run: run.clone(),
                from,
                to,
            });
        }
        let now = self.now_ms();
        let mut tx = self.begin_write().await?;
        let m = Move {
            run: run.as_str(),
            from,
            expected_owner: Some(worker),
            to,
            code: &reason.code,
            message: reason.message.as_deref(),
            worker: Some(worker),
            new_owner: (to == RunState::Starting).then_some(worker),
            lease_until: None,
        };
        if let Some(row) = apply_move(&mut tx, now, &m).await? {
            let rec = row.decode()?;
            tx.commit().await?;
            tracing::info!(run_id = %run, worker, %from, %to, reason = %reason.code, "run transition");
            return Ok(rec);
        }
        let current: Option<(String, Option<String>)> = on_tx!(&mut tx, c => sqlx::query_as(
            "SELECT state, owner FROM runs WHERE id = $1")
            .bind(run.as_str())
            .fetch_optional(&mut *c)
            .await?);
        Err(match current {
            None => StoreError::not_found("run", run.as_str()),
            Some((_, owner)) if owner.as_deref() != Some(worker) => StoreError::LeaseLost {
                run: run.clone(),
                worker: worker.to_owned(),
                owner,
            },
            Some((state, _)) => StoreError::StateMismatch {
                run: run.clone(),
                expected: from,
                actual: state,
            },
        })
    }

    /// Graceful shutdown: every active run `worker` owns goes back to `pending` (reason
    /// `released`, owner and lease cleared) so another worker, or the next start, resumes
    /// it; runs whose stop was requested are finished as `stopped` instead. Returns the ids
    /// put back to `pending`.
    pub async fn release_runs(&self, worker: &str) -> Result<Vec<RunId>> {
        let now = self.now_ms();
        let mut tx = self.begin_write().await?;
        let sql = match tx.dialect() {
            Backend::Sqlite => concat!(
                "SELECT id, state, desired_state FROM runs WHERE owner = $1 AND state IN ",
                active_states!(),
                " ORDER BY id"
            ),
            Backend::Postgres => concat!(
                "SELECT id, state, desired_state FROM runs WHERE owner = $1 AND state IN ",
                active_states!(),
                " ORDER BY id FOR UPDATE"
            ),
        };
        let owned: Vec<(String, String, String)> = on_tx!(&mut tx, c => sqlx::query_as(sql)
            .bind(worker)
            .fetch_all(&mut *c)
            .await?);
        let mut released = Vec::new();
        for (id, state, desired) in owned {
            let from = parse_state(&state, &id)?;
            if desired == "stop" {
                finish_stop(
                    &mut tx,
                    now,
                    &id,
                    from,
                    Some(worker),
                    worker,
                    reasons::STOP_REQUESTED,
                )
                .await?;
                continue;
            }
            let m = Move {
                run: &id,
                from,
                expected_owner: Some(worker),
                to: RunState::Pending,
                code: reasons::RELEASED,
                message: None,
                worker: Some(worker),
                new_owner: None,
                lease_until: None,
            };
            if apply_move(&mut tx, now, &m).await?.is_some() {
                match RunId::parse(&id) {
                    Ok(r) => released.push(r),
                    Err(e) => tracing::error!(run_id = %id, error = %e, "corrupt run id released"),
                }
            }
        }
        tx.commit().await?;
        tracing::info!(worker, count = released.len(), "leases released");
        Ok(released)
    }

    /// The active runs `worker` owns (to notice stop requests and config changes when
    /// LISTEN/NOTIFY is not available). Corrupt rows are skipped and logged.
    pub async fn owned_runs(&self, worker: &str) -> Result<Vec<RunRecord>> {
        let rows: Vec<RunRow> = on_pool!(self, p => sqlx::query_as(concat!(
            "SELECT ", run_cols!(), " FROM runs WHERE owner = $1 AND state IN ",
            active_states!(), " ORDER BY id"))
            .bind(worker)
            .fetch_all(p)
            .await?);
        Ok(rows
            .into_iter()
            .filter_map(|r| match r.decode() {
                Ok(rec) => Some(rec),
                Err(c) => {
                    tracing::error!(table = c.table, key = %c.key, detail = %c.detail, "corrupt owned run skipped");
                    None
                }
            })
            .collect())
    }
}
