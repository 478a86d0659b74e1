//! The engine's integration tests, one binary (links once): lifecycle and supervision on
//! the embedded store, the golden replay of the sample clip, and event pictures cut from
//! the right frames.

mod lifecycle;
mod motion;
mod pictures;
mod plates;
mod replay;
