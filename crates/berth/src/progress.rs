//! indicatif progress for long operations; hidden automatically when stderr is not a terminal.

use berth_storage::Progress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Bar {
    bar: ProgressBar,
    /// The phase, and files done when counted.
    msg: std::sync::Mutex<(String, Option<u64>)>,
    /// Its units are bytes (shown as sizes, with a rate).
    bytes: bool,
}

impl Bar {
    pub fn new() -> Self {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} [{elapsed}]").expect("template"),
        );
        Bar::of(bar)
    }

    fn of(bar: ProgressBar) -> Self {
        Bar {
            bar,
            msg: Default::default(),
            bytes: false,
        }
    }

    /// This bar counting bytes: sizes and a rate beside the percentage and time left.
    pub fn bytes(mut self) -> Self {
        self.bytes = true;
        self
    }

    fn show(&self) {
        let m = self.msg.lock().unwrap_or_else(|e| e.into_inner());
        match m.1 {
            Some(n) => self.bar.set_message(format!("{} ({n} files)", m.0)),
            None => self.bar.set_message(m.0.clone()),
        }
    }

    /// One bar of a group's (`migrate 101 102 node2`), its lines led by `prefix`.
    pub fn in_group(m: &indicatif::MultiProgress, prefix: &str) -> Self {
        let bar = m.add(ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {prefix}: {msg} [{elapsed}]")
                .expect("template"),
        );
        bar.set_prefix(prefix.to_string());
        Bar::of(bar)
    }
}

impl Progress for Bar {
    fn update(&self, done: u64, total: Option<u64>) {
        match total {
            Some(t) if self.bar.length() != Some(t) => {
                self.bar.set_length(t);
                let t = if self.bytes {
                    "{msg} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} {eta}"
                } else {
                    "{msg} [{bar:30}] {percent}% {eta}"
                };
                self.bar.set_style(
                    ProgressStyle::with_template(t)
                        .expect("template")
                        .progress_chars("=> "),
                );
            }
            _ => {}
        }
        self.bar.set_position(done);
    }
    fn message(&self, msg: &str) {
        self.msg.lock().unwrap_or_else(|e| e.into_inner()).0 = msg.to_string();
        self.show();
        self.bar.tick();
    }
    fn files(&self, done: u64) {
        self.msg.lock().unwrap_or_else(|e| e.into_inner()).1 = Some(done);
        self.show();
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}
