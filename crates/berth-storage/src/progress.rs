//! Progress reporting for long storage operations, independent of how it is shown
//! (an indicatif bar in a terminal, a stream in the API, nothing in tests).

/// Receives progress of a long operation.
pub trait Progress: Send + Sync {
    /// `done` of `total` units (bytes, files…); `total` is `None` when unknown.
    fn update(&self, done: u64, total: Option<u64>);
    /// A new phase or a notable line of output.
    fn message(&self, msg: &str);
}

/// Discards progress.
pub struct NoProgress;

impl Progress for NoProgress {
    fn update(&self, _: u64, _: Option<u64>) {}
    fn message(&self, _: &str) {}
}
