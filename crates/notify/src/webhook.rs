//! Webhook delivery: due rows are POSTed as JSON (one object per request, or an array when
//! `batch > 1`), signed with HMAC-SHA256 over the exact body bytes, with the event id as
//! `Idempotency-Key`. Up to `max_concurrency` requests are in flight per endpoint; each has
//! the sink's timeout. A failed request is retried per row with exponential backoff and
//! jitter (a `Retry-After` from the endpoint lengthens the wait), and the row becomes a dead
//! letter after `max_attempts`.

use crate::config::WebhookSinkConfig;
use crate::error::NotifyError;
use crate::notifier::Ctx;
use crate::payload::Notification;
use crate::retry::RetryPolicy;
use crate::telemetry;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use sightline_store::OutboxRow;
use std::time::{Duration, Instant};

/// Header carrying `sha256=<hex HMAC-SHA256(secret, body)>`.
pub const SIGNATURE_HEADER: &str = "X-Sightline-Signature";
/// Header carrying the event id (per-event requests) or a digest of the batch's ids.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";
/// Header carrying the 1-based attempt number of the (first) event in the request.
pub const ATTEMPT_HEADER: &str = "X-Sightline-Attempt";

/// `sha256=<hex>` of `body` under `secret`: what [`SIGNATURE_HEADER`] carries. Receivers
/// compute the same over the raw body and compare in constant time.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this never takes the `else`.
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Checks a [`SIGNATURE_HEADER`] value in constant time.
pub fn verify_signature(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(hex_sig) = header.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(sig) = hex::decode(hex_sig) else {
        return false;
    };
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

/// Why one request failed, and how long the endpoint asked us to wait.
struct Failure {
    message: String,
    retry_after: Option<Duration>,
    /// The endpoint was unreachable or answered 5xx (as opposed to refusing the content).
    unreachable: bool,
}

pub(crate) struct Worker {
    ctx: Ctx,
    cfg: WebhookSinkConfig,
    client: reqwest::Client,
    policy: RetryPolicy,
}

impl Worker {
    pub(crate) fn new(ctx: Ctx, cfg: WebhookSinkConfig) -> Result<Worker, NotifyError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(cfg.timeout_ms))
            .connect_timeout(Duration::from_millis(cfg.timeout_ms))
            .user_agent(concat!("sightline/", env!("CARGO_PKG_VERSION")))
            .pool_max_idle_per_host(cfg.max_concurrency as usize)
            .build()
            .map_err(|e| NotifyError::Client {
                sink: cfg.name.clone(),
                message: e.to_string(),
            })?;
        let policy = cfg.retry_policy();
        Ok(Worker {
            ctx,
            cfg,
            client,
            policy,
        })
    }

    /// How long claimed rows stay hidden: longer than any round can take.
    fn visibility(&self) -> Duration {
        Duration::from_millis(self.cfg.timeout_ms.saturating_mul(2).saturating_add(1000))
    }

    pub(crate) async fn run(mut self) {
        let span = tracing::info_span!("webhook", sink = %self.cfg.name);
        let _ = tracing::Instrument::instrument(
            async {
                loop {
                    self.ctx.refresh_depth(false).await;
                    if self.ctx.stopping() {
                        break;
                    }
                    let n = self.round().await;
                    if n == 0 && !self.ctx.idle().await {
                        break;
                    }
                }
                self.ctx.refresh_depth(true).await;
            },
            span,
        )
        .await;
    }

    /// One round: claim up to `batch × max_concurrency` rows, POST them concurrently, record
    /// the outcomes. Returns how many rows were claimed.
    async fn round(&mut self) -> usize {
        let limit = self.cfg.batch.saturating_mul(self.cfg.max_concurrency);
        let rows = self.ctx.claim(limit, self.visibility()).await;
        if rows.is_empty() {
            return 0;
        }
        let claimed = rows.len();
        let mut good: Vec<(OutboxRow, Notification)> = Vec::with_capacity(rows.len());
        for row in rows {
            if let Some(ev) = self.ctx.decode(&row).await {
                good.push((row, Notification::from_event(&ev)));
            }
        }
        let mut set = tokio::task::JoinSet::new();
        let batches: Vec<Vec<(OutboxRow, Notification)>> = chunk(good, self.cfg.batch as usize);
        for (i, batch) in batches.iter().enumerate() {
            let req = self.request(batch);
            set.spawn(async move { (i, post(req).await) });
        }
        let started = Instant::now();
        let mut delivered = Vec::new();
        let mut outcomes = Vec::new();
        while let Some(res) = set.join_next().await {
            match res {
                Ok((i, Ok(()))) => delivered.extend(batches[i].iter().map(|(r, _)| r.id)),
                Ok((i, Err(f))) => outcomes.push((i, f)),
                Err(e) => tracing::error!(sink = %self.cfg.name, error = %e, "request task failed"),
            }
        }
        if !delivered.is_empty() {
            self.ctx.mark_delivered(&delivered).await;
            telemetry::delivered(&self.cfg.name, delivered.len() as u64, started.elapsed());
            self.ctx.state.set_connected(true, None);
        }
        for (i, f) in outcomes {
            let rows: Vec<&OutboxRow> = batches[i].iter().map(|(r, _)| r).collect();
            let mut policy = self.policy;
            if let Some(ra) = f.retry_after {
                policy.base = policy.base.max(ra);
                policy.max = policy.max.max(ra);
            }
            if f.unreachable {
                self.ctx.state.set_connected(false, Some(&f.message));
            }
            self.ctx.mark_failed(&rows, &policy, &f.message).await;
        }
        claimed
    }

    fn request(&self, batch: &[(OutboxRow, Notification)]) -> reqwest::RequestBuilder {
        let (body, key) = if let [(_, one)] = batch {
            (one.to_json(), one.id.to_string())
        } else {
            let all: Vec<&Notification> = batch.iter().map(|(_, n)| n).collect();
            let body = serde_json::to_vec(&all).unwrap_or_default();
            let mut h = Sha256::new();
            for (_, n) in batch {
                h.update(n.id.0.as_bytes());
            }
            (body, format!("batch-{}", hex::encode(&h.finalize()[..16])))
        };
        let attempt = batch.first().map_or(1, |(r, _)| r.attempts + 1);
        let mut req = self
            .client
            .post(&self.cfg.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(IDEMPOTENCY_HEADER, key)
            .header(ATTEMPT_HEADER, attempt.to_string());
        if let Some(secret) = &self.cfg.secret {
            req = req.header(
                SIGNATURE_HEADER,
                signature(secret.expose().as_bytes(), &body),
            );
        }
        req.body(body)
    }
}

async fn post(req: reqwest::RequestBuilder) -> Result<(), Failure> {
    match req.send().await {
        Ok(resp) if resp.status().is_success() => Ok(()),
        Ok(resp) => {
            let status = resp.status();
            let retry_after = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(|s| Duration::from_secs(s.min(3600)));
            Err(Failure {
                message: format!("HTTP {status}"),
                retry_after,
                unreachable: status.is_server_error(),
            })
        }
        Err(e) => Err(Failure {
            message: if e.is_timeout() {
                "request timed out".to_owned()
            } else if e.is_connect() {
                "cannot connect".to_owned()
            } else {
                format!("request failed: {e}")
            },
            retry_after: None,
            unreachable: true,
        }),
    }
}

fn chunk<T>(items: Vec<T>, size: usize) -> Vec<Vec<T>> {
    let size = size.max(1);
    let mut out = Vec::new();
    let mut cur = Vec::with_capacity(size);
    for it in items {
        cur.push(it);
        if cur.len() == size {
            out.push(std::mem::replace(&mut cur, Vec::with_capacity(size)));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_detect_tampering() {
        let sig = signature(b"k3y", b"{\"a\":1}");
        assert!(sig.starts_with("sha256=") && sig.len() == 7 + 64);
        assert!(verify_signature(b"k3y", b"{\"a\":1}", &sig));
        assert!(!verify_signature(b"k3y", b"{\"a\":2}", &sig));
        assert!(!verify_signature(b"other", b"{\"a\":1}", &sig));
        assert!(!verify_signature(b"k3y", b"{\"a\":1}", "md5=00"));
    }

    #[test]
    fn rfc4231_test_case_2() {
        // HMAC-SHA256("Jefe", "what do ya want for nothing?")
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn chunks_keep_order() {
        assert_eq!(
            chunk((1..=5).collect(), 2),
            vec![vec![1, 2], vec![3, 4], vec![5]]
        );
        assert_eq!(chunk(Vec::<u8>::new(), 3), Vec::<Vec<u8>>::new());
    }
}
