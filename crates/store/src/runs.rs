//! Runs as records: creating, reading, listing, stopping and deleting them, and their
//! transition history. What a worker does to a run it owns (claim, renew, transition,
//! release) lives in [`crate::lease`].

use crate::codec::{DbJson, corrupt, count_u32, ts, ts_opt};
use crate::error::{CorruptRow, Result, StoreError};
use crate::page::{Page, clamp_limit, paginate};
use crate::source::SourceUri;
use crate::store::{Store, on_pool, on_tx};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sightline_core::{RunId, RunState};
use sqlx::types::Json;

/// Column list of `runs`, in the order of [`RunRow`].
macro_rules! run_cols {
    () => {
        "id, source_uri, config_name, config_version, models, output, desired_state, state, \
         attempts, last_error_code, last_error_message, owner, lease_expires_at, created_at, \
         updated_at, started_at, ended_at, stats"
    };
}
pub(crate) use run_cols;

/// SQL list of the active states (a worker owns the run and its pipeline exists).
macro_rules! active_states {
    () => {
        "('starting', 'running', 'retrying', 'stopping')"
    };
}
pub(crate) use active_states;

/// Transition reasons written by the store itself. Reasons written by the engine
/// (`source_unreachable`, `source_lost`, `stalled`, …) are free-form codes.
pub mod reasons {
    /// A run was inserted.
    pub const CREATED: &str = "created";
    /// A worker claimed a pending run.
    pub const CLAIMED: &str = "claimed";
    /// A worker took over a run whose owner's lease had expired.
    pub const LEASE_EXPIRED: &str = "lease_expired";
    /// The owner released the run on graceful shutdown.
    pub const RELEASED: &str = "released";
    /// A stop was requested.
    pub const STOP_REQUESTED: &str = "stop_requested";
    /// The row could not be decoded after it was claimed; it is failed rather than retried.
    pub const CORRUPT_ROW: &str = "corrupt_row";
    /// An operator started a finished run again.
    pub const RESTART_REQUESTED: &str = "restart_requested";
}

/// What the user wants of a run; the engine moves `state` towards it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DesiredState {
    Run,
    Stop,
}

impl DesiredState {
    pub fn as_str(self) -> &'static str {
        match self {
            DesiredState::Run => "run",
            DesiredState::Stop => "stop",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "run" => Some(DesiredState::Run),
            "stop" => Some(DesiredState::Stop),
            _ => None,
        }
    }
}

/// Why a run last failed or retried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunError {
    /// Stable reason code (`source_unreachable`, `invalid_config`, …).
    pub code: String,
    pub message: String,
}

/// A run to create.
#[derive(Debug, Clone)]
pub struct NewRun {
    /// Generated (UUIDv7) when `None`.
    pub id: Option<RunId>,
    pub source: SourceUri,
    pub config_name: String,
    /// Pinned version; `None` pins the latest version at creation (the config must exist).
    /// An explicit version is not checked here: a run whose version does not exist is for
    /// the engine to fail with `invalid_config`.
    pub config_version: Option<i64>,
    /// Names of the models the config uses (a model in use cannot be deleted).
    pub models: Vec<String>,
    /// Output settings (RTSP mount, recording, preview), opaque to the store.
    pub output: Value,
}

impl NewRun {
    pub fn new(source: SourceUri, config_name: impl Into<String>) -> Self {
        NewRun {
            id: None,
            source,
            config_name: config_name.into(),
            config_version: None,
            models: Vec::new(),
            output: Value::Object(Default::default()),
        }
    }
}

/// A stored run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRecord {
    pub id: RunId,
    /// Masked when serialized or printed.
    pub source: SourceUri,
    pub config_name: String,
    pub config_version: i64,
    pub models: Vec<String>,
    pub output: Value,
    pub desired_state: DesiredState,
    pub state: RunState,
    /// How many times a worker started it (claims, takeovers and restarts).
    pub attempts: u32,
    pub last_error: Option<RunError>,
    /// The worker that owns it (active states only).
    pub owner: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// First time it reached `running`.
    pub started_at: Option<DateTime<Utc>>,
    /// When it reached a terminal state.
    pub ended_at: Option<DateTime<Utc>>,
    /// Live statistics written by the owner (fps, drops, latency), opaque to the store.
    pub stats: Value,
}

/// One persisted state change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transition {
    pub id: i64,
    pub run_id: RunId,
    /// `None` for the creation of the run.
    pub from: Option<RunState>,
    pub to: RunState,
    pub reason: String,
    pub message: Option<String>,
    /// The worker that made the change (`None` for API/CLI actions).
    pub worker: Option<String>,
    pub at: DateTime<Utc>,
}

/// Filter and cursor of [`Store::list_runs`].
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub state: Option<RunState>,
    /// Page size (0 = default, clamped to [`crate::MAX_LIMIT`]).
    pub limit: u32,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct RunRow {
    pub id: String,
    pub source_uri: String,
    pub config_name: String,
    pub config_version: i64,
    pub models: DbJson,
    pub output: DbJson,
    pub desired_state: String,
    pub state: String,
    pub attempts: i64,
    pub last_error_code: Option<String>,
    pub last_error_message: Option<String>,
    pub owner: Option<String>,
    pub lease_expires_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub started_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub stats: DbJson,
}

const T: &str = "runs";

pub(crate) fn parse_state(s: &str, key: &str) -> Result<RunState, CorruptRow> {
    RunState::parse(s).ok_or_else(|| corrupt(T, key, format!("unknown state {s:?}")))
}

impl RunRow {
    pub(crate) fn decode(self) -> Result<RunRecord, CorruptRow> {
        let k = self.id.as_str();
        let id = RunId::parse(k).map_err(|e| corrupt(T, k, e))?;
        let models = match self.models.value(T, k, "models")? {
            Value::Array(a) => a
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    other => Err(corrupt(T, k, format!("model name {other} is not a string"))),
                })
                .collect::<Result<Vec<_>, _>>()?,
            other => return Err(corrupt(T, k, format!("models {other} is not an array"))),
        };
        let last_error = match (self.last_error_code, self.last_error_message) {
            (Some(code), message) => Some(RunError {
                message: message.unwrap_or_else(|| code.clone()),
                code,
            }),
            (None, _) => None,
        };
        Ok(RunRecord {
            source: SourceUri::from_stored(self.source_uri),
            config_name: self.config_name,
            config_version: self.config_version,
            models,
            output: self.output.value(T, k, "output")?,
            desired_state: DesiredState::parse(&self.desired_state).ok_or_else(|| {
                corrupt(
                    T,
                    k,
                    format!("unknown desired state {:?}", self.desired_state),
                )
            })?,
            state: parse_state(&self.state, k)?,
            attempts: count_u32(self.attempts, T, k, "attempts")?,
            last_error,
            owner: self.owner,
            lease_expires_at: ts_opt(self.lease_expires_at, T, k, "lease_expires_at")?,
            created_at: ts(self.created_at, T, k, "created_at")?,
            updated_at: ts(self.updated_at, T, k, "updated_at")?,
            started_at: ts_opt(self.started_at, T, k, "started_at")?,
            ended_at: ts_opt(self.ended_at, T, k, "ended_at")?,
            stats: self.stats.value(T, k, "stats")?,
            id,
        })
    }
}

#[derive(sqlx::FromRow)]
struct TransitionRow {
    id: i64,
    run_id: String,
    from_state: Option<String>,
    to_state: String,
    reason: String,
    message: Option<String>,
    worker: Option<String>,
    at: i64,
}

impl TransitionRow {
    fn decode(self) -> Result<Transition, CorruptRow> {
        const TT: &str = "run_transitions";
        let k = self.id.to_string();
        let state = |s: &str| {
            RunState::parse(s).ok_or_else(|| corrupt(TT, &k, format!("unknown state {s:?}")))
        };
        Ok(Transition {
            id: self.id,
            run_id: RunId::parse(&self.run_id).map_err(|e| corrupt(TT, &k, e))?,
            from: self.from_state.as_deref().map(state).transpose()?,
            to: state(&self.to_state)?,
            reason: self.reason,
            message: self.message,
            worker: self.worker,
            at: ts(self.at, TT, &k, "at")?,
        })
    }
}

/// Validates a config or model name: 1–128 characters of `[A-Za-z0-9_.-]`.
pub(crate) fn check_name(field: &'static str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::invalid(
            field,
            format!("{name:?}: use 1-128 characters of letters, digits, '_', '-' and '.'"),
        ))
    }
}

impl Store {
    /// Inserts a `pending` run and its `created` transition. On PostgreSQL the insert
    /// notifies `sightline_runs` so a listening engine claims it at once.
    pub async fn create_run(&self, new: NewRun) -> Result<RunRecord> {
        let mut tx = self.begin_write().await?;
        let rec = self.insert_run(&mut tx, &new).await?;
        tx.commit().await?;
        tracing::info!(run_id = %rec.id, source = %rec.source, config = %rec.config_name,
            config_version = rec.config_version, "run created");
        Ok(rec)
    }

    /// Inserts a pending run and its `created` transition inside `tx` (a job adds its own
    /// row in the same transaction, so no worker ever claims a job's run without it).
    pub(crate) async fn insert_run(
        &self,
        tx: &mut crate::store::Tx,
        new: &NewRun,
    ) -> Result<RunRecord> {
        check_name("config_name", &new.config_name)?;
        for m in &new.models {
            check_name("models", m)?;
        }
        if let Some(v) = new.config_version
            && v < 1
        {
            return Err(StoreError::invalid("config_version", "versions start at 1"));
        }
        let id = new.id.clone().unwrap_or_else(RunId::generate);
        let now = self.now_ms();
        let models = Value::from(new.models.clone());
        let version = match new.config_version {
            Some(v) => v,
            None => {
                let latest: Option<i64> = on_tx!(&mut *tx, c => sqlx::query_scalar(
                    "SELECT latest_version FROM configs WHERE name = $1")
                    .bind(&new.config_name)
                    .fetch_optional(&mut *c)
                    .await?);
                match latest {
                    Some(v) if v >= 1 => v,
                    _ => {
                        return Err(StoreError::invalid(
                            "config_name",
                            format!("config {:?} has no versions", new.config_name),
                        ));
                    }
                }
            }
        };
        let inserted = on_tx!(&mut *tx, c => sqlx::query_as::<_, RunRow>(concat!(
            "INSERT INTO runs (id, source_uri, config_name, config_version, models, output, \
             desired_state, state, attempts, created_at, updated_at, stats) \
             VALUES ($1, $2, $3, $4, $5, $6, 'run', 'pending', 0, $7, $7, $8) RETURNING ",
            run_cols!()))
            .bind(id.as_str())
            .bind(new.source.expose())
            .bind(&new.config_name)
            .bind(version)
            .bind(Json(&models))
            .bind(Json(&new.output))
            .bind(now)
            .bind(Json(Value::Object(Default::default())))
            .fetch_one(&mut *c)
            .await);
        let row = match inserted.map_err(StoreError::from) {
            Ok(row) => row,
            Err(e) if e.is_unique_violation() => {
                return Err(StoreError::conflict("run", id.as_str(), "already exists"));
            }
            Err(e) => return Err(e),
        };
        insert_transition(
            tx,
            id.as_str(),
            None,
            RunState::Pending,
            reasons::CREATED,
            None,
            None,
            now,
        )
        .await?;
        Ok(row.decode()?)
    }

    /// One run.
    pub async fn get_run(&self, id: &RunId) -> Result<RunRecord> {
        let row = on_pool!(self, p => sqlx::query_as::<_, RunRow>(
            concat!("SELECT ", run_cols!(), " FROM runs WHERE id = $1"))
            .bind(id.as_str())
            .fetch_optional(p)
            .await?);
        match row {
            Some(r) => Ok(r.decode()?),
            None => Err(StoreError::not_found("run", id.as_str())),
        }
    }

    /// Runs in id order (generated ids are time-ordered), optionally in one state.
    pub async fn list_runs(&self, filter: &RunFilter) -> Result<Page<RunRecord>> {
        let limit = clamp_limit(filter.limit);
        let rows: Vec<RunRow> = on_pool!(self, p => {
            let mut qb = sqlx::QueryBuilder::new(concat!("SELECT ", run_cols!(), " FROM runs WHERE 1 = 1"));
            if let Some(s) = filter.state {
                qb.push(" AND state = ").push_bind(s.as_str());
            }
            if let Some(c) = &filter.cursor {
                qb.push(" AND id > ").push_bind(c.clone());
            }
            qb.push(" ORDER BY id LIMIT ").push_bind(i64::from(limit) + 1);
            qb.build_query_as::<RunRow>().fetch_all(p).await?
        });
        Ok(paginate(rows, limit, |r| r.id.clone(), RunRow::decode))
    }

    /// Asks for a run to stop. A `pending` run is stopped at once; an active run gets
    /// `desired_state = stop` and its owner drives it through `stopping` to `stopped` (on
    /// PostgreSQL the owner is notified). A finished run is returned unchanged.
    pub async fn request_stop(&self, id: &RunId) -> Result<RunRecord> {
        let now = self.now_ms();
        let mut tx = self.begin_write().await?;
        let state = locked_state(&mut tx, id).await?;
        if !state.is_terminal() {
            on_tx!(&mut tx, c => sqlx::query(
                "UPDATE runs SET desired_state = 'stop', updated_at = $2 WHERE id = $1")
                .bind(id.as_str())
                .bind(now)
                .execute(&mut *c)
                .await?
                .rows_affected());
        }
        if state == RunState::Pending {
            let moved = crate::lease::apply_move(
                &mut tx,
                now,
                &crate::lease::Move {
                    run: id.as_str(),
                    from: RunState::Pending,
                    expected_owner: None,
                    to: RunState::Stopped,
                    code: reasons::STOP_REQUESTED,
                    message: None,
                    worker: None,
                    new_owner: None,
                    lease_until: None,
                },
            )
            .await?;
            if moved.is_none() {
                return Err(StoreError::conflict(
                    "run",
                    id.as_str(),
                    "changed while stopping; retry",
                ));
            }
        }
        tx.commit().await?;
        tracing::info!(run_id = %id, from = %state, "stop requested");
        self.get_run(id).await
    }

    /// Starts a finished run (`stopped`, `completed` or `failed`) again: back to `pending`
    /// with its history kept, its error cleared and a `restart_requested` transition, so a
    /// worker claims it like a new one. An operator's action, outside the engine's lifecycle
    /// (where terminal states are final). Refused with [`StoreError::Conflict`] while active.
    pub async fn restart_run(&self, id: &RunId) -> Result<RunRecord> {
        let now = self.now_ms();
        let mut tx = self.begin_write().await?;
        let state = locked_state(&mut tx, id).await?;
        if !state.is_terminal() {
            return Err(StoreError::conflict(
                "run",
                id.as_str(),
                format!("is {state}; only a stopped, completed or failed run can be started again"),
            ));
        }
        on_tx!(&mut tx, c => sqlx::query(
            "UPDATE runs SET state = 'pending', desired_state = 'run', owner = NULL, \
             lease_expires_at = NULL, last_error_code = NULL, last_error_message = NULL, \
             ended_at = NULL, updated_at = $2 WHERE id = $1")
            .bind(id.as_str())
            .bind(now)
            .execute(&mut *c)
            .await?
            .rows_affected());
        insert_transition(
            &mut tx,
            id.as_str(),
            Some(state),
            RunState::Pending,
            reasons::RESTART_REQUESTED,
            None,
            None,
            now,
        )
        .await?;
        tx.commit().await?;
        tracing::info!(run_id = %id, from = %state, "run started again");
        self.get_run(id).await
    }

    /// Deletes a run with its transitions and events. Refused with
    /// [`StoreError::Conflict`] while the run is active (stop it first).
    pub async fn delete_run(&self, id: &RunId) -> Result<()> {
        let deleted = on_pool!(self, p => sqlx::query(concat!(
            "DELETE FROM runs WHERE id = $1 AND state NOT IN ", active_states!()))
            .bind(id.as_str())
            .execute(p)
            .await?
            .rows_affected());
        if deleted == 1 {
            tracing::info!(run_id = %id, "run deleted");
            return Ok(());
        }
        let state: Option<String> = on_pool!(self, p => sqlx::query_scalar(
            "SELECT state FROM runs WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(p)
            .await?);
        match state {
            None => Err(StoreError::not_found("run", id.as_str())),
            Some(s) => Err(StoreError::conflict(
                "run",
                id.as_str(),
                format!("run is {s}; stop it before deleting it"),
            )),
        }
    }

    /// Replaces the run's live statistics.
    pub async fn update_run_stats(&self, id: &RunId, stats: &Value) -> Result<()> {
        let now = self.now_ms();
        let n = on_pool!(self, p => sqlx::query(
            "UPDATE runs SET stats = $2, updated_at = $3 WHERE id = $1")
            .bind(id.as_str())
            .bind(Json(stats))
            .bind(now)
            .execute(p)
            .await?
            .rows_affected());
        if n == 0 {
            return Err(StoreError::not_found("run", id.as_str()));
        }
        Ok(())
    }

    /// Pins another version of the run's config (applied by the owner at a frame
    /// boundary; on PostgreSQL the owner is notified). The version must exist and the run
    /// must not be finished.
    pub async fn set_run_config_version(&self, id: &RunId, version: i64) -> Result<RunRecord> {
        let now = self.now_ms();
        let mut tx = self.begin_write().await?;
        let row: Option<(String, String)> = on_tx!(&mut tx, c => sqlx::query_as(
            "SELECT config_name, state FROM runs WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&mut *c)
            .await?);
        let Some((config, state)) = row else {
            return Err(StoreError::not_found("run", id.as_str()));
        };
        if parse_state(&state, id.as_str())?.is_terminal() {
            return Err(StoreError::conflict(
                "run",
                id.as_str(),
                format!("run is {state}"),
            ));
        }
        let exists: Option<i64> = on_tx!(&mut tx, c => sqlx::query_scalar(
            "SELECT version FROM config_versions WHERE name = $1 AND version = $2")
            .bind(&config)
            .bind(version)
            .fetch_optional(&mut *c)
            .await?);
        if exists.is_none() {
            return Err(StoreError::not_found(
                "config version",
                format!("{config}@{version}"),
            ));
        }
        on_tx!(&mut tx, c => sqlx::query(
            "UPDATE runs SET config_version = $2, updated_at = $3 WHERE id = $1")
            .bind(id.as_str())
            .bind(version)
            .bind(now)
            .execute(&mut *c)
            .await?
            .rows_affected());
        tx.commit().await?;
        tracing::info!(run_id = %id, config = %config, version, "run config version changed");
        self.get_run(id).await
    }

    /// The run's transitions, oldest first.
    pub async fn transitions(&self, id: &RunId) -> Result<Vec<Transition>> {
        let rows: Vec<TransitionRow> = on_pool!(self, p => sqlx::query_as(
            "SELECT id, run_id, from_state, to_state, reason, message, worker, at \
             FROM run_transitions WHERE run_id = $1 ORDER BY id")
            .bind(id.as_str())
            .fetch_all(p)
            .await?);
        if rows.is_empty() {
            // Distinguish "no such run" from "no history" (a run always has `created`).
            self.get_run(id).await?;
        }
        rows.into_iter()
            .map(|r| r.decode().map_err(StoreError::from))
            .collect()
    }
}

/// Appends a row to `run_transitions`.
/// The run's state, its row locked for the rest of the write transaction (`FOR UPDATE` on
/// PostgreSQL; SQLite's write transaction already excludes other writers).
async fn locked_state(tx: &mut crate::store::Tx, id: &RunId) -> Result<RunState> {
    let sql = match tx.dialect() {
        crate::Backend::Sqlite => "SELECT state FROM runs WHERE id = $1",
        crate::Backend::Postgres => "SELECT state FROM runs WHERE id = $1 FOR UPDATE",
    };
    let state: Option<String> = on_tx!(tx, c => sqlx::query_scalar(sql)
        .bind(id.as_str())
        .fetch_optional(&mut *c)
        .await?);
    let Some(state) = state else {
        return Err(StoreError::not_found("run", id.as_str()));
    };
    Ok(parse_state(&state, id.as_str())?)
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn insert_transition(
    tx: &mut crate::store::Tx,
    run: &str,
    from: Option<RunState>,
    to: RunState,
    reason: &str,
    message: Option<&str>,
    worker: Option<&str>,
    now: i64,
) -> Result<()> {
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO run_transitions (run_id, from_state, to_state, reason, message, worker, at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)")
        .bind(run)
        .bind(from.map(|s| s.as_str()))
        .bind(to.as_str())
        .bind(reason)
        .bind(message)
        .bind(worker)
        .bind(now)
        .execute(&mut *c)
        .await?
        .rows_affected());
    Ok(())
}
