//! The media index: one row per stored picture (`media_objects`) and per recording segment
//! (`recordings`), so that retention and disk survival mode can find the oldest media and
//! its size without listing the object store, and the API can find the segments of a time
//! range. The objects themselves are written and deleted by `sightline-storage`.
//!
//! Deletions are claimed with `DELETE … RETURNING`: when several workers' janitors delete
//! from one PostgreSQL at once, each row (and so each object) is claimed by exactly one of
//! them. Open segments — the current moment of some worker — are never returned as
//! deletable.

use crate::codec::corrupt;
use crate::error::{CorruptRow, Result, StoreError};
use crate::page::{Page, clamp_limit, paginate};
use crate::store::{Backend, Store, on_pool};
use sightline_core::{EventId, PictureKind, RunId};
use uuid::Uuid;

/// A picture just written to the media store.
#[derive(Debug, Clone)]
pub struct NewMediaObject {
    pub key: String,
    pub volume: String,
    pub run_id: RunId,
    pub event_id: Option<EventId>,
    pub kind: PictureKind,
    pub bytes: u64,
    pub width: u32,
    pub height: u32,
}

/// What the janitor deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaClass {
    Picture,
    Segment,
}

impl MediaClass {
    pub fn as_str(self) -> &'static str {
        match self {
            MediaClass::Picture => "pictures",
            MediaClass::Segment => "recordings",
        }
    }
}

/// A deletable stored object, as the janitor sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaItem {
    pub class: MediaClass,
    pub key: String,
    pub bytes: u64,
    /// Creation (pictures) or start (segments) time, ms since the epoch.
    pub at_ms: i64,
}

/// Which runs a retention statement applies to.
#[derive(Debug, Clone)]
pub enum RunScope {
    All,
    Only(RunId),
    /// Every run but these (the ones with their own retention).
    Except(Vec<RunId>),
}

/// A recording segment.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Recording {
    pub id: Uuid,
    pub run_id: RunId,
    pub volume: String,
    pub key: String,
    pub worker: String,
    /// `open` (being written), `closed` (finalised) or `abandoned` (its writer died).
    pub state: String,
    pub start_wall_ms: i64,
    pub end_wall_ms: Option<i64>,
    pub start_pts_ns: i64,
    pub end_pts_ns: Option<i64>,
    pub bytes: u64,
}

/// A segment that has just been opened.
#[derive(Debug, Clone)]
pub struct NewRecording {
    pub id: Uuid,
    pub run_id: RunId,
    pub volume: String,
    pub key: String,
    pub worker: String,
    pub start_wall_ms: i64,
    pub start_pts_ns: i64,
}

/// Filters of [`Store::list_recordings`]: segments of `run` overlapping `[since, until)`.
#[derive(Debug, Clone, Default)]
pub struct RecordingQuery {
    pub run: Option<RunId>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    /// Only finalised segments (what a clip can be cut from).
    pub closed_only: bool,
    pub cursor: Option<String>,
    pub limit: u32,
}

/// Bytes and count of the media on one volume.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MediaUsage {
    pub pictures: u64,
    pub picture_bytes: u64,
    pub segments: u64,
    pub segment_bytes: u64,
    /// Oldest picture / segment start, ms since the epoch.
    pub oldest_picture_ms: Option<i64>,
    pub oldest_segment_ms: Option<i64>,
}

impl MediaUsage {
    pub fn bytes(&self) -> u64 {
        self.picture_bytes + self.segment_bytes
    }
}

#[derive(sqlx::FromRow)]
struct RecordingRow {
    id: Uuid,
    run_id: String,
    volume: String,
    key: String,
    worker: String,
    state: String,
    start_wall_ms: i64,
    end_wall_ms: Option<i64>,
    start_pts_ns: i64,
    end_pts_ns: Option<i64>,
    bytes: i64,
}

macro_rules! rec_cols {
    () => {
        "id, run_id, volume, key, worker, state, start_wall_ms, end_wall_ms, start_pts_ns, \
         end_pts_ns, bytes"
    };
}
const REC_COLS: &str = rec_cols!();

impl RecordingRow {
    fn decode(self) -> std::result::Result<Recording, CorruptRow> {
        let k = self.id.to_string();
        Ok(Recording {
            id: self.id,
            run_id: RunId::parse(&self.run_id).map_err(|e| corrupt("recordings", &k, e))?,
            volume: self.volume,
            key: self.key,
            worker: self.worker,
            state: self.state,
            start_wall_ms: self.start_wall_ms,
            end_wall_ms: self.end_wall_ms,
            start_pts_ns: self.start_pts_ns,
            end_pts_ns: self.end_pts_ns,
            bytes: u64::try_from(self.bytes).unwrap_or(0),
        })
    }
}

fn to_i64(field: &'static str, v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| StoreError::invalid(field, "exceeds the stored range"))
}

/// Pushes ` AND run_id …` for `scope`.
pub(crate) fn push_scope<DB: sqlx::Database>(qb: &mut sqlx::QueryBuilder<DB>, scope: &RunScope)
where
    String: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    match scope {
        RunScope::All => {}
        RunScope::Only(r) => {
            qb.push(" AND run_id = ").push_bind(r.as_str().to_owned());
        }
        RunScope::Except(list) if list.is_empty() => {}
        RunScope::Except(list) => {
            qb.push(" AND run_id NOT IN (");
            let mut sep = qb.separated(", ");
            for r in list {
                sep.push_bind(r.as_str().to_owned());
            }
            qb.push(")");
        }
    }
}

impl Store {
    /// Indexes a picture (a key written twice keeps the latest size).
    pub async fn insert_media_object(&self, o: &NewMediaObject) -> Result<()> {
        let now = self.now_ms();
        let bytes = to_i64("bytes", o.bytes)?;
        on_pool!(self, p => sqlx::query(
            "INSERT INTO media_objects (key, volume, run_id, event_id, kind, bytes, width, height, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (key) DO UPDATE SET bytes = excluded.bytes")
            .bind(&o.key)
            .bind(&o.volume)
            .bind(o.run_id.as_str())
            .bind(o.event_id.map(|e| e.0))
            .bind(o.kind.as_str())
            .bind(bytes)
            .bind(i64::from(o.width))
            .bind(i64::from(o.height))
            .bind(now)
            .execute(p)
            .await?
            .rows_affected());
        Ok(())
    }

    /// Removes one picture from an event's `media` (its write failed for good), so the event
    /// never points at a picture that does not exist. Returns whether the event was found.
    pub async fn clear_event_picture(&self, event: EventId, kind: PictureKind) -> Result<bool> {
        let n = match self.backend() {
            Backend::Sqlite => on_pool!(self, p => sqlx::query(
                "UPDATE events SET payload = json_remove(payload, '$.media.' || $1) WHERE id = $2")
                .bind(kind.as_str())
                .bind(event.0)
                .execute(p)
                .await?
                .rows_affected()),
            Backend::Postgres => on_pool!(self, p => sqlx::query(
                "UPDATE events SET payload = payload #- ARRAY['media', $1::text] WHERE id = $2")
                .bind(kind.as_str())
                .bind(event.0)
                .execute(p)
                .await?
                .rows_affected()),
        };
        Ok(n > 0)
    }

    /// The oldest deletable media on `volume`: pictures, and segments that are no longer
    /// being written, each list oldest first (at most `limit` of each).
    pub async fn oldest_media(&self, volume: &str, limit: u32) -> Result<Vec<MediaItem>> {
        let limit = i64::from(limit.max(1));
        let pics: Vec<(String, i64, i64)> = on_pool!(self, p => sqlx::query_as(
            "SELECT key, bytes, created_at FROM media_objects WHERE volume = $1 \
             ORDER BY created_at, key LIMIT $2")
            .bind(volume)
            .bind(limit)
            .fetch_all(p)
            .await?);
        let segs: Vec<(String, i64, i64)> = on_pool!(self, p => sqlx::query_as(
            "SELECT key, bytes, start_wall_ms FROM recordings WHERE volume = $1 \
             AND state <> 'open' ORDER BY start_wall_ms, key LIMIT $2")
            .bind(volume)
            .bind(limit)
            .fetch_all(p)
            .await?);
        let item = |class| {
            move |(key, bytes, at_ms): (String, i64, i64)| MediaItem {
                class,
                key,
                bytes: u64::try_from(bytes).unwrap_or(0),
                at_ms,
            }
        };
        Ok(pics
            .into_iter()
            .map(item(MediaClass::Picture))
            .chain(segs.into_iter().map(item(MediaClass::Segment)))
            .collect())
    }

    /// Claims (deletes) the index rows of `keys` of `class`; returns the rows this call
    /// removed. The caller deletes those objects; a key another worker claimed first is not
    /// returned.
    pub async fn claim_media(&self, class: MediaClass, keys: &[String]) -> Result<Vec<MediaItem>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let (table, at) = match class {
            MediaClass::Picture => ("media_objects", "created_at"),
            MediaClass::Segment => ("recordings", "start_wall_ms"),
        };
        let mut out = Vec::new();
        for chunk in keys.chunks(500) {
            let rows: Vec<(String, i64, i64)> = on_pool!(self, p => {
                let mut qb = sqlx::QueryBuilder::new(format!("DELETE FROM {table} WHERE key IN ("));
                let mut sep = qb.separated(", ");
                for k in chunk {
                    sep.push_bind(k.as_str());
                }
                qb.push(")");
                if class == MediaClass::Segment {
                    qb.push(" AND state <> 'open'");
                }
                qb.push(format!(" RETURNING key, bytes, {at}"));
                qb.build_query_as::<(String, i64, i64)>().fetch_all(p).await?
            });
            out.extend(rows.into_iter().map(|(key, bytes, at_ms)| MediaItem {
                class,
                key,
                bytes: u64::try_from(bytes).unwrap_or(0),
                at_ms,
            }));
        }
        Ok(out)
    }

    /// Claims up to `limit` items of `class` older than `before_ms` for the runs in `scope`
    /// (retention): the rows are deleted and returned, oldest first.
    pub async fn claim_media_older_than(
        &self,
        class: MediaClass,
        before_ms: i64,
        scope: &RunScope,
        limit: u32,
    ) -> Result<Vec<MediaItem>> {
        let limit = i64::from(limit.max(1));
        let keys: Vec<String> = match class {
            MediaClass::Picture => on_pool!(self, p => {
                let mut qb = sqlx::QueryBuilder::new(
                    "SELECT key FROM media_objects WHERE created_at < ");
                qb.push_bind(before_ms);
                push_scope(&mut qb, scope);
                qb.push(" ORDER BY created_at LIMIT ").push_bind(limit);
                qb.build_query_scalar::<String>().fetch_all(p).await?
            }),
            MediaClass::Segment => on_pool!(self, p => {
                // A segment is as old as its end; an abandoned one (no end) by its start.
                let mut qb = sqlx::QueryBuilder::new(
                    "SELECT key FROM recordings WHERE state <> 'open' AND \
                     COALESCE(end_wall_ms, start_wall_ms) < ");
                qb.push_bind(before_ms);
                push_scope(&mut qb, scope);
                qb.push(" ORDER BY start_wall_ms LIMIT ").push_bind(limit);
                qb.build_query_scalar::<String>().fetch_all(p).await?
            }),
        };
        let mut items = self.claim_media(class, &keys).await?;
        items.sort_by_key(|i| i.at_ms);
        Ok(items)
    }

    /// Claims up to `limit` pictures and closed segments whose run no longer exists.
    pub async fn claim_orphan_media(&self, limit: u32) -> Result<Vec<MediaItem>> {
        let limit = i64::from(limit.max(1));
        let pics: Vec<String> = on_pool!(self, p => sqlx::query_scalar(
            "SELECT key FROM media_objects m WHERE NOT EXISTS \
             (SELECT 1 FROM runs r WHERE r.id = m.run_id) LIMIT $1")
            .bind(limit)
            .fetch_all(p)
            .await?);
        let segs: Vec<String> = on_pool!(self, p => sqlx::query_scalar(
            "SELECT key FROM recordings m WHERE state <> 'open' AND NOT EXISTS \
             (SELECT 1 FROM runs r WHERE r.id = m.run_id) LIMIT $1")
            .bind(limit)
            .fetch_all(p)
            .await?);
        let mut out = self.claim_media(MediaClass::Picture, &pics).await?;
        out.extend(self.claim_media(MediaClass::Segment, &segs).await?);
        Ok(out)
    }

    /// Counts and bytes of the media indexed on `volume`.
    pub async fn media_usage(&self, volume: &str) -> Result<MediaUsage> {
        let (pn, pb, po): (i64, Option<i64>, Option<i64>) = on_pool!(self, p => sqlx::query_as(
            "SELECT COUNT(*), CAST(SUM(bytes) AS BIGINT), MIN(created_at) FROM media_objects \
             WHERE volume = $1")
            .bind(volume)
            .fetch_one(p)
            .await?);
        let (sn, sb, so): (i64, Option<i64>, Option<i64>) = on_pool!(self, p => sqlx::query_as(
            "SELECT COUNT(*), CAST(SUM(bytes) AS BIGINT), MIN(start_wall_ms) FROM recordings \
             WHERE volume = $1")
            .bind(volume)
            .fetch_one(p)
            .await?);
        let u = |v: i64| u64::try_from(v).unwrap_or(0);
        Ok(MediaUsage {
            pictures: u(pn),
            picture_bytes: u(pb.unwrap_or(0)),
            segments: u(sn),
            segment_bytes: u(sb.unwrap_or(0)),
            oldest_picture_ms: po,
            oldest_segment_ms: so,
        })
    }

    /// Indexes a segment that has just been opened (state `open`).
    pub async fn open_recording(&self, r: &NewRecording) -> Result<()> {
        let now = self.now_ms();
        on_pool!(self, p => sqlx::query(
            "INSERT INTO recordings (id, run_id, volume, key, worker, state, start_wall_ms, \
             start_pts_ns, created_at) VALUES ($1, $2, $3, $4, $5, 'open', $6, $7, $8)")
            .bind(r.id)
            .bind(r.run_id.as_str())
            .bind(&r.volume)
            .bind(&r.key)
            .bind(&r.worker)
            .bind(r.start_wall_ms)
            .bind(r.start_pts_ns)
            .bind(now)
            .execute(p)
            .await?
            .rows_affected());
        Ok(())
    }

    /// Marks a segment finalised (or, with `state = "abandoned"`, given up).
    pub async fn close_recording(
        &self,
        id: Uuid,
        state: &str,
        end_wall_ms: i64,
        end_pts_ns: i64,
        bytes: u64,
    ) -> Result<()> {
        let bytes = to_i64("bytes", bytes)?;
        let n = on_pool!(self, p => sqlx::query(
            "UPDATE recordings SET state = $2, end_wall_ms = $3, end_pts_ns = $4, bytes = $5 \
             WHERE id = $1")
            .bind(id)
            .bind(state)
            .bind(end_wall_ms)
            .bind(end_pts_ns)
            .bind(bytes)
            .execute(p)
            .await?
            .rows_affected());
        if n == 0 {
            return Err(StoreError::not_found("recording", id.to_string()));
        }
        Ok(())
    }

    /// Segments left `open` by a writer that died become `abandoned` (deletable, never
    /// clipped): open, created before `stale_ms`, and their worker has not heartbeated
    /// since `stale_ms` (or is gone from the worker registry).
    pub async fn abandon_stale_recordings(&self, stale_ms: i64) -> Result<u64> {
        Ok(on_pool!(self, p => sqlx::query(
            "UPDATE recordings SET state = 'abandoned' WHERE state = 'open' AND created_at < $1 \
             AND worker NOT IN (SELECT id FROM workers WHERE heartbeat_at >= $1)")
            .bind(stale_ms)
            .execute(p)
            .await?
            .rows_affected()))
    }

    pub async fn get_recording(&self, id: Uuid) -> Result<Recording> {
        let row: Option<RecordingRow> = on_pool!(self, p => sqlx::query_as(
            concat!("SELECT ", rec_cols!(), " FROM recordings WHERE id = $1"))
            .bind(id)
            .fetch_optional(p)
            .await?);
        match row {
            Some(r) => Ok(r.decode()?),
            None => Err(StoreError::not_found("recording", id.to_string())),
        }
    }

    /// Segments overlapping `[since, until)`, in start order, one page at a time.
    pub async fn list_recordings(&self, q: &RecordingQuery) -> Result<Page<Recording>> {
        let limit = clamp_limit(q.limit);
        let cursor = q
            .cursor
            .as_deref()
            .map(|c| {
                let (t, id) = c
                    .split_once('_')
                    .ok_or_else(|| StoreError::invalid("cursor", "not a recording cursor"))?;
                let t: i64 = t
                    .parse()
                    .map_err(|_| StoreError::invalid("cursor", "not a recording cursor"))?;
                let id = Uuid::parse_str(id)
                    .map_err(|_| StoreError::invalid("cursor", "not a recording cursor"))?;
                Ok::<_, StoreError>((t, id))
            })
            .transpose()?;
        let rows: Vec<RecordingRow> = on_pool!(self, p => {
            let mut qb = sqlx::QueryBuilder::new(format!(
                "SELECT {REC_COLS} FROM recordings WHERE 1 = 1"));
            if let Some(r) = &q.run {
                qb.push(" AND run_id = ").push_bind(r.as_str().to_owned());
            }
            if let Some(s) = q.since_ms {
                // Overlap: the segment ends after `since` (an open one has no end yet).
                qb.push(" AND (end_wall_ms IS NULL OR end_wall_ms > ").push_bind(s).push(")");
            }
            if let Some(u) = q.until_ms {
                qb.push(" AND start_wall_ms < ").push_bind(u);
            }
            if q.closed_only {
                qb.push(" AND state = 'closed'");
            }
            if let Some((t, id)) = cursor {
                qb.push(" AND (start_wall_ms > ").push_bind(t)
                    .push(" OR (start_wall_ms = ").push_bind(t)
                    .push(" AND id > ").push_bind(id).push("))");
            }
            qb.push(" ORDER BY start_wall_ms, id LIMIT ").push_bind(i64::from(limit) + 1);
            qb.build_query_as::<RecordingRow>().fetch_all(p).await?
        });
        Ok(paginate(
            rows,
            limit,
            |r| format!("{}_{}", r.start_wall_ms, r.id),
            RecordingRow::decode,
        ))
    }

    /// Every run with the config version it uses (the janitor reads their retention).
    pub async fn run_config_versions(&self) -> Result<Vec<(RunId, String, i64)>> {
        let rows: Vec<(String, String, i64)> = on_pool!(self, p => sqlx::query_as(
            "SELECT id, config_name, config_version FROM runs ORDER BY id")
            .fetch_all(p)
            .await?);
        Ok(rows
            .into_iter()
            .filter_map(|(id, n, v)| RunId::parse(&id).ok().map(|r| (r, n, v)))
            .collect())
    }
}
