//! indicatif progress for long operations; hidden automatically when stderr is not a terminal.

use berth_storage::Progress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Bar {
    bar: ProgressBar,
}

impl Bar {
    pub fn new() -> Self {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} [{elapsed}]").expect("template"),
        );
        Bar { bar }
    }

    /// One bar of a group's (`migrate 101 102 node2`), its lines led by `prefix`.
    pub fn in_group(m: &indicatif::MultiProgress, prefix: &str) -> Self {
        let bar = m.add(ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {prefix}: {msg} [{elapsed}]")
                .expect("template"),
        );
        bar.set_prefix(prefix.to_string());
        Bar { bar }
    }
}

impl Progress for Bar {
    fn update(&self, done: u64, total: Option<u64>) {
        match total {
            Some(t) if self.bar.length() != Some(t) => {
                self.bar.set_length(t);
                self.bar.set_style(
                    ProgressStyle::with_template("{msg} [{bar:30}] {percent}% {eta}")
                        .expect("template")
                        .progress_chars("=> "),
                );
            }
            _ => {}
        }
        self.bar.set_position(done);
    }
    fn message(&self, msg: &str) {
        self.bar.set_message(msg.to_string());
        self.bar.tick();
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}
