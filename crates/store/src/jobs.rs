//! Batch jobs as records. A job is a run (same row, same lease, same takeover) plus a `jobs`
//! row with what only a job has: the name the file was uploaded under, where the server
//! stored it, its size. Both rows are written in one transaction, so a worker never claims a
//! job's run before the job exists.

use crate::codec::{corrupt, ts};
use crate::error::{CorruptRow, Result, StoreError};
use crate::page::{Page, clamp_limit, paginate};
use crate::runs::{NewRun, RunRecord, RunRow, run_cols};
use crate::store::{Backend, Store, on_pool, on_tx};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sightline_core::{JobState, RunId};

/// What a job adds to its run.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// The name the client gave the file (shown, never used as a path).
    pub file_name: String,
    /// Where the server stored the upload (`None` for a server-side file, which is never
    /// deleted by the job).
    pub upload_path: Option<String>,
    pub size_bytes: u64,
}

/// A stored job: its run and its own columns.
#[derive(Debug, Clone, Serialize)]
pub struct JobRecord {
    pub run: RunRecord,
    pub state: JobState,
    pub file_name: String,
    pub upload_path: Option<String>,
    pub size_bytes: u64,
    pub created_at: DateTime<Utc>,
}

/// Filter and cursor of [`Store::list_jobs`].
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub state: Option<JobState>,
    /// Page size (0 = default, clamped to [`crate::MAX_LIMIT`]).
    pub limit: u32,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// How many events of one kind a run stored (a job's summary).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventCount {
    #[serde(rename = "type")]
    pub kind: String,
    pub rule: String,
    pub class: Option<String>,
    pub count: u64,
}

/// How far a job got, read from its run's statistics (`frames_in`, `fps`, `position_s`,
/// `duration_s`, `source_fps`, `uptime_s`, as the engine writes them).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobProgress {
    /// Frames processed so far (by the current attempt).
    pub frames_done: u64,
    /// Length × frame rate; the processed count once completed.
    pub total_frames: Option<u64>,
    /// 0..1, exactly 1 once completed.
    pub fraction: Option<f64>,
    pub fps: f64,
    /// Seconds left at the current speed (running jobs).
    pub eta_s: Option<f64>,
    pub position_s: f64,
    pub duration_s: Option<f64>,
    /// Stream seconds processed per wall-clock second.
    pub x_realtime: Option<f64>,
}

fn num(v: &Value, k: &str) -> Option<f64> {
    v.get(k).and_then(Value::as_f64)
}

impl JobProgress {
    pub fn of(state: JobState, stats: &Value) -> JobProgress {
        let frames_done = stats.get("frames_in").and_then(Value::as_u64).unwrap_or(0);
        let fps = num(stats, "fps").unwrap_or(0.0);
        let position_s = num(stats, "position_s").unwrap_or(0.0);
        let duration_s = num(stats, "duration_s").filter(|d| *d > 0.0);
        let source_fps = num(stats, "source_fps").filter(|r| *r > 0.0);
        let uptime = num(stats, "uptime_s").filter(|u| *u > 0.0);
        let estimated = match (duration_s, source_fps) {
            (Some(d), Some(r)) => Some((d * r).round() as u64),
            _ => None,
        };
        let completed = state == JobState::Completed;
        let total_frames = if completed {
            Some(frames_done)
        } else {
            estimated.map(|t| t.max(frames_done))
        };
        let fraction = if completed {
            Some(1.0)
        } else {
            duration_s.map(|d| (position_s / d).clamp(0.0, 0.999))
        };
        let eta_s = match (state, total_frames) {
            (JobState::Running, Some(t)) if fps > 0.0 => {
                Some(t.saturating_sub(frames_done) as f64 / fps)
            }
            _ => None,
        };
        JobProgress {
            frames_done,
            total_frames,
            fraction,
            fps,
            eta_s,
            position_s,
            duration_s,
            x_realtime: uptime.map(|u| position_s / u),
        }
    }
}

impl JobProgress {
    /// What a completed job should tell its reader: the video ended before the length its
    /// container announces (a truncated or damaged file, processed up to the damage).
    pub fn warnings(&self, state: JobState) -> Vec<String> {
        let mut out = Vec::new();
        if state == JobState::Completed
            && let Some(d) = self.duration_s
            && self.position_s + 1.0 < d
        {
            out.push(format!(
                "the video ended at {:.1} s of the {:.1} s its container announces: the file \
                 is probably truncated or damaged; it was processed up to the damage",
                self.position_s, d
            ));
        }
        out
    }
}

impl JobRecord {
    /// Progress from the stored statistics.
    pub fn progress(&self) -> JobProgress {
        JobProgress::of(self.state, &self.run.stats)
    }
}

#[derive(Clone, sqlx::FromRow)]
struct JobRow {
    id: String,
    file_name: String,
    upload_path: Option<String>,
    size_bytes: i64,
    created_at: i64,
}

const T: &str = "jobs";

fn decode(run: RunRecord, row: JobRow) -> Result<JobRecord, CorruptRow> {
    let k = row.id.as_str();
    let size_bytes = u64::try_from(row.size_bytes)
        .map_err(|_| corrupt(T, k, format!("negative size_bytes {}", row.size_bytes)))?;
    Ok(JobRecord {
        state: JobState::of(run.state),
        created_at: ts(row.created_at, T, k, "created_at")?,
        run,
        file_name: row.file_name,
        upload_path: row.upload_path,
        size_bytes,
    })
}

impl Store {
    /// Creates a job: a pending run of `run` (which should be a file played once) and its job
    /// row, in one transaction.
    pub async fn create_job(&self, run: NewRun, job: NewJob) -> Result<JobRecord> {
        if job.file_name.is_empty() || job.file_name.len() > 255 {
            return Err(StoreError::invalid("file_name", "must be 1-255 bytes long"));
        }
        let size = i64::try_from(job.size_bytes)
            .map_err(|_| StoreError::invalid("size_bytes", "too large"))?;
        let now = self.now_ms();
        let mut tx = self.begin_write().await?;
        let rec = self.insert_run(&mut tx, &run).await?;
        let row = on_tx!(&mut tx, c => sqlx::query_as::<_, JobRow>(
            "INSERT INTO jobs (id, file_name, upload_path, size_bytes, created_at) \
             VALUES ($1, $2, $3, $4, $5) \
             RETURNING id, file_name, upload_path, size_bytes, created_at")
            .bind(rec.id.as_str())
            .bind(&job.file_name)
            .bind(job.upload_path.as_deref())
            .bind(size)
            .bind(now)
            .fetch_one(&mut *c)
            .await?);
        let out = decode(rec, row)?;
        tx.commit().await?;
        tracing::info!(job_id = %out.run.id, file = %out.file_name, bytes = out.size_bytes,
            config = %out.run.config_name, "job created");
        Ok(out)
    }

    /// One job.
    pub async fn get_job(&self, id: &RunId) -> Result<JobRecord> {
        let row = on_pool!(self, p => sqlx::query_as::<_, JobRow>(
            "SELECT id, file_name, upload_path, size_bytes, created_at FROM jobs WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(p)
            .await?);
        let Some(row) = row else {
            return Err(StoreError::not_found("job", id.as_str()));
        };
        let run = self.get_run(id).await?;
        Ok(decode(run, row)?)
    }

    /// Jobs in id (= creation) order, optionally of one state.
    pub async fn list_jobs(&self, filter: &JobFilter) -> Result<Page<JobRecord>> {
        let limit = clamp_limit(filter.limit);
        let runs: Vec<RunRow> = on_pool!(self, p => {
            let mut qb = sqlx::QueryBuilder::new(concat!(
                "SELECT ", run_cols!(), " FROM runs WHERE id IN (SELECT id FROM jobs)"));
            if let Some(s) = filter.state {
                qb.push(" AND state IN (");
                let mut sep = qb.separated(", ");
                for rs in s.run_states() {
                    sep.push_bind(rs.as_str());
                }
                qb.push(")");
            }
            if let Some(c) = &filter.cursor {
                qb.push(" AND id > ").push_bind(c.clone());
            }
            qb.push(" ORDER BY id LIMIT ").push_bind(i64::from(limit) + 1);
            qb.build_query_as::<RunRow>().fetch_all(p).await?
        });
        if runs.is_empty() {
            return Ok(Page::empty());
        }
        let jobs: Vec<JobRow> = on_pool!(self, p => {
            let mut qb = sqlx::QueryBuilder::new(
                "SELECT id, file_name, upload_path, size_bytes, created_at FROM jobs WHERE id IN (");
            let mut sep = qb.separated(", ");
            for r in &runs {
                sep.push_bind(r.id.clone());
            }
            qb.push(")");
            qb.build_query_as::<JobRow>().fetch_all(p).await?
        });
        let jobs: std::collections::HashMap<String, JobRow> =
            jobs.into_iter().map(|j| (j.id.clone(), j)).collect();
        Ok(paginate(
            runs,
            limit,
            |r| r.id.clone(),
            |r| {
                let key = r.id.clone();
                let run = r.decode()?;
                match jobs.get(&key) {
                    Some(j) => decode(run, j.clone()),
                    // Deleted between the two queries.
                    None => Err(corrupt(T, &key, "job row vanished while listing")),
                }
            },
        ))
    }

    /// How many jobs are in each state (every state listed, zeros included).
    pub async fn job_counts(&self) -> Result<Vec<(JobState, u64)>> {
        let rows: Vec<(String, i64)> = on_pool!(self, p => sqlx::query_as(
            "SELECT r.state, COUNT(*) FROM jobs j JOIN runs r ON r.id = j.id GROUP BY r.state")
            .fetch_all(p)
            .await?);
        let mut out: Vec<(JobState, u64)> = JobState::ALL.iter().map(|s| (*s, 0)).collect();
        for (state, n) in rows {
            let Some(rs) = sightline_core::RunState::parse(&state) else {
                continue;
            };
            let js = JobState::of(rs);
            if let Some(slot) = out.iter_mut().find(|(s, _)| *s == js) {
                slot.1 += u64::try_from(n).unwrap_or(0);
            }
        }
        Ok(out)
    }

    /// Whether `id` is a job. (The engine does not ask: it reads the run's `output.job`
    /// flag, which only the jobs API and `sightline jobs add` set.)
    pub async fn is_job(&self, id: &RunId) -> Result<bool> {
        let n: i64 = on_pool!(self, p => sqlx::query_scalar(
            "SELECT COUNT(*) FROM jobs WHERE id = $1")
            .bind(id.as_str())
            .fetch_one(p)
            .await?);
        Ok(n > 0)
    }

    /// Deletes a job that is not active, with its run and events. Returns the job as it was,
    /// so the caller can remove its upload and annotated video.
    pub async fn delete_job(&self, id: &RunId) -> Result<JobRecord> {
        let job = self.get_job(id).await?;
        self.delete_run(id).await?;
        Ok(job)
    }

    /// Uploads the server owns (`output.delete_source`) of jobs that ended, still recorded
    /// (at most `limit`, oldest job first): what the engine's sweep deletes — the upload of a
    /// job cancelled while queued, or of one whose worker died as it ended.
    pub async fn ended_job_uploads(&self, limit: u32) -> Result<Vec<(RunId, String)>> {
        let sql = match self.backend() {
            Backend::Sqlite => {
                "SELECT j.id, j.upload_path FROM jobs j JOIN runs r ON r.id = j.id \
                 WHERE j.upload_path IS NOT NULL \
                 AND json_extract(r.output, '$.delete_source') = 1 AND r.state IN ("
            }
            Backend::Postgres => {
                "SELECT j.id, j.upload_path FROM jobs j JOIN runs r ON r.id = j.id \
                 WHERE j.upload_path IS NOT NULL \
                 AND (r.output ->> 'delete_source') = 'true' AND r.state IN ("
            }
        };
        let rows: Vec<(String, String)> = on_pool!(self, p => {
            let mut qb = sqlx::QueryBuilder::new(sql);
            let mut sep = qb.separated(", ");
            for s in sightline_core::RunState::ALL.into_iter().filter(|s| s.is_terminal()) {
                sep.push_bind(s.as_str());
            }
            qb.push(") ORDER BY j.id LIMIT ").push_bind(i64::from(limit.max(1)));
            qb.build_query_as().fetch_all(p).await?
        });
        Ok(rows
            .into_iter()
            .filter_map(|(id, path)| Some((RunId::parse(&id).ok()?, path)))
            .collect())
    }

    /// The job's upload was deleted: its path is forgotten (the sweep stops looking at it).
    pub async fn forget_job_upload(&self, id: &RunId) -> Result<()> {
        on_pool!(self, p => sqlx::query("UPDATE jobs SET upload_path = NULL WHERE id = $1")
            .bind(id.as_str())
            .execute(p)
            .await?
            .rows_affected());
        Ok(())
    }

    /// Events a run stored, counted by type, rule and class.
    pub async fn event_counts(&self, run: &RunId) -> Result<Vec<EventCount>> {
        let rows: Vec<(String, String, Option<String>, i64)> = on_pool!(self, p => sqlx::query_as(
            "SELECT type, rule, class, COUNT(*) FROM events WHERE run_id = $1 \
             GROUP BY type, rule, class ORDER BY type, rule, class")
            .bind(run.as_str())
            .fetch_all(p)
            .await?);
        Ok(rows
            .into_iter()
            .map(|(kind, rule, class, n)| EventCount {
                kind,
                rule,
                class,
                count: u64::try_from(n).unwrap_or(0),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn progress_from_stats() {
        let stats = json!({"frames_in": 50, "fps": 25.0, "position_s": 2.0,
            "duration_s": 8.0, "source_fps": 25.0, "uptime_s": 1.0});
        let p = JobProgress::of(JobState::Running, &stats);
        assert_eq!(p.total_frames, Some(200));
        assert_eq!(p.fraction, Some(0.25));
        assert_eq!(p.eta_s, Some(6.0));
        assert_eq!(p.x_realtime, Some(2.0));
        let done = JobProgress::of(JobState::Completed, &stats);
        assert_eq!(done.fraction, Some(1.0));
        assert_eq!(done.total_frames, Some(50));
        assert_eq!(done.eta_s, None);
        let empty = JobProgress::of(JobState::Queued, &json!({}));
        assert_eq!(empty.frames_done, 0);
        assert_eq!(empty.fraction, None);
    }
}
