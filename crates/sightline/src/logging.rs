//! Structured logs on stderr (stdout is kept for results such as event JSON lines), as text
//! or JSON. `RUST_LOG` overrides the configured level.

use tracing_subscriber::EnvFilter;

pub fn init(format: &str, level: &str) {
    let filter = EnvFilter::try_from_default_env()
        // ONNX Runtime logs its allocator at info; only its warnings matter to operators.
        .or_else(|_| EnvFilter::try_new(format!("{level},ort=warn")))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = if format == "json" {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.compact().try_init()
    };
}
