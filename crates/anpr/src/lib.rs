//! Sightline licence plates, sans-IO (issue 13): what turns text found by the OCR models into
//! plate reads. Candidate filtering, normalisation, the folded search key, per-track voting
//! across frames, watch lists and search patterns are pure functions here; the models run in
//! `inference`, the stage that schedules them in `engine`, the index in `store`.

pub mod candidates;
pub mod reading;
pub mod search;
pub mod settings;
pub mod text;
pub mod vote;
pub mod watch;

pub use candidates::{Region, TextBox, filter_candidates};
pub use reading::{Reading, Rejected, accept};
pub use search::{PlateQuery, parse_query};
pub use settings::{CompiledPlateSettings, KnownPlate, PlateSettings, Replace};
pub use text::{distance, fold, fold_char, normalize};
pub use vote::TrackVote;
pub use watch::{WatchList, WatchMatch};
