//! The object store behind the media store, through the `object_store` crate: a local
//! directory (the embedded default, `<data_dir>/media`) or an S3-compatible bucket
//! (`s3://bucket/prefix`, endpoint, region and credentials from the server config, masked in
//! every log line and error).
//!
//! [`MediaStore::open`] checks the store before the engine starts — a directory that cannot be
//! written, or a bucket that cannot be reached with the given credentials, is a start-up
//! error naming the setting — so a misconfiguration never shows up first as silently missing
//! pictures.

use crate::error::{MediaError, MediaResult};
use bytes::Bytes;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, PutPayload};
use sightline_config::MediaSettings;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The media store: where pictures and recording segments are kept.
pub struct MediaStore {
    inner: Arc<dyn ObjectStore>,
    /// The volume name stored with every index row (`file://HOST/PATH` or `s3://B/P`).
    volume: String,
    /// Local backend: the root directory (segments are written in place).
    local_root: Option<PathBuf>,
    /// Where segments are written before upload (S3), or the local root.
    spool: PathBuf,
}

impl std::fmt::Debug for MediaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaStore")
            .field("volume", &self.volume)
            .finish_non_exhaustive()
    }
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

impl MediaStore {
    /// Opens the store named by `url` (`s3://…`, `file://…` or a directory) and checks that
    /// it can be written. `spool_dir` holds segments before they are uploaded (S3).
    pub async fn open(
        url: &str,
        settings: &MediaSettings,
        spool_dir: &Path,
    ) -> MediaResult<MediaStore> {
        let store = if let Some(rest) = url.strip_prefix("s3://") {
            Self::open_s3(rest, settings, spool_dir)?
        } else {
            let dir = url.strip_prefix("file://").unwrap_or(url);
            Self::open_local(Path::new(dir))?
        };
        store.probe().await?;
        Ok(store)
    }

    /// A local directory (created if missing).
    pub fn open_local(dir: &Path) -> MediaResult<MediaStore> {
        let setting = "media.url";
        std::fs::create_dir_all(dir).map_err(|e| MediaError::Config {
            setting,
            message: format!("cannot create the media directory {}: {e}", dir.display()),
        })?;
        let root = dir.canonicalize().map_err(|e| MediaError::Config {
            setting,
            message: format!("media directory {}: {e}", dir.display()),
        })?;
        let fs = object_store::local::LocalFileSystem::new_with_prefix(&root)
            .map_err(|e| MediaError::Config {
                setting,
                message: format!("media directory {}: {e}", root.display()),
            })?
            .with_automatic_cleanup(true);
        Ok(MediaStore {
            inner: Arc::new(fs),
            volume: format!("file://{}{}", host(), root.display()),
            spool: root.clone(),
            local_root: Some(root),
        })
    }

    fn open_s3(rest: &str, s: &MediaSettings, spool_dir: &Path) -> MediaResult<MediaStore> {
        let (bucket, prefix) = match rest.split_once('/') {
            Some((b, p)) => (b, p.trim_matches('/')),
            None => (rest, ""),
        };
        if bucket.is_empty() {
            return Err(MediaError::Config {
                setting: "media.url",
                message: "must name a bucket: s3://BUCKET[/PREFIX]".into(),
            });
        }
        let mut b = object_store::aws::AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_region(s.s3.region.clone().unwrap_or_else(|| "us-east-1".into()))
            .with_retry(object_store::RetryConfig {
                max_retries: 2,
                retry_timeout: Duration::from_secs(5),
                ..Default::default()
            })
            // Client options replace the builder's, so `allow_http` goes in here.
            .with_client_options(
                object_store::ClientOptions::new()
                    .with_allow_http(s.s3.allow_http)
                    .with_connect_timeout(Duration::from_secs(3))
                    .with_timeout(Duration::from_secs(30)),
            );
        if let Some(ep) = &s.s3.endpoint {
            // S3-compatible servers are addressed by path (`http://host/bucket/key`).
            b = b
                .with_endpoint(ep.clone())
                .with_virtual_hosted_style_request(false);
        }
        if let (Some(k), Some(sec)) = (&s.s3.access_key_id, &s.s3.secret_access_key) {
            b = b
                .with_access_key_id(k.expose())
                .with_secret_access_key(sec.expose());
        }
        let s3 = b.build().map_err(|e| MediaError::Config {
            setting: "media.s3",
            message: mask(&e.to_string(), s),
        })?;
        let inner: Arc<dyn ObjectStore> = if prefix.is_empty() {
            Arc::new(s3)
        } else {
            Arc::new(object_store::prefix::PrefixStore::new(s3, prefix))
        };
        std::fs::create_dir_all(spool_dir).map_err(|e| MediaError::Config {
            setting: "data_dir",
            message: format!(
                "cannot create the spool directory {}: {e}",
                spool_dir.display()
            ),
        })?;
        Ok(MediaStore {
            inner,
            volume: format!("s3://{bucket}/{prefix}"),
            local_root: None,
            spool: spool_dir.to_path_buf(),
        })
    }

    /// Writes and deletes a probe object: the store is reachable and writable.
    async fn probe(&self) -> MediaResult<()> {
        let key = format!(".probe-{}", uuid::Uuid::now_v7().simple());
        let setting = if self.local_root.is_some() {
            "media.url"
        } else {
            "media.s3"
        };
        let fail = |what: &str, e: &dyn std::fmt::Display| MediaError::Config {
            setting,
            message: format!("media store {}: cannot {what}: {e}", self.volume),
        };
        self.put(&key, Bytes::from_static(b"probe"))
            .await
            .map_err(|e| fail("write", &e))?;
        self.delete(&key).await.map_err(|e| fail("delete", &e))?;
        Ok(())
    }

    /// Name of the volume, stored with each index row.
    pub fn volume(&self) -> &str {
        &self.volume
    }

    /// The local root directory (local backend only).
    pub fn local_root(&self) -> Option<&Path> {
        self.local_root.as_deref()
    }

    /// Where a segment with `key` is written while it is recorded: in place (local backend)
    /// or in the spool directory until it is uploaded (S3).
    pub fn recording_path(&self, key: &str) -> PathBuf {
        self.spool.join(key)
    }

    /// The directory of files being recorded (`recording_path`'s root).
    pub fn spool_root(&self) -> &Path {
        &self.spool
    }

    pub fn is_local(&self) -> bool {
        self.local_root.is_some()
    }

    pub async fn put(&self, key: &str, bytes: Bytes) -> MediaResult<()> {
        self.inner
            .put(&ObjPath::from(key), PutPayload::from(bytes))
            .await
            .map_err(|e| MediaError::from_store(key, e))?;
        Ok(())
    }

    /// Uploads a local file (multipart for large ones, never whole in memory).
    pub async fn put_file(&self, key: &str, file: &Path) -> MediaResult<u64> {
        use tokio::io::AsyncWriteExt;
        let mut src = tokio::fs::File::open(file)
            .await
            .map_err(|e| MediaError::io(key, e))?;
        let mut w = object_store::buffered::BufWriter::new(self.inner.clone(), ObjPath::from(key));
        let n = tokio::io::copy(&mut src, &mut w)
            .await
            .map_err(|e| MediaError::io(key, e))?;
        w.shutdown().await.map_err(|e| MediaError::io(key, e))?;
        Ok(n)
    }

    pub async fn get(&self, key: &str) -> MediaResult<Bytes> {
        let r = self
            .inner
            .get(&ObjPath::from(key))
            .await
            .map_err(|e| MediaError::from_store(key, e))?;
        r.bytes().await.map_err(|e| MediaError::from_store(key, e))
    }

    /// Downloads `key` into `file` (streamed).
    pub async fn get_to_file(&self, key: &str, file: &Path) -> MediaResult<u64> {
        use futures_util::StreamExt;
        use tokio::io::AsyncWriteExt;
        let r = self
            .inner
            .get(&ObjPath::from(key))
            .await
            .map_err(|e| MediaError::from_store(key, e))?;
        let mut out = tokio::fs::File::create(file)
            .await
            .map_err(|e| MediaError::io(key, e))?;
        let mut stream = r.into_stream();
        let mut n = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| MediaError::from_store(key, e))?;
            n += chunk.len() as u64;
            out.write_all(&chunk)
                .await
                .map_err(|e| MediaError::io(key, e))?;
        }
        out.flush().await.map_err(|e| MediaError::io(key, e))?;
        Ok(n)
    }

    /// Deletes `key`; a key that does not exist is not an error.
    pub async fn delete(&self, key: &str) -> MediaResult<()> {
        match self.inner.delete(&ObjPath::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(MediaError::from_store(key, e)),
        }
    }

    /// Capacity and use of the filesystem holding the local root, as `df` counts them
    /// (capacity = used + available to us, so reserved blocks never count as free); None
    /// for S3.
    pub fn disk_usage(&self) -> Option<(u64, u64)> {
        let root = self.local_root.as_ref()?;
        let st = nix::sys::statvfs::statvfs(root).ok()?;
        let frag = st.fragment_size() as u64;
        let total = st.blocks() as u64 * frag;
        let avail = st.blocks_available() as u64 * frag;
        let free = st.blocks_free() as u64 * frag;
        let used = total.saturating_sub(free);
        Some((used + avail, used))
    }
}

/// Masks the S3 credentials in a message.
fn mask(msg: &str, s: &MediaSettings) -> String {
    let mut out = msg.to_owned();
    for secret in [&s.s3.access_key_id, &s.s3.secret_access_key]
        .into_iter()
        .flatten()
    {
        if !secret.expose().is_empty() {
            out = out.replace(secret.expose(), "***");
        }
    }
    out
}
