//! The Sightline engine.
//!
//! `run` drives one run's pipeline on its own thread (source → per-frame stages → output,
//! with reconnects and the signal-lost slate); `processor` is the per-frame work shared by the
//! run loop, the replay tests and the benchmark; `models` shares loaded models between runs;
//! `events` is where stamped events go; `status` and `taps` expose live state to the API.

pub mod clips;
pub mod degrade;
pub mod events;
pub mod models;
pub mod motion;
pub mod processor;
pub mod run;
pub mod secondary;
pub mod status;
pub mod supervisor;
pub mod taps;
pub mod telemetry;
pub mod writer;

pub use events::{ChannelSink, EventIds, EventSink, JsonLinesSink, MemorySink};
pub use models::{LoadedModel, ModelCache, runtime_options};
pub use processor::{CutPicture, FrameProcessor, StageTimings, StatusText};
pub use run::{
    Control, FrameHook, LogObserver, RunContext, RunHandle, RunMedia, RunObserver, RunOutcome,
    RunSpec, spawn,
};
pub use status::{RunStatus, StageSums, StatusSnapshot};
pub use supervisor::{Engine, EngineOptions, EngineShared, RunOptions, RunView};
pub use taps::{EncodedUnit, FrameTaps, LiveFeed};
pub use writer::EventRouting;
