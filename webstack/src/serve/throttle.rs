//! One snapshot at a time, and a minimum interval between their starts,
//! for every request to a path in the process.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::Runtime;

/// Default of [`Service::queue_timeout`](super::Service::queue_timeout).
pub(crate) const DEFAULT_QUEUE_TIMEOUT: Duration = Duration::from_secs(10);

/// The turn and the start of the last snapshot of a path, with the limits
/// a service sets on them.
pub(crate) struct Throttle {
    /// One permit: one snapshot at a time.
    turn: Arc<Semaphore>,
    last_start: Arc<Mutex<Option<Instant>>>,
    pub(crate) min_interval: Duration,
    pub(crate) queue_timeout: Duration,
}

/// The right to take a snapshot; the next waiting request gets it once
/// this is dropped.
pub(crate) struct Turn {
    _permit: OwnedSemaphorePermit,
}

impl Throttle {
    /// The state of `key`, shared by every service of that key: a framework
    /// may build its app once per worker thread (actix does), and state kept
    /// in one service value would then be per worker, and neither
    /// `min_interval` nor "one at a time" would hold for the process.
    pub(crate) fn shared(key: &str) -> Throttle {
        type State = (Arc<Semaphore>, Arc<Mutex<Option<Instant>>>);
        static STATES: LazyLock<Mutex<HashMap<String, State>>> = LazyLock::new(Default::default);
        let (turn, last_start) = STATES
            .lock()
            .entry(key.to_owned())
            .or_insert_with(|| (Arc::new(Semaphore::new(1)), Arc::default()))
            .clone();
        Throttle {
            turn,
            last_start,
            min_interval: Duration::ZERO,
            queue_timeout: DEFAULT_QUEUE_TIMEOUT,
        }
    }

    /// Time left before the next snapshot may start, if any.
    pub(crate) fn too_soon(&self) -> Option<Duration> {
        self.wait_left(*self.last_start.lock(), Instant::now())
    }

    /// Waits up to `queue_timeout` for the snapshot in progress to end;
    /// `None` when it did not.
    pub(crate) async fn turn(&self, runtime: &impl Runtime) -> Option<Turn> {
        let acquire = self.turn.clone().acquire_owned();
        match runtime.timeout(self.queue_timeout, acquire).await {
            Some(Ok(permit)) => Some(Turn { _permit: permit }),
            // Timed out, or (never: it is not closed) the semaphore was closed.
            _ => None,
        }
    }

    /// Records the start of a snapshot unless it is too soon; else the
    /// time left.
    pub(crate) fn start(&self) -> Result<(), Duration> {
        let now = Instant::now();
        let mut last = self.last_start.lock();
        if let Some(wait) = self.wait_left(*last, now) {
            return Err(wait);
        }
        *last = Some(now);
        Ok(())
    }

    fn wait_left(&self, last_start: Option<Instant>, now: Instant) -> Option<Duration> {
        let elapsed = now.saturating_duration_since(last_start?);
        (elapsed < self.min_interval).then(|| self.min_interval - elapsed)
    }
}

impl std::fmt::Debug for Throttle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Throttle")
            .field("min_interval", &self.min_interval)
            .field("queue_timeout", &self.queue_timeout)
            .finish_non_exhaustive()
    }
}
