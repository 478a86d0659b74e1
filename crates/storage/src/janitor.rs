//! The janitor: one task per worker that keeps the media store and the database within
//! their limits.
//!
//! - **Retention** (every `janitor_interval_s`): events, pictures and recording segments
//!   older than their age (the server's `[retention]`, overridden per pipeline by
//!   `[media.retention]`) are deleted in batches of `delete_batch`, with a pause between
//!   batches so the database and the disk are never monopolised; media of deleted runs is
//!   swept too.
//! - **Disk survival mode** (every `usage_check_s`, and at once when a write finds the disk
//!   full): past the high-water mark the oldest media goes first, whatever its age, until
//!   usage is under the low-water mark ([`crate::plan`]). Open segments are never touched,
//!   so the current moment is always recorded.
//!
//! Index rows are claimed before their objects are deleted (`DELETE … RETURNING`), so
//! several workers on one PostgreSQL never delete the same object twice, and one worker's
//! survival mode on its local disk only deletes media on that disk (rows carry a volume).

use crate::backend::MediaStore;
use crate::plan::{SurvivalState, Usage, Watermarks, cutoff_ms, oldest_first};
use crate::telemetry;
use sightline_config::{PipelineConfig, Retention, RetentionOverride};
use sightline_core::RunId;
use sightline_store::{MediaClass, MediaItem, RunScope, Store};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// How the janitor behaves (from `[media]` and `[retention]`).
#[derive(Debug, Clone)]
pub struct JanitorOptions {
    pub retention: Retention,
    pub watermarks: Watermarks,
    pub interval: Duration,
    pub usage_check: Duration,
    pub batch: u32,
    pub pause: Duration,
    /// An open segment whose writer has not heartbeated for this long is abandoned.
    pub stale_writer: Duration,
}

impl JanitorOptions {
    pub fn from_config(media: &sightline_config::MediaSettings, retention: &Retention) -> Self {
        JanitorOptions {
            retention: retention.clone(),
            watermarks: Watermarks {
                high_pct: media.high_water_pct,
                low_pct: media.low_water_pct,
                budget_bytes: media.budget_bytes,
            },
            interval: Duration::from_secs_f64(media.janitor_interval_s),
            usage_check: Duration::from_secs_f64(media.usage_check_s),
            batch: media.delete_batch,
            pause: Duration::from_millis(media.delete_pause_ms),
            stale_writer: Duration::from_secs(60),
        }
    }
}

/// What the janitor shows to `/ready`, metrics and the dashboard.
#[derive(Debug, Default)]
pub struct JanitorStatus {
    survival: AtomicBool,
    /// Percent × 100 of the volume in use (u64::MAX = unknown).
    used_pct_x100: AtomicU64,
    media_bytes: AtomicU64,
    pub deleted_items: AtomicU64,
    pub deleted_bytes: AtomicU64,
}

/// A snapshot of [`JanitorStatus`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct MediaHealth {
    /// Disk survival mode is on: the oldest media is being deleted ahead of retention.
    pub survival: bool,
    /// Percent of the media volume in use (local volumes).
    pub used_pct: Option<f64>,
    /// Bytes of media indexed on this volume.
    pub media_bytes: u64,
}

impl JanitorStatus {
    pub fn health(&self) -> MediaHealth {
        let p = self.used_pct_x100.load(Ordering::Relaxed);
        MediaHealth {
            survival: self.survival.load(Ordering::Relaxed),
            used_pct: (p != u64::MAX && p != 0).then(|| p as f64 / 100.0),
            media_bytes: self.media_bytes.load(Ordering::Relaxed),
        }
    }
}

/// The janitor task.
pub struct Janitor {
    store: Store,
    media: Arc<MediaStore>,
    opts: JanitorOptions,
    wake: Arc<Notify>,
    status: Arc<JanitorStatus>,
    survival: parking_lot::Mutex<SurvivalState>,
}

impl Janitor {
    pub fn new(store: Store, media: Arc<MediaStore>, opts: JanitorOptions) -> Janitor {
        Janitor {
            store,
            media,
            opts,
            wake: Arc::new(Notify::new()),
            status: Arc::new(JanitorStatus::default()),
            survival: parking_lot::Mutex::new(SurvivalState::default()),
        }
    }

    /// Wakes the survival check now (a write found the disk full).
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    pub fn status(&self) -> Arc<JanitorStatus> {
        self.status.clone()
    }

    /// Runs until `shutdown` resolves.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut retention = tokio::time::interval(self.opts.interval);
        retention.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut usage = tokio::time::interval(self.opts.usage_check);
        usage.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = retention.tick() => {
                    if let Err(e) = self.retention_pass().await {
                        tracing::warn!(error = %e, "retention pass failed; retried next interval");
                    }
                }
                _ = usage.tick() => self.survival_check().await,
                _ = self.wake.notified() => self.survival_check().await,
            }
        }
    }

    fn now_ms() -> i64 {
        chrono::Utc::now().timestamp_millis()
    }

    /// One retention pass over every kind; returns the items deleted.
    pub async fn retention_pass(&self) -> Result<u64, crate::MediaError> {
        let started = Instant::now();
        let now = Self::now_ms();
        let stale = now - self.opts.stale_writer.as_millis() as i64;
        let n = self.store.abandon_stale_recordings(stale).await?;
        if n > 0 {
            tracing::warn!(
                segments = n,
                "open segments of a dead writer marked abandoned"
            );
        }
        let overrides = self.run_overrides().await?;
        let base = &self.opts.retention;
        let except: Vec<RunId> = overrides.keys().cloned().collect();
        let mut scopes: Vec<(RunScope, Retention)> = vec![(RunScope::Except(except), base.clone())];
        for (run, o) in &overrides {
            scopes.push((RunScope::Only(run.clone()), o.apply(base)));
        }
        let mut total = 0u64;
        for (scope, r) in &scopes {
            if let Some(cut) = cutoff_ms(now, r.events_days) {
                total += self.delete_events(cut, scope).await?;
            }
            if let Some(cut) = cutoff_ms(now, r.pictures_days) {
                total += self.delete_older(MediaClass::Picture, cut, scope).await?;
            }
            if let Some(cut) = cutoff_ms(now, r.recordings_days) {
                total += self.delete_older(MediaClass::Segment, cut, scope).await?;
            }
        }
        loop {
            let orphans = self.store.claim_orphan_media(self.opts.batch).await?;
            if orphans.is_empty() {
                break;
            }
            total += self.delete_objects(&orphans, "orphan").await;
            tokio::time::sleep(self.opts.pause).await;
        }
        tracing::debug!(
            deleted = total,
            took_ms = started.elapsed().as_millis() as u64,
            "retention pass"
        );
        Ok(total)
    }

    /// Runs with a pipeline-level retention override, read from their config versions.
    async fn run_overrides(&self) -> Result<HashMap<RunId, RetentionOverride>, crate::MediaError> {
        let mut cache: HashMap<(String, i64), Option<RetentionOverride>> = HashMap::new();
        let mut out = HashMap::new();
        for (run, name, version) in self.store.run_config_versions().await? {
            let key = (name.clone(), version);
            if !cache.contains_key(&key) {
                let o = match self.store.get_config(&name, Some(version)).await {
                    Ok(c) => PipelineConfig::from_json(&c.body.to_string())
                        .ok()
                        .map(|p| p.media.retention)
                        .filter(|r| !r.is_empty()),
                    Err(_) => None,
                };
                cache.insert(key.clone(), o);
            }
            if let Some(Some(o)) = cache.get(&key) {
                out.insert(run, o.clone());
            }
        }
        Ok(out)
    }

    async fn delete_events(&self, cut: i64, scope: &RunScope) -> Result<u64, crate::MediaError> {
        let mut total = 0;
        loop {
            let n = self
                .store
                .delete_events_batch(cut, scope, i64::from(self.opts.batch))
                .await?;
            total += n;
            telemetry::deleted("events", "retention", n, 0);
            if n < u64::from(self.opts.batch) {
                break;
            }
            tokio::time::sleep(self.opts.pause).await;
        }
        Ok(total)
    }

    async fn delete_older(
        &self,
        class: MediaClass,
        cut: i64,
        scope: &RunScope,
    ) -> Result<u64, crate::MediaError> {
        let mut total = 0;
        loop {
            let items = self
                .store
                .claim_media_older_than(class, cut, scope, self.opts.batch)
                .await?;
            let n = items.len();
            total += self.delete_objects(&items, "retention").await;
            if n < self.opts.batch as usize {
                break;
            }
            tokio::time::sleep(self.opts.pause).await;
        }
        Ok(total)
    }

    /// Deletes the objects of claimed rows; returns how many.
    async fn delete_objects(&self, items: &[MediaItem], why: &'static str) -> u64 {
        let mut by_class: HashMap<MediaClass, (u64, u64)> = HashMap::new();
        for it in items {
            if let Err(e) = self.media.delete(&it.key).await {
                // The row is gone; the object would be an orphan file. Logged, not fatal.
                tracing::warn!(key = it.key, error = %e, "media object not deleted");
            }
            let e = by_class.entry(it.class).or_default();
            e.0 += 1;
            e.1 += it.bytes;
        }
        for (class, (n, b)) in by_class {
            telemetry::deleted(class.as_str(), why, n, b);
            self.status.deleted_items.fetch_add(n, Ordering::Relaxed);
            self.status.deleted_bytes.fetch_add(b, Ordering::Relaxed);
        }
        items.len() as u64
    }

    async fn usage(&self) -> Result<Usage, crate::MediaError> {
        let m = self.store.media_usage(self.media.volume()).await?;
        let disk = self.media.disk_usage();
        let u = Usage {
            disk_total: disk.map(|d| d.0),
            disk_used: disk.map(|d| d.1),
            media_bytes: m.bytes(),
        };
        telemetry::usage(&m, Self::now_ms(), u.disk_pct());
        self.status.used_pct_x100.store(
            u.disk_pct().map_or(u64::MAX, |p| (p * 100.0) as u64),
            Ordering::Relaxed,
        );
        self.status
            .media_bytes
            .store(u.media_bytes, Ordering::Relaxed);
        Ok(u)
    }

    /// Checks usage and, past the high-water mark, deletes the oldest media until under the
    /// low-water mark.
    pub async fn survival_check(&self) {
        if let Err(e) = self.survive().await {
            tracing::warn!(error = %e, "disk usage check failed");
        }
    }

    async fn survive(&self) -> Result<(), crate::MediaError> {
        let w = self.opts.watermarks;
        let mut u = self.usage().await?;
        let mut state = *self.survival.lock();
        let was = state.active();
        let mut need = w.bytes_to_free(&u, &mut state);
        let started = need > 0;
        if started && !was {
            telemetry::survival(true, u.disk_pct(), u.media_bytes, need);
        }
        self.status
            .survival
            .store(state.active(), Ordering::Relaxed);
        while need > 0 {
            let candidates = self
                .store
                .oldest_media(self.media.volume(), self.opts.batch)
                .await?;
            if candidates.is_empty() {
                tracing::error!(
                    disk_pct = u.disk_pct(),
                    "disk survival mode: no deletable media left (only the current segments); \
                     the volume is full of other data"
                );
                break;
            }
            let victims = oldest_first(candidates, need);
            let mut claimed = Vec::new();
            for class in [MediaClass::Picture, MediaClass::Segment] {
                let keys: Vec<String> = victims
                    .iter()
                    .filter(|v| v.class == class)
                    .map(|v| v.key.clone())
                    .collect();
                claimed.extend(self.store.claim_media(class, &keys).await?);
            }
            self.delete_objects(&claimed, "survival").await;
            u = self.usage().await?;
            need = w.bytes_to_free(&u, &mut state);
            if need > 0 {
                tokio::time::sleep(self.opts.pause).await;
            }
        }
        if (was || started) && !state.active() {
            telemetry::survival(false, u.disk_pct(), u.media_bytes, 0);
        }
        *self.survival.lock() = state;
        self.status
            .survival
            .store(state.active(), Ordering::Relaxed);
        telemetry::survival_state(state.active());
        Ok(())
    }
}
