//! The handlers, one module per resource.

pub mod configs;
pub mod docs;
pub mod events;
pub mod media;
pub mod models;
pub mod probes;
pub mod recordings;
pub mod runs;
pub mod system;
