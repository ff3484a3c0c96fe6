//! The progress line `base-backup` shows on a terminal: bytes done, rate, estimated time left
//! from the tablespace sizes the server announced.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::units::human;

/// How often the line is redrawn.
const EVERY: Duration = Duration::from_millis(500);

/// Progress of one backup.
pub struct Progress {
    enabled: bool,
    started: Instant,
    last: Instant,
    total: u64,
    done: u64,
}

impl Progress {
    /// A progress line, drawn only when `enabled` (stderr is a terminal).
    pub fn new(enabled: bool) -> Progress {
        let now = Instant::now();
        Progress { enabled, started: now, last: now, total: 0, done: 0 }
    }

    /// The expected total (sum of the tablespace sizes).
    pub fn set_total(&mut self, total: u64) {
        self.total = total;
    }

    /// Starts the clock again (the rate counts from when data starts to flow, not from the
    /// checkpoint before it).
    pub fn restart(&mut self) {
        self.started = Instant::now();
        self.last = self.started;
    }

    /// Bytes received.
    pub fn add(&mut self, n: u64) {
        self.done += n;
    }

    /// The server's own count (it runs slightly ahead of what arrived).
    pub fn server_done(&mut self, _n: u64) {}

    /// Redraws the line if it is time.
    pub fn maybe_print(&mut self) {
        if !self.enabled || self.last.elapsed() < EVERY {
            return;
        }
        self.last = Instant::now();
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = self.done as f64 / secs;
        let left = if self.total > self.done && rate > 0.0 {
            format!(", about {:.0} s left", (self.total - self.done) as f64 / rate)
        } else {
            String::new()
        };
        let pct = if self.total > 0 {
            format!(" ({:.0}%)", 100.0 * self.done as f64 / self.total as f64)
        } else {
            String::new()
        };
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[K{} of {}{pct} at {}/s{left}",
            human(self.done),
            human(self.total),
            human(rate as u64)
        );
        let _ = err.flush();
    }

    /// Removes the line.
    pub fn clear(&mut self) {
        if self.enabled {
            let _ = write!(std::io::stderr().lock(), "\r\x1b[K");
        }
    }
}
