//! The handlers, one module per resource.

pub mod configs;
pub mod docs;
pub mod events;
pub mod jobs;
pub mod media;
pub mod models;
pub mod plates;
pub mod probes;
pub mod recordings;
pub mod runs;
pub mod system;

/// A listing's `limit`: 0 or absent for the default page, at most
/// [`sightline_store::MAX_LIMIT`]; a larger one is refused (`limit` in the field errors)
/// rather than silently cut, as the OpenAPI document declares.
pub(crate) fn page_limit(v: Option<u32>, errs: &mut sightline_core::FieldErrors) -> u32 {
    match v {
        Some(n) if n > sightline_store::MAX_LIMIT => {
            errs.push(
                "limit",
                format!(
                    "{n} is over the largest page, {}",
                    sightline_store::MAX_LIMIT
                ),
            );
            0
        }
        v => v.unwrap_or(0),
    }
}
