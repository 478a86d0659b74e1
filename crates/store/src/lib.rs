//! Sightline's persistence layer: the only crate that speaks SQL.
//!
//! One [`Store`] handle fronts either an embedded SQLite file (the zero-setup default) or a
//! PostgreSQL server (production, several workers), chosen by URL; each backend carries its
//! own embedded migrations, applied by [`Store::migrate`] at start-up. Repository methods on
//! [`Store`] cover:
//!
//! - runs and their transition history ([`runs`]), and their ownership by workers — claim
//!   with a lease, renew, compare-and-set transitions, release ([`lease`]);
//! - the worker registry ([`workers`]) and LISTEN/NOTIFY wake-ups on PostgreSQL ([`listen`]);
//! - events, written in batches with their outbox rows ([`events`]), and the notification
//!   outbox ([`outbox`]), and the plate index with its search ([`plates`]);
//! - batch jobs: a run plus the upload it plays ([`jobs`]);
//! - versioned configs ([`configs`]), the model index ([`models`]) and hashed API tokens
//!   ([`tokens`]).
//!
//! Queries are checked by the tests against both real backends rather than at compile time
//! (see [`store`] for why).

pub(crate) mod codec;
pub mod configs;
pub mod error;
pub mod events;
pub mod jobs;
pub mod lease;
pub mod listen;
pub mod media;
pub mod models;
pub mod outbox;
pub mod page;
pub mod plates;
pub mod runs;
pub mod source;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
pub mod tokens;
pub mod workers;

pub use configs::{ConfigSummary, ConfigVersion};
pub use error::{CorruptRow, Result, StoreError};
pub use events::EventQuery;
pub use jobs::{EventCount, JobFilter, JobProgress, JobRecord, NewJob};
pub use lease::Reason;
pub use listen::{EventListener, EventNotice, RunListener, RunNotice};
pub use media::{
    MediaClass, MediaItem, MediaUsage, NewMediaObject, NewRecording, Recording, RecordingQuery,
    RunScope,
};
pub use models::{ModelRecord, NewModel};
pub use outbox::{OutboxDepth, OutboxRow, OutboxState};
pub use page::{DEFAULT_LIMIT, MAX_LIMIT, Page, SortOrder};
pub use plates::{MatchedOn, PlateHit, PlateSearch};
pub use runs::{DesiredState, NewRun, RunError, RunFilter, RunRecord, Transition, reasons};
pub use source::SourceUri;
pub use store::{Backend, Store, StoreOptions, redact_url};
pub use tokens::{TokenRecord, TokenRole};
pub use workers::{LeaseView, SystemOverview, WorkerInfo, WorkerRecord};
