//! The picture writer: event pictures are cut on the run thread (a memcpy of the crop, or of
//! the frame for a snapshot), then handed to this writer through a bounded queue; one
//! `media-pictures` thread encodes them to JPEG, writes them to the media store and indexes
//! them. A slow or unreachable store never slows a pipeline: when the queue is full the
//! picture is dropped and counted (`queue_full`), never the event; a write that keeps
//! failing for `write_timeout` is dropped (`write_failed`) and its event stops pointing at
//! it. Writes resume by themselves when the store comes back.

use crate::backend::MediaStore;
use crate::error::MediaError;
use crate::telemetry;
use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use image::ExtendedColorType;
use image::codecs::jpeg::JpegEncoder;
use sightline_core::{EventId, PictureKind, RunId};
use sightline_store::{NewMediaObject, Store};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// One picture to encode and store.
#[derive(Debug)]
pub struct PictureJob {
    pub run_id: RunId,
    pub event_id: EventId,
    pub kind: PictureKind,
    pub key: String,
    /// Size of `rgb` (packed RGB24).
    pub width: u32,
    pub height: u32,
    pub rgb: Vec<u8>,
    pub quality: u8,
    /// Longest side of the stored picture (scaled down if larger).
    pub max_size: u32,
}

/// Size of a `width`×`height` picture once its longest side is at most `max_size`.
pub fn scaled_size(width: u32, height: u32, max_size: u32) -> (u32, u32) {
    let long = width.max(height);
    if long <= max_size || max_size == 0 {
        return (width, height);
    }
    let s = max_size as f64 / long as f64;
    (
        ((width as f64 * s).round() as u32).max(1),
        ((height as f64 * s).round() as u32).max(1),
    )
}

/// Encodes a picture as a baseline JPEG, scaled to fit `max_size`.
pub fn encode_jpeg(
    rgb: &[u8],
    width: u32,
    height: u32,
    quality: u8,
    max_size: u32,
) -> Result<Vec<u8>, MediaError> {
    let (w, h) = scaled_size(width, height, max_size);
    let scaled;
    let (data, w, h) = if (w, h) != (width, height) {
        let img = image::RgbImage::from_raw(width, height, rgb.to_vec())
            .ok_or_else(|| MediaError::Invalid("picture buffer does not match its size".into()))?;
        scaled = image::imageops::resize(&img, w, h, image::imageops::FilterType::Triangle);
        (scaled.as_raw().as_slice(), w, h)
    } else {
        (rgb, width, height)
    };
    let mut out = Vec::with_capacity(data.len() / 8 + 1024);
    JpegEncoder::new_with_quality(&mut out, quality.clamp(1, 100))
        .encode(data, w, h, ExtendedColorType::Rgb8)
        .map_err(|e| MediaError::Invalid(format!("jpeg encode: {e}")))?;
    Ok(out)
}

/// How the writer behaves.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// Pictures waiting; beyond this new pictures are dropped.
    pub queue: usize,
    /// How long one write is retried before the picture is dropped.
    pub write_timeout: Duration,
    /// Base of the picture URLs (`http://host:port`).
    pub public_base: String,
}

/// Counters of the writer.
#[derive(Debug, Default)]
pub struct WriterStats {
    pub written: AtomicU64,
    pub bytes: AtomicU64,
    pub dropped_queue_full: AtomicU64,
    pub dropped_write_failed: AtomicU64,
    /// Sum of encode and write time, microseconds (cost per picture = sum / written).
    pub encode_us: AtomicU64,
    pub write_us: AtomicU64,
}

/// Handle to the writer thread: cheap to clone, one per run.
#[derive(Clone)]
pub struct PictureWriter {
    tx: Sender<PictureJob>,
    stats: Arc<WriterStats>,
    public_base: Arc<str>,
}

impl std::fmt::Debug for PictureWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PictureWriter")
            .field("queued", &self.tx.len())
            .finish_non_exhaustive()
    }
}

impl PictureWriter {
    /// Starts the writer thread. It ends when every handle is dropped and the queue is
    /// drained; join the returned handle to wait for that.
    pub fn start(
        store: Store,
        media: Arc<MediaStore>,
        opts: WriterOptions,
        rt: tokio::runtime::Handle,
        on_full: Arc<dyn Fn() + Send + Sync>,
    ) -> std::io::Result<(PictureWriter, std::thread::JoinHandle<()>)> {
        let (tx, rx) = crossbeam_channel::bounded(opts.queue.max(1));
        let stats = Arc::new(WriterStats::default());
        let worker = Worker {
            store,
            media,
            rt,
            stats: stats.clone(),
            write_timeout: opts.write_timeout,
            on_full,
        };
        let join = std::thread::Builder::new()
            .name("media-pictures".into())
            .spawn(move || worker.run(rx))?;
        Ok((
            PictureWriter {
                tx,
                stats,
                public_base: opts.public_base.into(),
            },
            join,
        ))
    }

    /// Queues a picture. `false`: the queue was full and the picture is dropped (counted).
    pub fn submit(&self, job: PictureJob) -> bool {
        match self.tx.try_send(job) {
            Ok(()) => {
                telemetry::queue_depth(self.tx.len());
                true
            }
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.stats
                    .dropped_queue_full
                    .fetch_add(1, Ordering::Relaxed);
                telemetry::PictureDropped {
                    reason: "queue_full",
                }
                .emit();
                false
            }
        }
    }

    /// URL of an event's picture.
    pub fn url(&self, event: EventId, kind: PictureKind) -> String {
        crate::keys::picture_url(&self.public_base, event, kind)
    }

    pub fn stats(&self) -> &Arc<WriterStats> {
        &self.stats
    }

    /// Pictures waiting to be written.
    pub fn queued(&self) -> usize {
        self.tx.len()
    }
}

struct Worker {
    store: Store,
    media: Arc<MediaStore>,
    rt: tokio::runtime::Handle,
    stats: Arc<WriterStats>,
    write_timeout: Duration,
    on_full: Arc<dyn Fn() + Send + Sync>,
}

impl Worker {
    fn run(self, rx: Receiver<PictureJob>) {
        while let Ok(job) = rx.recv() {
            self.handle(job);
            telemetry::queue_depth(rx.len());
        }
        tracing::debug!("picture writer stopped");
    }

    fn handle(&self, job: PictureJob) {
        let t0 = Instant::now();
        let jpeg = match encode_jpeg(&job.rgb, job.width, job.height, job.quality, job.max_size) {
            Ok(j) => j,
            Err(e) => {
                tracing::warn!(key = %job.key, error = %e, "picture not encoded");
                self.give_up(&job, "encode_failed");
                return;
            }
        };
        let encoded = t0.elapsed();
        let (w, h) = scaled_size(job.width, job.height, job.max_size);
        let len = jpeg.len() as u64;
        let bytes = Bytes::from(jpeg);
        let t1 = Instant::now();
        let deadline = t1 + self.write_timeout;
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.rt.block_on(self.media.put(&job.key, bytes.clone())) {
                Ok(()) => break,
                Err(e) => {
                    if matches!(e, MediaError::Full { .. }) {
                        (self.on_full)();
                    }
                    if Instant::now() + backoff > deadline {
                        tracing::warn!(key = %job.key, error = %e, "picture dropped: the media store kept failing");
                        self.give_up(&job, "write_failed");
                        return;
                    }
                    tracing::debug!(key = %job.key, error = %e, "picture write failed; retrying");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
        let written = t1.elapsed();
        let obj = NewMediaObject {
            key: job.key.clone(),
            volume: self.media.volume().to_owned(),
            run_id: job.run_id.clone(),
            event_id: Some(job.event_id),
            kind: job.kind,
            bytes: len,
            width: w,
            height: h,
        };
        let mut attempts = 0;
        while let Err(e) = self.rt.block_on(self.store.insert_media_object(&obj)) {
            attempts += 1;
            if attempts >= 5 {
                // The object exists but is not indexed: retention cannot see it. Rare (the
                // database was down for the whole retry); logged loudly.
                tracing::error!(key = %job.key, error = %e, "picture stored but not indexed");
                break;
            }
            std::thread::sleep(Duration::from_millis(200 * attempts));
        }
        let s = &self.stats;
        s.written.fetch_add(1, Ordering::Relaxed);
        s.bytes.fetch_add(len, Ordering::Relaxed);
        s.encode_us
            .fetch_add(encoded.as_micros() as u64, Ordering::Relaxed);
        s.write_us
            .fetch_add(written.as_micros() as u64, Ordering::Relaxed);
        telemetry::PictureWritten {
            kind: job.kind,
            bytes: len,
            encode: encoded,
            write: written,
        }
        .emit();
    }

    fn give_up(&self, job: &PictureJob, reason: &'static str) {
        self.stats
            .dropped_write_failed
            .fetch_add(1, Ordering::Relaxed);
        telemetry::PictureDropped { reason }.emit();
        // The event was stored saying it has this picture; take that back. The event may
        // still be on its way to the database (its writer batches for a few ms), so try a
        // few times.
        for _ in 0..5 {
            match self
                .rt
                .block_on(self.store.clear_event_picture(job.event_id, job.kind))
            {
                Ok(true) => return,
                Ok(false) | Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
        tracing::warn!(event = %job.event_id, kind = %job.kind, "event still names a picture that was dropped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaling_keeps_the_aspect_ratio() {
        assert_eq!(scaled_size(100, 50, 1920), (100, 50));
        assert_eq!(scaled_size(3840, 2160, 1920), (1920, 1080));
        assert_eq!(scaled_size(100, 400, 200), (50, 200));
    }

    #[test]
    fn encodes_a_decodable_jpeg_of_the_scaled_size() {
        let rgb = vec![200u8; 64 * 32 * 3];
        let j = encode_jpeg(&rgb, 64, 32, 85, 32).unwrap();
        let img = image::load_from_memory(&j).unwrap();
        assert_eq!((img.width(), img.height()), (32, 16));
        assert!(encode_jpeg(&rgb, 64, 33, 85, 32).is_err(), "size mismatch");
    }
}
