//! Metrics and log lines of the delivery tasks, one function per occurrence so the metric
//! and the log always agree (STYLE pattern 8). Every series carries the `sink` label.

use std::time::Duration;

/// Rows delivered in one round, and how long the round's deliveries took.
pub(crate) fn delivered(sink: &str, rows: u64, took: Duration) {
    if rows == 0 {
        return;
    }
    metrics::counter!("sightline_notify_delivered_total", "sink" => sink.to_owned())
        .increment(rows);
    metrics::histogram!("sightline_notify_delivery_seconds", "sink" => sink.to_owned())
        .record(took.as_secs_f64());
    tracing::debug!(
        sink,
        rows,
        took_ms = took.as_millis() as u64,
        "notifications delivered"
    );
}

/// Rows whose delivery attempt failed (retried later, or dead).
pub(crate) fn failed(sink: &str, rows: u64, dead: u64, error: &str) {
    metrics::counter!("sightline_notify_failures_total", "sink" => sink.to_owned()).increment(rows);
    if dead > 0 {
        metrics::counter!("sightline_notify_dead_letters_total", "sink" => sink.to_owned())
            .increment(dead);
    }
    tracing::warn!(sink, rows, dead, error, "notification delivery failed");
}

/// The sink's connection changed.
pub(crate) fn connection(sink: &str, connected: bool, error: Option<&str>) {
    metrics::gauge!("sightline_notify_sink_connected", "sink" => sink.to_owned())
        .set(if connected { 1.0 } else { 0.0 });
    match (connected, error) {
        (true, _) => tracing::info!(sink, "sink connected"),
        (false, Some(error)) => tracing::warn!(sink, error, "sink disconnected"),
        (false, None) => tracing::warn!(sink, "sink disconnected"),
    }
}

/// Backlog of the sink; `over` when it passed the configured cap (alert, never a drop).
pub(crate) fn depth(sink: &str, pending: u64, dead: u64, cap: u64, over: bool, was_over: bool) {
    metrics::gauge!("sightline_outbox_depth", "sink" => sink.to_owned()).set(pending as f64);
    metrics::gauge!("sightline_outbox_dead", "sink" => sink.to_owned()).set(dead as f64);
    metrics::gauge!("sightline_outbox_over_cap", "sink" => sink.to_owned()).set(if over {
        1.0
    } else {
        0.0
    });
    if over && !was_over {
        tracing::warn!(
            sink,
            pending,
            cap,
            "outbox backlog over its cap; events are kept, delivery is behind"
        );
    } else if !over && was_over {
        tracing::info!(sink, pending, cap, "outbox backlog back under its cap");
    }
}
