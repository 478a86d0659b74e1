//! Sightline configuration.
//!
//! Two files: the **server** configuration (`sightline.toml`: data directory, database, ports,
//! inference provider; environment overrides `SIGHTLINE_<SECTION>__<FIELD>`) and the
//! per-customer **pipeline** configuration (model, tracker, zones, lines, rules, drawing,
//! output, policies), versioned in the database. Both reject unknown fields and report every
//! validation error with its field path.

pub mod media;
pub mod pipeline;
pub mod policy;
pub mod secondary;
pub mod secret;
pub mod server;
mod shape;
pub mod sources;

pub use media::{
    MediaSettings, PictureSource, PipelineMedia, Retention, RetentionOverride, S3Settings,
};
pub use pipeline::{
    FrameFormat, ModelSection, MotionGate, OutputSection, PipelineConfig, PipelineConfigError,
};
pub use policy::{Backoff, ConnectPolicy, ReconnectPolicy, RtspTransport, WatchdogPolicy};
pub use secondary::{SecondaryDef, SecondaryKind};
pub use secret::{Secret, mask_url};
pub use server::{
    ApiSection, EngineSection, InferGuards, InferenceSection, JobsSection, LogSection, RtspSection,
    ServerConfig, ServerConfigError,
};
pub use sources::{CheckedSource, Denied, SourceHosts, SourcePolicy};
