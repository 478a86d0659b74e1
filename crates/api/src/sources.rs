//! The source policy at the API's door (issue 19): every source a client gives is checked
//! against `[api].file_roots` and `[api.source_hosts]` before anything is stored or opened.
//! Refusals are all `422 source_not_allowed` with one message per kind (files, addresses),
//! whatever the reason — a file that exists and one that does not get the same answer — and
//! the reason is logged, not returned.

use crate::error::ApiError;
use crate::state::ApiState;
use sightline_config::SourcePolicy;
use std::net::{IpAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

/// Name lookups by the system resolver (blocking; run off the async workers).
pub fn system_resolve(host: &str, port: u16) -> std::io::Result<Vec<IpAddr>> {
    Ok((host, port).to_socket_addrs()?.map(|a| a.ip()).collect())
}

/// The source as it may be stored (files become their canonical `file://` path; network
/// sources keep their name, the engine checks and pins the address again when it connects),
/// or the public reason it is refused (logged here with the detail).
pub(crate) async fn admit(
    state: &ApiState,
    source: &str,
) -> Result<Result<String, String>, ApiError> {
    let policy: Arc<SourcePolicy> = state.inner.opts.sources.clone();
    let src = source.to_owned();
    let checked = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::task::spawn_blocking(move || policy.check_source(&src, system_resolve)),
    )
    .await;
    let denied = match checked {
        Ok(Ok(Ok(c))) => {
            let network = c.addr.is_some();
            return Ok(Ok(if network { source.to_owned() } else { c.uri }));
        }
        Ok(Ok(Err(d))) => d,
        Ok(Err(e)) => return Err(ApiError::internal("source check", &e)),
        Err(_) => sightline_config::Denied {
            public: "source not allowed: the host name did not resolve in time".into(),
            detail: "DNS lookup timed out".into(),
        },
    };
    tracing::warn!(reason = %denied.detail, "source refused by the API's source policy");
    Ok(Err(denied.public))
}
