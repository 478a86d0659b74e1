//! Shared test fixtures: fresh databases (SQLite files, PostgreSQL databases), seeded runs
//! and events, a private Mosquitto broker, an MQTT subscriber and a real HTTP receiver.
#![allow(dead_code, clippy::print_stderr)]

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use rumqttc::{AsyncClient, Event as MqEvent, MqttOptions, Packet, QoS};
use sightline_core::{BBox, Event, EventId, EventKind, Pts, RuleEvent, RunId, TrackId};
use sightline_store::{NewRun, SourceUri, Store, StoreOptions};
use sqlx::Connection;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A migrated store and whatever keeps its database alive.
pub struct Db {
    pub store: Store,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    _pg: Option<PgGuard>,
}

pub async fn sqlite_with(opts: StoreOptions) -> Db {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("db.sqlite").display()
    );
    let store = Store::connect(&url, &opts).await.unwrap();
    store.migrate().await.unwrap();
    Db {
        store,
        url,
        _dir: Some(dir),
        _pg: None,
    }
}

pub async fn sqlite() -> Db {
    sqlite_with(StoreOptions::default()).await
}

struct PgGuard {
    admin: String,
    name: String,
}

impl Drop for PgGuard {
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                if let Ok(mut c) = sqlx::PgConnection::connect(&admin).await {
                    let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                        .execute(&mut c)
                        .await;
                }
            });
        })
        .join();
    }
}

/// A fresh PostgreSQL database on 127.0.0.1:5432 (or `SIGHTLINE_TEST_PG_URL`), or `None`
/// with a loud message when the server is unreachable (`SIGHTLINE_REQUIRE_PG=1` fails).
pub async fn postgres() -> Option<Db> {
    let admin = std::env::var("SIGHTLINE_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let mut c =
        match tokio::time::timeout(Duration::from_secs(5), sqlx::PgConnection::connect(&admin))
            .await
        {
            Ok(Ok(c)) => c,
            other => {
                let why = match other {
                    Ok(Err(e)) => e.to_string(),
                    _ => "timed out".into(),
                };
                if std::env::var("SIGHTLINE_REQUIRE_PG").is_ok_and(|v| v == "1") {
                    panic!("PostgreSQL at {admin} required but unreachable: {why}");
                }
                eprintln!("!!! SKIPPING PostgreSQL test: {admin} unreachable ({why})");
                return None;
            }
        };
    let name = format!("sightline_notify_{}", uuid::Uuid::new_v4().simple());
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut c)
        .await
        .unwrap();
    let guard = PgGuard {
        admin: admin.clone(),
        name: name.clone(),
    };
    let base = &admin[..admin.rfind('/').unwrap()];
    let url = format!("{base}/{name}");
    let store = Store::connect(&url, &StoreOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    Some(Db {
        store,
        url,
        _dir: None,
        _pg: Some(guard),
    })
}

/// Creates run `id` (events reference a run).
pub async fn seed_run(store: &Store, id: &str) -> RunId {
    if store.get_config("cfg", None).await.is_err() {
        store
            .put_config_version("cfg", &serde_json::json!({"models": ["m"]}))
            .await
            .unwrap();
    }
    let mut new = NewRun::new(SourceUri::new("test://pattern").unwrap(), "cfg");
    new.id = Some(RunId::parse(id).unwrap());
    new.models = vec!["m".into()];
    store.create_run(new).await.unwrap().id
}

/// `n` events of `run`: alternating person `zone_enter` and car `line_cross`.
pub fn events(run: &RunId, n: usize) -> Vec<Event> {
    (0..n)
        .map(|i| {
            let kind = if i % 2 == 0 {
                EventKind::ZoneEnter
            } else {
                EventKind::LineCross
            };
            let mut b = RuleEvent::new(kind, "r", Pts::from_millis(i as i64 * 40));
            b.track_id = Some(TrackId(i as u64));
            b.class = Some(if i % 2 == 0 { "person" } else { "car" }.into());
            b.confidence = Some(0.9);
            b.bbox = Some(BBox::new(1.0, 2.0, 30.0, 40.0));
            if i % 2 == 0 {
                b.zone = Some("dock".into());
            } else {
                b.line = Some("gate".into());
                b.direction = Some(sightline_core::Direction::In);
            }
            Event {
                id: EventId::generate(),
                run_id: run.clone(),
                wall_ms: chrono::Utc::now().timestamp_millis(),
                body: b,
                media: None,
            }
        })
        .collect()
}

/// Polls `f` every 20 ms until it returns true or `limit` passes.
pub async fn wait_until<F, Fut>(limit: Duration, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if f().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A private Mosquitto on its own port with persistence in a temporary directory (so a
/// persistent subscriber session survives a restart), started and stopped by the test.
pub struct Broker {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<tokio::process::Child>,
}

impl Broker {
    /// A port for a broker that is not running yet.
    pub fn stopped() -> Broker {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let conf = format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n\
             persistence_location {}/\nmax_queued_messages 10000\n",
            dir.path().display()
        );
        std::fs::write(dir.path().join("mosquitto.conf"), conf).unwrap();
        // Mosquitto started as root drops to its own user: let it write its database.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        Broker {
            port,
            dir,
            child: None,
        }
    }

    pub async fn start(&mut self) {
        let child = tokio::process::Command::new("mosquitto")
            .arg("-c")
            .arg(self.dir.path().join("mosquitto.conf"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("mosquitto installed");
        self.child = Some(child);
        let port = self.port;
        wait_until(
            Duration::from_secs(5),
            "mosquitto to listen",
            || async move {
                tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_ok()
            },
        )
        .await;
    }

    /// Stops the broker cleanly (SIGTERM, so it saves its sessions).
    pub async fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            if let Some(pid) = c.id() {
                let _ = std::process::Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status();
            }
            let _ = tokio::time::timeout(Duration::from_secs(5), c.wait()).await;
            let _ = c.kill().await;
        }
    }
}

/// Ensures the shared broker on 127.0.0.1:1883 runs (starts the system one if down).
pub async fn system_broker() {
    if tokio::net::TcpStream::connect("127.0.0.1:1883")
        .await
        .is_ok()
    {
        return;
    }
    let _ = std::process::Command::new("mosquitto")
        .args(["-d", "-c", "/etc/mosquitto/mosquitto.conf"])
        .status();
    wait_until(Duration::from_secs(5), "system mosquitto", || async {
        tokio::net::TcpStream::connect("127.0.0.1:1883")
            .await
            .is_ok()
    })
    .await;
}

/// A message a subscriber received.
#[derive(Debug, Clone)]
pub struct Received {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
    pub at: Instant,
}

/// An MQTT subscriber collecting every message on `filter`.
pub struct Subscriber {
    pub got: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Subscriber {
    /// Connects, subscribes at QoS 1 and returns once the broker confirmed the subscription.
    pub async fn start(port: u16, filter: &str) -> Subscriber {
        Self::start_with(port, filter, None).await
    }

    /// With `Some(id)`: a persistent session (clean_session = false) under that client id,
    /// so messages published while it is away are queued for it.
    pub async fn start_with(port: u16, filter: &str, persistent: Option<&str>) -> Subscriber {
        let id = persistent
            .map(str::to_owned)
            .unwrap_or_else(|| format!("test-sub-{}", uuid::Uuid::new_v4().simple()));
        let mut o = MqttOptions::new(id, "127.0.0.1", port);
        o.set_clean_session(persistent.is_none());
        o.set_keep_alive(Duration::from_secs(30));
        o.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut el) = AsyncClient::new(o, 1000);
        client.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sink = got.clone();
        let task = tokio::spawn(async move {
            let _client = client;
            let mut tx = Some(tx);
            loop {
                match el.poll().await {
                    Ok(MqEvent::Incoming(Packet::SubAck(_))) => {
                        if let Some(tx) = tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(MqEvent::Incoming(Packet::Publish(p))) => {
                        sink.lock().unwrap().push(Received {
                            topic: p.topic.clone(),
                            payload: p.payload.to_vec(),
                            retain: p.retain,
                            at: Instant::now(),
                        });
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(5), rx)
            .await
            .expect("SUBACK in time")
            .unwrap();
        Subscriber { got, task }
    }

    pub fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }
}

/// A request the HTTP receiver got.
#[derive(Debug, Clone)]
pub struct Hit {
    pub at: Instant,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub status: u16,
}

/// A real HTTP server on 127.0.0.1 that fails the first `fail_first` requests with 500
/// (or delays every answer by `delay`) and records every request.
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    pub hits: Arc<Mutex<Vec<Hit>>>,
    task: Arc<tokio::task::JoinHandle<()>>,
}

impl Receiver {
    pub async fn start(fail_first: usize, delay: Duration) -> Receiver {
        let hits: Arc<Mutex<Vec<Hit>>> = Arc::new(Mutex::new(Vec::new()));
        let state = hits.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let state = state.clone();
                async move {
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    let mut hits = state.lock().unwrap();
                    let status = if hits.len() < fail_first { 500 } else { 200 };
                    hits.push(Hit {
                        at: Instant::now(),
                        headers,
                        body,
                        status,
                    });
                    StatusCode::from_u16(status).unwrap()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            url,
            hits,
            task: Arc::new(task),
        }
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    pub fn stop(&self) {
        self.task.abort();
    }
}
