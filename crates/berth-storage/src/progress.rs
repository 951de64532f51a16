//! Progress reporting for long storage operations, independent of how it is shown
//! (an indicatif bar in a terminal, a stream in the API, nothing in tests): berth-api's.

pub use berth_core::progress::{NoProgress, Progress};
