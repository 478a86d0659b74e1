//! Test helpers that need real GStreamer: a looping RTSP "camera".
//!
//! Engine and media tests need a camera that streams a known clip and can be killed
//! mid-stream and brought back on the same port. [`TestRtspServer`] is built from this
//! crate's own parts — a [`Source`] reading the file in real time (looping), an [`Output`]
//! encoding it, an [`RtspServer`] serving it — so it behaves like a real camera to
//! `rtspsrc`, `ffmpeg` and `ffplay`. [`ReferenceCamera`] is one nobody here wrote (the
//! GStreamer reference RTSP server) for conformance tests. Not meant for production use.

use crate::{
    MediaError, Output, OutputOptions, Pacing, RtspServer, Source, SourceEvent, SourceOptions,
};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

struct Running {
    server: RtspServer,
    stop: Arc<AtomicBool>,
    pump: JoinHandle<()>,
}

/// Serves a file in a loop at `rtsp://127.0.0.1:PORT{mount}`.
pub struct TestRtspServer {
    port: u16,
    file: PathBuf,
    mount: String,
    credentials: Option<(String, String)>,
    running: Option<Running>,
}

impl std::fmt::Debug for TestRtspServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestRtspServer")
            .field("url", &self.url())
            .field("running", &self.running.is_some())
            .finish()
    }
}

impl TestRtspServer {
    /// Starts serving `file` on `127.0.0.1:port` (`0` = a free port) at `mount`
    /// (e.g. `/cam`). Returns once the first frame has been decoded.
    pub fn start(
        port: u16,
        file: impl Into<PathBuf>,
        mount: &str,
    ) -> Result<TestRtspServer, MediaError> {
        Self::start_inner(port, file.into(), mount, None)
    }

    /// Like [`TestRtspServer::start`], but clients must authenticate with `user`/`password`
    /// (HTTP Basic), as most cameras require.
    pub fn start_with_credentials(
        port: u16,
        file: impl Into<PathBuf>,
        mount: &str,
        user: &str,
        password: &str,
    ) -> Result<TestRtspServer, MediaError> {
        Self::start_inner(
            port,
            file.into(),
            mount,
            Some((user.to_string(), password.to_string())),
        )
    }

    fn start_inner(
        port: u16,
        file: PathBuf,
        mount: &str,
        credentials: Option<(String, String)>,
    ) -> Result<TestRtspServer, MediaError> {
        let mut server = TestRtspServer {
            port,
            file,
            mount: mount.to_string(),
            credentials,
            running: None,
        };
        server.restart()?;
        Ok(server)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL without credentials.
    pub fn url(&self) -> String {
        format!("rtsp://127.0.0.1:{}{}", self.port, self.mount)
    }

    /// The URL with `user:password@` (percent-encoded).
    pub fn url_with_credentials(&self, user: &str, password: &str) -> String {
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        format!(
            "rtsp://{}:{}@127.0.0.1:{}{}",
            enc(user),
            enc(password),
            self.port,
            self.mount
        )
    }

    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// Kills the server like a crashed camera: connections are closed at once, the port is
    /// released.
    pub fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            drop(r.server);
            r.stop.store(true, Ordering::SeqCst);
            let _ = r.pump.join();
        }
    }

    /// Starts again on the same port (after [`TestRtspServer::stop`]); no-op if running.
    pub fn restart(&mut self) -> Result<(), MediaError> {
        if self.running.is_some() {
            return Ok(());
        }
        let mut opts = SourceOptions::new(self.file.to_string_lossy().into_owned());
        opts.pacing = Pacing::Realtime;
        opts.loop_file = true;
        let source = Source::open(opts)?;
        let info = source.info();
        let server = RtspServer::start("127.0.0.1", self.port)?;
        self.port = server.port();
        if let Some((user, password)) = &self.credentials {
            server.require_basic_auth(user, password);
        }
        let mut out =
            OutputOptions::new(info.width & !1, info.height & !1, info.fps.unwrap_or(25.0));
        out.mount = Some(server.mount(&self.mount)?);
        out.bitrate_kbps = 2000;
        let output = Output::start(out)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let pump = std::thread::Builder::new()
            .name("sightline-test-rtsp".into())
            .spawn(move || {
                while !flag.load(Ordering::SeqCst) {
                    match source.next(Duration::from_millis(100)) {
                        SourceEvent::Frame(f) => {
                            if output.push(f).is_err() {
                                break;
                            }
                        }
                        SourceEvent::Idle => {}
                        SourceEvent::Eos | SourceEvent::Lost(_) | SourceEvent::Error(_) => break,
                    }
                }
            })
            .map_err(|e| MediaError::internal(&self.url(), e.to_string()))?;
        self.running = Some(Running { server, stop, pump });
        Ok(())
    }
}

impl Drop for TestRtspServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A camera nobody here wrote: the GStreamer reference RTSP server (`gst-rtsp-server` through
/// python3-gi, `crates/media/tests/fixtures/rtsp_camera.py`) streaming a live 320x240 test pattern.
pub struct ReferenceCamera {
    child: std::process::Child,
    pub port: u16,
}

impl ReferenceCamera {
    /// `transport`: `tcp`, `udp` or `all` (what the camera offers); `auth`: user, password.
    ///
    /// Panics if the camera cannot start (test helper).
    pub fn start(transport: &str, auth: Option<(&str, &str)>) -> ReferenceCamera {
        Self::start_on(0, transport, auth)
    }

    /// Like [`ReferenceCamera::start`], on `port` (0: any free port). A camera started again
    /// on the port of one that was killed comes back where clients expect it.
    pub fn start_on(port: u16, transport: &str, auth: Option<(&str, &str)>) -> ReferenceCamera {
        use std::io::BufRead;
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/rtsp_camera.py");
        // The system interpreter: python3-gi is a Debian package, not in any venv.
        let mut cmd = std::process::Command::new("/usr/bin/python3");
        cmd.arg(script)
            .args(["--port", &port.to_string(), "--transport", transport]);
        if let Some((user, password)) = auth {
            cmd.args(["--user", user, "--password", password]);
        }
        let mut child = cmd
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("start the reference RTSP camera (scripts/setup installs python3-gi)");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(p) = line.strip_prefix("READY ") {
                    let _ = tx.send(p.trim().parse::<u16>().ok());
                }
            }
        });
        let Some(bound) = rx.recv_timeout(Duration::from_secs(15)).ok().flatten() else {
            let _ = child.kill();
            panic!("the reference camera did not start");
        };
        if port != 0 && bound != port {
            let _ = child.kill();
            panic!("the reference camera started on port {bound}, not {port}");
        }
        ReferenceCamera { child, port: bound }
    }

    /// Like a camera losing power: SIGKILL, its connections reset.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn url(&self, scheme: &str, userinfo: &str, path: &str) -> String {
        format!("{scheme}://{userinfo}127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for ReferenceCamera {
    fn drop(&mut self) {
        self.kill();
    }
}
