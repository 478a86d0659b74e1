//! Wiring of the media store (issue 11): opens the store named by `[media]` (a start-up
//! error naming the setting if it cannot be written), starts the picture writer thread,
//! the recording indexer and the janitor, and stops them in order after the engine: the
//! engine's runs hand their last pictures and segments over first, then the writer drains
//! its queue, the indexer finishes its uploads, and the janitor stops.

use anyhow::Context;
use sightline_config::ServerConfig;
use sightline_engine::RunMedia;
use sightline_storage::{
    Janitor, JanitorOptions, JanitorStatus, MediaStore, PictureWriter, SegmentIndexer,
    WriterOptions,
};
use sightline_store::Store;
use std::sync::Arc;
use std::time::Duration;

/// The running media services; [`MediaServices::shutdown`] stops them.
pub struct MediaServices {
    pub store: Arc<MediaStore>,
    pub status: Arc<JanitorStatus>,
    writer: std::thread::JoinHandle<()>,
    indexer: tokio::task::JoinHandle<()>,
    janitor: tokio::task::JoinHandle<()>,
    janitor_stop: Arc<tokio::sync::Notify>,
}

impl MediaServices {
    /// Opens the media store and starts its tasks; the returned [`RunMedia`] goes to the
    /// engine (it is the only holder of the writer's handles, so the writer ends when the
    /// engine does).
    pub async fn start(
        server: &ServerConfig,
        store: &Store,
        worker_id: &str,
    ) -> anyhow::Result<(MediaServices, RunMedia)> {
        let url = server.media_url();
        let media = Arc::new(
            MediaStore::open(&url, &server.media, &server.data_dir.join("spool"))
                .await
                .context("media store")?,
        );
        tracing::info!(volume = media.volume(), "media store ready");
        let janitor = Janitor::new(
            store.clone(),
            media.clone(),
            JanitorOptions::from_config(&server.media, &server.retention),
        );
        let wake = janitor.waker();
        let status = janitor.status();
        let (writer, writer_join) = PictureWriter::start(
            store.clone(),
            media.clone(),
            WriterOptions {
                queue: server.media.queue,
                write_timeout: Duration::from_secs_f64(server.media.write_timeout_s),
                public_base: server.media_public_url(),
            },
            tokio::runtime::Handle::current(),
            Arc::new(move || wake.notify_one()),
        )
        .context("picture writer thread")?;
        let (segments, indexer) =
            SegmentIndexer::start(store.clone(), media.clone(), worker_id.to_owned());
        let janitor_stop = Arc::new(tokio::sync::Notify::new());
        let stop = janitor_stop.clone();
        let janitor = tokio::spawn(janitor.run(async move { stop.notified().await }));
        Ok((
            MediaServices {
                store: media,
                status,
                writer: writer_join,
                indexer,
                janitor,
                janitor_stop,
            },
            RunMedia {
                pictures: Some(writer),
                segments: Some(segments),
            },
        ))
    }

    /// Stops everything, after the engine has stopped (bounded waits).
    pub async fn shutdown(self) {
        let writer = self.writer;
        let drained = tokio::time::timeout(
            Duration::from_secs(20),
            tokio::task::spawn_blocking(move || {
                let _ = writer.join();
            }),
        )
        .await;
        if drained.is_err() {
            tracing::warn!("picture writer still busy after 20 s; remaining pictures dropped");
        }
        if tokio::time::timeout(Duration::from_secs(30), self.indexer)
            .await
            .is_err()
        {
            tracing::warn!("recording index still busy after 30 s");
        }
        self.janitor_stop.notify_one();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.janitor).await;
    }
}
