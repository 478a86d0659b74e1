//! The RTSP server and its mounts.
//!
//! One [`RtspServer`] per process (port 8554 by default) runs gst-rtsp-server on its own GLib
//! main-loop thread. Each run publishes on a [`Mount`] (`/runs/{id}`). The mount's media
//! factory is *shared*: every client of a mount watches the same media, whose pipeline is
//! only `appsrc ! h264parse ! rtph264pay`. The run's encoder (see [`crate::Output`]) is
//! independent of clients and feeds each encoded access unit to every live media appsrc
//! through [`Mount::feed`]. gst-rtsp-server rebuilds a shared media after its last client
//! leaves, so the mount keeps *weak* references to the appsrcs it has seen and forgets one
//! as soon as it is gone or refuses a buffer. A media starts at a keyframe: until it gets
//! one, it is sent nothing, and the encoder is asked for one (new media, new `PLAY`).

use crate::error::{MediaError, MediaErrorKind};
use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_rtsp_server as rtsp;
use gstreamer_rtsp_server::prelude::*;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

type Registry = Arc<Mutex<HashMap<String, Weak<MountShared>>>>;
type KeyframeRequester = Arc<dyn Fn() + Send + Sync>;

/// The role every authenticated viewer gets.
const VIEWER_ROLE: &str = "sightline-viewer";

/// An RTSP server on its own main-loop thread. Dropping it disconnects every client and
/// closes the listening socket (the port can be bound again right away).
pub struct RtspServer {
    server: rtsp::RTSPServer,
    host: String,
    port: u16,
    context: glib::MainContext,
    main_loop: glib::MainLoop,
    thread: Option<JoinHandle<()>>,
    mounts: Registry,
    auth: Mutex<bool>,
}

impl std::fmt::Debug for RtspServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtspServer")
            .field("host", &self.host)
            .field("port", &self.port)
            .finish()
    }
}

impl RtspServer {
    /// Default RTSP port of Sightline.
    pub const DEFAULT_PORT: u16 = 8554;

    /// Listens on `bind:port` (`port` 0 picks a free port; see [`RtspServer::port`]).
    pub fn start(bind: &str, port: u16) -> Result<RtspServer, MediaError> {
        crate::init()?;
        let where_ = format!("rtsp://{bind}:{port}");
        let server = rtsp::RTSPServer::new();
        server.set_address(bind);
        server.set_service(&port.to_string());
        let mounts: Registry = Arc::default();
        let registry = Arc::downgrade(&mounts);
        server.connect_client_connected(move |_, client| {
            let registry = registry.clone();
            client.connect_play_request(move |_, ctx| {
                let (Some(registry), Some(url)) = (registry.upgrade(), ctx.uri()) else {
                    return;
                };
                let request = url.request_uri();
                let path = url::Url::parse(&request)
                    .map(|u| u.path().to_string())
                    .unwrap_or_default();
                let mounts: Vec<Arc<MountShared>> =
                    registry.lock().values().filter_map(Weak::upgrade).collect();
                for mount in mounts.iter().filter(|m| path.starts_with(&m.path)) {
                    tracing::debug!(mount = %mount.path, "RTSP client plays: keyframe requested");
                    mount.request_keyframe();
                }
            });
        });

        let context = glib::MainContext::new();
        let main_loop = glib::MainLoop::new(Some(&context), false);
        let (tx, rx) = std::sync::mpsc::channel::<Result<u16, String>>();
        let thread = {
            let (server, context, main_loop) = (server.clone(), context.clone(), main_loop.clone());
            std::thread::Builder::new()
                .name("sightline-rtsp".into())
                .spawn(move || {
                    let ran = context.with_thread_default(|| {
                        let id = match server.attach(Some(&context)) {
                            Ok(id) => id,
                            Err(e) => {
                                let _ = tx.send(Err(e.to_string()));
                                return;
                            }
                        };
                        let _ = tx.send(Ok(u16::try_from(server.bound_port()).unwrap_or(0)));
                        // Expire sessions of clients that vanished without a TEARDOWN.
                        let pool = server.session_pool();
                        let cleanup = glib::timeout_source_new(
                            Duration::from_secs(2),
                            Some("sightline-rtsp-cleanup"),
                            glib::Priority::DEFAULT,
                            move || {
                                if let Some(pool) = &pool {
                                    pool.cleanup();
                                }
                                glib::ControlFlow::Continue
                            },
                        );
                        cleanup.attach(Some(&context));
                        main_loop.run();
                        cleanup.destroy();
                        // `SourceId::remove` looks in the global default context; ours is not.
                        if let Some(source) = context.find_source_by_id(&id) {
                            source.destroy();
                        }
                    });
                    if let Err(e) = ran {
                        let _ = tx.send(Err(e.to_string()));
                    }
                })
                .map_err(|e| MediaError::internal(&where_, e.to_string()))?
        };
        let port = match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(p)) if p > 0 => p,
            Ok(Ok(_)) | Ok(Err(_)) | Err(_) => {
                main_loop.quit();
                let _ = thread.join();
                return Err(MediaError::new(
                    MediaErrorKind::Internal,
                    &where_,
                    "cannot listen on this address (port in use or address not local?)",
                ));
            }
        };
        let host = match bind {
            "0.0.0.0" | "" => "127.0.0.1".to_string(),
            "::" => "[::1]".to_string(),
            h if h.contains(':') => format!("[{h}]"),
            h => h.to_string(),
        };
        tracing::info!(%host, port, "RTSP server listening");
        Ok(RtspServer {
            server,
            host,
            port,
            context,
            main_loop,
            thread: Some(thread),
            mounts,
            auth: Mutex::new(false),
        })
    }

    /// The port actually bound.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `rtsp://HOST:PORT{path}` (an unspecified bind address is shown as loopback).
    pub fn url(&self, path: &str) -> String {
        format!("rtsp://{}:{}{}", self.host, self.port, path)
    }

    /// Requires HTTP Basic credentials from every client of mounts created *after* this
    /// call (RTSP `401 Unauthorized` otherwise). Several users may be added.
    pub fn require_basic_auth(&self, user: &str, password: &str) {
        let auth = self.server.auth().unwrap_or_else(|| {
            let auth = rtsp::RTSPAuth::new();
            self.server.set_auth(Some(&auth));
            auth
        });
        let token = rtsp::RTSPToken::builder()
            .field(rtsp::RTSP_TOKEN_MEDIA_FACTORY_ROLE, VIEWER_ROLE)
            .build();
        auth.add_basic(&rtsp::RTSPAuth::make_basic(user, password), &token);
        *self.auth.lock() = true;
    }

    /// Publishes a mount at `path` (e.g. `/runs/demo`); it is removed when the [`Mount`] is
    /// dropped. Feed it by giving it to an [`crate::Output`].
    pub fn mount(&self, path: &str) -> Result<Mount, MediaError> {
        let url = self.url(path);
        if !path.starts_with('/')
            || path.len() < 2
            || path.ends_with('/')
            || path
                .chars()
                .any(|c| c.is_whitespace() || c == '?' || c == '#')
        {
            return Err(MediaError::new(
                MediaErrorKind::InvalidUri,
                &url,
                "a mount path looks like `/runs/ID`",
            ));
        }
        let mut registry = self.mounts.lock();
        registry.retain(|_, m| m.strong_count() > 0);
        if registry.contains_key(path) {
            return Err(MediaError::new(
                MediaErrorKind::InvalidUri,
                &url,
                "this path is already mounted",
            ));
        }
        let mount_points = self
            .server
            .mount_points()
            .ok_or_else(|| MediaError::internal(&url, "RTSP server without mount points"))?;
        let factory = rtsp::RTSPMediaFactory::new();
        factory.set_launch(
            "( appsrc name=src is-live=true format=time do-timestamp=false \
             ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=0 )",
        );
        factory.set_shared(true);
        if *self.auth.lock() {
            let role = gst::Structure::builder(VIEWER_ROLE)
                .field(rtsp::RTSP_PERM_MEDIA_FACTORY_ACCESS, true)
                .field(rtsp::RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, true)
                .build();
            factory.add_role_from_structure(&role);
        }
        let shared = Arc::new(MountShared {
            path: path.to_string(),
            url: url.clone(),
            server: self.server.clone(),
            sinks: Mutex::new(Vec::new()),
            keyframe: Mutex::new(None),
            last_key_request: Mutex::new(None),
        });
        let weak = Arc::downgrade(&shared);
        factory.connect_media_configure(move |_, media| {
            if let Some(mount) = weak.upgrade() {
                mount.configure(media);
            }
        });
        mount_points.add_factory(path, factory);
        registry.insert(path.to_string(), Arc::downgrade(&shared));
        tracing::info!(%url, "RTSP mount published");
        Ok(Mount {
            shared,
            registry: Arc::downgrade(&self.mounts),
        })
    }
}

impl Drop for RtspServer {
    fn drop(&mut self) {
        let (server, main_loop) = (self.server.clone(), self.main_loop.clone());
        self.context.invoke(move || {
            server.client_filter(Some(&mut |_, _| rtsp::RTSPFilterResult::Remove));
            main_loop.quit();
        });
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        tracing::debug!(port = self.port, "RTSP server stopped");
    }
}

/// One media's appsrc, as seen by the encoder.
struct MediaSink {
    src: glib::WeakRef<gst_app::AppSrc>,
    /// Received its first keyframe (everything before it would be undecodable).
    started: bool,
    added: Instant,
    /// Since when its appsrc refuses buffers (flushing).
    refused_since: Option<Instant>,
    /// Maps the encoder's timeline (source-derived PTS) onto this media's running time.
    clock: MediaClock,
}

/// Output timestamps of one RTSP media: the encoder's PTS — which follow the source's PTS
/// (see `output::timing::Retimer`) — shifted so that the first access unit lands on the
/// media's running time when it is pushed. Timestamps stamped at push time instead jitter
/// with scheduling, and recorders copying the stream (`ffmpeg -c copy`, NVRs) then complain
/// about non-monotonic DTS. The offset is re-anchored, forwards only, if the two timelines
/// drift more than [`MediaClock::MAX_DRIFT_NS`] apart (a source slower than real time, a
/// long gap), so latency stays bounded and timestamps never go backwards.
#[derive(Debug, Default, Clone, Copy)]
struct MediaClock {
    offset: Option<i64>,
    last: Option<i64>,
}

impl MediaClock {
    const MAX_DRIFT_NS: i64 = 1_000_000_000;

    /// The PTS (ns, media running time) for an access unit of encoder PTS `au_pts` pushed
    /// when the media's running time is `now`; `frame_ns` is the spacing used to step over
    /// a timestamp that would not move forwards.
    fn map(&mut self, au_pts: i64, now: i64, frame_ns: i64) -> i64 {
        let mut pts = match self.offset {
            Some(offset) if (au_pts + offset - now).abs() <= Self::MAX_DRIFT_NS => au_pts + offset,
            _ => {
                self.offset = Some(now - au_pts);
                now
            }
        };
        if let Some(last) = self.last
            && pts <= last
        {
            pts = last + frame_ns.max(1);
            self.offset = Some(pts - au_pts);
        }
        self.last = Some(pts);
        pts
    }
}

/// A media that does not reach PAUSED within this time is forgotten.
const MEDIA_START_LIMIT: Duration = Duration::from_secs(30);
/// A media whose appsrc refuses buffers for this long is forgotten.
const MEDIA_REFUSE_LIMIT: Duration = Duration::from_secs(5);

pub(crate) struct MountShared {
    path: String,
    url: String,
    server: rtsp::RTSPServer,
    sinks: Mutex<Vec<MediaSink>>,
    keyframe: Mutex<Option<KeyframeRequester>>,
    last_key_request: Mutex<Option<Instant>>,
}

impl MountShared {
    fn configure(&self, media: &rtsp::RTSPMedia) {
        let Some(src) = media
            .element()
            .downcast::<gst::Bin>()
            .ok()
            .and_then(|bin| bin.by_name("src"))
            .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
        else {
            tracing::error!(mount = %self.path, "RTSP media without its appsrc");
            return;
        };
        let caps = gst::Caps::builder("video/x-h264")
            .field("stream-format", "byte-stream")
            .field("alignment", "au")
            .build();
        src.set_caps(Some(&caps));
        // Bounded even if a client PAUSEs: old access units are dropped, not hoarded.
        src.set_max_buffers(120);
        src.set_leaky_type(gst_app::AppLeakyType::Downstream);
        self.sinks.lock().push(MediaSink {
            src: src.downgrade(),
            started: false,
            added: Instant::now(),
            refused_since: None,
            clock: MediaClock::default(),
        });
        tracing::debug!(mount = %self.path, "new RTSP media");
        self.request_keyframe();
    }

    fn request_keyframe(&self) {
        *self.last_key_request.lock() = Some(Instant::now());
        let requester = self.keyframe.lock().clone();
        if let Some(request) = requester {
            request();
        }
    }
}

/// A published RTSP path. Removed from the server when dropped (its clients get EOS).
pub struct Mount {
    shared: Arc<MountShared>,
    registry: Weak<Mutex<HashMap<String, Weak<MountShared>>>>,
}

impl std::fmt::Debug for Mount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mount")
            .field("url", &self.shared.url)
            .finish()
    }
}

impl Mount {
    pub fn path(&self) -> &str {
        &self.shared.path
    }

    /// The URL clients use (`rtsp://HOST:PORT/path`).
    pub fn url(&self) -> &str {
        &self.shared.url
    }

    /// RTSP sessions currently set up on this mount.
    pub fn clients(&self) -> usize {
        let Some(pool) = self.shared.server.session_pool() else {
            return 0;
        };
        // Collect first: never call into a session while the pool's lock is held.
        let sessions = pool.filter(Some(&mut |_, _| rtsp::RTSPFilterResult::Ref));
        let path = self.shared.path.as_str();
        sessions
            .iter()
            .filter(|s| {
                !s.filter(Some(&mut |_, sm| {
                    if sm.matches(path).is_some() {
                        rtsp::RTSPFilterResult::Ref
                    } else {
                        rtsp::RTSPFilterResult::Keep
                    }
                }))
                .is_empty()
            })
            .count()
    }

    /// How to ask the encoder for a keyframe (installed by [`crate::Output`]).
    pub(crate) fn set_keyframe_requester(&self, request: KeyframeRequester) {
        *self.shared.keyframe.lock() = Some(request);
    }

    /// Sends one encoded access unit (H.264 byte-stream, one AU per buffer) to every media of
    /// this mount. Never blocks.
    pub(crate) fn feed(&self, au: &gst::Buffer) {
        let key = !au.flags().contains(gst::BufferFlags::DELTA_UNIT);
        let mut want_key = false;
        let mut sinks = self.shared.sinks.lock();
        sinks.retain_mut(|sink| {
            let Some(src) = sink.src.upgrade() else {
                return false;
            };
            let state = src.current_state();
            if !sink.started {
                if state < gst::State::Paused {
                    // Still being prepared (or torn down): give up on media that never start.
                    return sink.added.elapsed() < MEDIA_START_LIMIT;
                }
                if !key {
                    want_key = true;
                    return true;
                }
            }
            // A shallow copy (same memory) restamped onto this media's running time.
            let mut buffer = au.copy();
            if let Some(b) = buffer.get_mut() {
                // Before PLAYING the media has no clock yet; its running time starts at 0.
                let now = src
                    .current_running_time()
                    .map_or(0, gst::ClockTime::nseconds);
                if let Some(au_pts) = au.pts() {
                    let frame_ns = au.duration().map_or(1_000_000, gst::ClockTime::nseconds);
                    let pts = sink
                        .clock
                        .map(au_pts.nseconds() as i64, now as i64, frame_ns as i64);
                    let pts = gst::ClockTime::from_nseconds(pts.max(0) as u64);
                    b.set_pts(pts);
                    // No B-frames (zerolatency encoders): decode order is display order.
                    b.set_dts(pts);
                } else {
                    b.set_pts(gst::ClockTime::from_nseconds(now));
                    b.set_dts(gst::ClockTime::from_nseconds(now));
                }
            }
            match src.push_buffer(buffer) {
                Ok(_) => {
                    if !sink.started {
                        tracing::debug!(mount = %self.shared.path, ?state, "RTSP media starts at a keyframe");
                    }
                    sink.started = true;
                    sink.refused_since = None;
                    true
                }
                Err(gst::FlowError::Eos) => {
                    tracing::debug!(mount = %self.shared.path, "RTSP media ended");
                    false
                }
                Err(e) => {
                    // Flushing: the media is changing state or being torn down. Its queue is
                    // gone, so it needs a keyframe again; forget it if it never recovers.
                    let since = *sink.refused_since.get_or_insert_with(Instant::now);
                    tracing::debug!(mount = %self.shared.path, error = ?e, ?state,
                        "RTSP media refused an access unit");
                    sink.started = false;
                    since.elapsed() < MEDIA_REFUSE_LIMIT
                }
            }
        });
        drop(sinks);
        if want_key {
            let recent = self
                .shared
                .last_key_request
                .lock()
                .is_some_and(|t| t.elapsed() < Duration::from_millis(250));
            if !recent {
                self.shared.request_keyframe();
            }
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if let Some(mp) = self.shared.server.mount_points() {
            mp.remove_factory(&self.shared.path);
        }
        for sink in self.shared.sinks.lock().drain(..) {
            if let Some(src) = sink.src.upgrade() {
                let _ = src.end_of_stream();
            }
        }
        if let Some(registry) = self.registry.upgrade() {
            registry.lock().remove(&self.shared.path);
        }
        tracing::info!(url = %self.shared.url, "RTSP mount removed");
    }
}

#[cfg(test)]
mod tests {
    use super::MediaClock;

    const MS: i64 = 1_000_000;

    #[test]
    fn media_clock_keeps_source_spacing_and_never_goes_back() {
        let mut c = MediaClock::default();
        // First AU: anchored on the running time.
        assert_eq!(c.map(5_000 * MS, 300 * MS, 100 * MS), 300 * MS);
        // Pushed with jitter, stamped with the source's spacing.
        assert_eq!(c.map(5_100 * MS, 437 * MS, 100 * MS), 400 * MS);
        assert_eq!(c.map(5_200 * MS, 480 * MS, 100 * MS), 500 * MS);
        // A dropped frame leaves its gap.
        assert_eq!(c.map(5_400 * MS, 700 * MS, 100 * MS), 700 * MS);
        // Drifted more than a second behind real time: re-anchored forwards.
        assert_eq!(c.map(5_500 * MS, 2_900 * MS, 100 * MS), 2_900 * MS);
        assert_eq!(c.map(5_600 * MS, 3_010 * MS, 100 * MS), 3_000 * MS);
        // Ahead of real time by more than a second: re-anchored on the running time.
        assert_eq!(c.map(9_000 * MS, 3_050 * MS, 100 * MS), 3_050 * MS);
        assert_eq!(c.map(9_100 * MS, 3_150 * MS, 100 * MS), 3_150 * MS);
        // Before PLAYING (running time 0) a re-anchor would repeat a timestamp: one frame on.
        let mut c = MediaClock::default();
        assert_eq!(c.map(5_000 * MS, 0, 100 * MS), 0);
        assert_eq!(c.map(7_000 * MS, 0, 100 * MS), 100 * MS);
        assert_eq!(c.map(7_100 * MS, 0, 100 * MS), 200 * MS);
    }
}
