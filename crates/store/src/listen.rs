//! Immediate wake-ups on PostgreSQL: a trigger on `runs` notifies `sightline_runs` when a
//! run becomes claimable, a stop is requested or a config version is applied, and event
//! batches notify `sightline_events`. Notifications are hints: one may be lost while the
//! listening connection reconnects (reported as [`RunNotice::Reconnected`]), so engines keep
//! polling as well. SQLite has no such channel; there the engine polls only.

use crate::error::Result;
use crate::store::Store;
use sightline_core::RunId;
use sqlx::postgres::PgListener;
use std::time::Duration;
use tokio::sync::mpsc;

/// Channel of run notifications.
pub const RUNS_CHANNEL: &str = "sightline_runs";
/// Channel of event-batch notifications.
pub const EVENTS_CHANNEL: &str = "sightline_events";

/// A change to a run that a worker may want to act on at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunNotice {
    /// The run became `pending` (created or released): try to claim.
    Pending(RunId),
    /// A stop was requested for the run.
    StopRequested(RunId),
    /// Another config version was pinned for the run.
    ConfigChanged(RunId),
    /// The listening connection was re-established; notifications may have been missed, so
    /// poll now.
    Reconnected,
}

fn parse_notice(payload: &str) -> Option<RunNotice> {
    let (kind, id) = payload.split_once(':')?;
    let id = RunId::parse(id).ok()?;
    match kind {
        "pending" => Some(RunNotice::Pending(id)),
        "stop" => Some(RunNotice::StopRequested(id)),
        "config" => Some(RunNotice::ConfigChanged(id)),
        _ => None,
    }
}

/// Receives [`RunNotice`]s (PostgreSQL only). A background task owns the listening
/// connection, reconnects it with backoff when it drops, and forwards notices here, so
/// [`RunListener::recv`] is cancel-safe (use it in `tokio::select!` beside a poll timer).
/// Dropping the listener stops the task.
#[derive(Debug)]
pub struct RunListener {
    rx: mpsc::Receiver<RunNotice>,
}

impl RunListener {
    /// The next notice; `None` once the store's pool is closed.
    pub async fn recv(&mut self) -> Option<RunNotice> {
        self.rx.recv().await
    }
}

/// A batch of events was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventNotice {
    /// For these runs.
    Stored(Vec<RunId>),
    /// For runs not listed (too many for one notification), or notifications may have been
    /// missed while reconnecting: re-query.
    Unknown,
}

fn parse_event_notice(payload: &str) -> Option<EventNotice> {
    if payload.is_empty() {
        return Some(EventNotice::Unknown);
    }
    Some(EventNotice::Stored(
        payload
            .split(',')
            .filter_map(|s| RunId::parse(s).ok())
            .collect(),
    ))
}

/// Receives [`EventNotice`]s (PostgreSQL only); cancel-safe like [`RunListener`].
#[derive(Debug)]
pub struct EventListener {
    rx: mpsc::Receiver<EventNotice>,
}

impl EventListener {
    /// The next notice; `None` once the store's pool is closed.
    pub async fn recv(&mut self) -> Option<EventNotice> {
        self.rx.recv().await
    }
}

/// Spawns the task that owns `listener` and forwards parsed notices into a channel.
fn forward<T: Send + 'static>(
    mut listener: PgListener,
    channel: &'static str,
    parse: fn(&str) -> Option<T>,
    resync: fn() -> T,
) -> mpsc::Receiver<T> {
    let (tx, rx) = mpsc::channel(1024);
    tokio::spawn(async move {
        loop {
            let next = tokio::select! {
                _ = tx.closed() => return,
                next = listener.try_recv() => next,
            };
            let notice = match next {
                Ok(Some(n)) => match parse(n.payload()) {
                    Some(notice) => notice,
                    None => {
                        tracing::warn!(channel, payload = n.payload(), "unrecognised notification");
                        continue;
                    }
                },
                // Connection lost; the next try_recv reconnects. Missed notices: resync.
                Ok(None) => resync(),
                Err(sqlx::Error::PoolClosed) => return,
                Err(error) => {
                    tracing::warn!(channel, %error, "notification listener lost the database; reconnecting");
                    if !reconnect(&mut listener, &tx).await {
                        return;
                    }
                    resync()
                }
            };
            if tx.send(notice).await.is_err() {
                return;
            }
        }
    });
    rx
}

/// Retries a round trip on the listener's connection (which re-subscribes to its channels)
/// with exponential backoff, 0.5 s up to 30 s. `false` if the receiver went away or the
/// pool was closed.
async fn reconnect<T>(listener: &mut PgListener, tx: &mpsc::Sender<T>) -> bool {
    let mut delay = Duration::from_millis(500);
    loop {
        tokio::select! {
            _ = tx.closed() => return false,
            _ = tokio::time::sleep(delay) => {}
        }
        match sqlx::query("SELECT 1").execute(&mut *listener).await {
            Ok(_) => {
                tracing::info!("notification listener reconnected");
                return true;
            }
            Err(sqlx::Error::PoolClosed) => return false,
            Err(error) => {
                tracing::debug!(%error, ?delay, "notification listener still disconnected");
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
    }
}

impl Store {
    /// Subscribes to run notifications; `None` on SQLite.
    pub async fn listen_runs(&self) -> Result<Option<RunListener>> {
        let Some(pool) = self.pg_pool() else {
            return Ok(None);
        };
        let mut inner = PgListener::connect_with(pool).await?;
        inner.listen(RUNS_CHANNEL).await?;
        Ok(Some(RunListener {
            rx: forward(inner, RUNS_CHANNEL, parse_notice, || RunNotice::Reconnected),
        }))
    }

    /// Subscribes to event-batch notifications; `None` on SQLite.
    pub async fn listen_events(&self) -> Result<Option<EventListener>> {
        let Some(pool) = self.pg_pool() else {
            return Ok(None);
        };
        let mut inner = PgListener::connect_with(pool).await?;
        inner.listen(EVENTS_CHANNEL).await?;
        Ok(Some(EventListener {
            rx: forward(inner, EVENTS_CHANNEL, parse_event_notice, || {
                EventNotice::Unknown
            }),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_parse() {
        let id = RunId::parse("r-1").unwrap();
        assert_eq!(
            parse_notice("pending:r-1"),
            Some(RunNotice::Pending(id.clone()))
        );
        assert_eq!(
            parse_notice("stop:r-1"),
            Some(RunNotice::StopRequested(id.clone()))
        );
        assert_eq!(
            parse_notice("config:r-1"),
            Some(RunNotice::ConfigChanged(id))
        );
        assert_eq!(parse_notice("bogus"), None);
        assert_eq!(parse_notice("other:r-1"), None);
        assert_eq!(parse_notice("pending:a/b"), None);
        assert_eq!(parse_event_notice(""), Some(EventNotice::Unknown));
        assert_eq!(
            parse_event_notice("a,b"),
            Some(EventNotice::Stored(vec![
                RunId::parse("a").unwrap(),
                RunId::parse("b").unwrap()
            ]))
        );
    }
}
