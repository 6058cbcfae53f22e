//! One snapshot at a time, and a minimum interval between their starts (or
//! from the end of one to the start of the next), for every request to a
//! path in the process.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::Runtime;

/// Default of [`Service::queue_timeout`](super::Service::queue_timeout).
pub(crate) const DEFAULT_QUEUE_TIMEOUT: Duration = Duration::from_secs(10);

/// When the last snapshot of a path started, or ended (as its services
/// measure).
type Last = Arc<Mutex<Option<Instant>>>;

/// The turn and the start (or end) of the last snapshot of a path, with the
/// limits a service sets on them.
pub(crate) struct Throttle {
    /// One permit: one snapshot at a time.
    turn: Arc<Semaphore>,
    last: Last,
    pub(crate) min_interval: Duration,
    /// Measure `min_interval` from the end of the last snapshot, not from
    /// its start.
    pub(crate) from_end: bool,
    pub(crate) queue_timeout: Duration,
}

/// The right to take a snapshot; the next waiting request gets it once
/// this is dropped.
pub(crate) struct Turn {
    /// Where to record the end of the snapshot, when it is measured.
    end: Option<Last>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Turn {
    fn drop(&mut self) {
        // Before the permit goes, so that the next request in the queue
        // measures from this end.
        if let Some(end) = &self.end {
            *end.lock() = Some(Instant::now());
        }
    }
}

impl Throttle {
    /// The state of `key`, shared by every service of that key: a framework
    /// may build its app once per worker thread (actix does), and state kept
    /// in one service value would then be per worker, and neither
    /// `min_interval` nor "one at a time" would hold for the process.
    pub(crate) fn shared(key: &str) -> Throttle {
        type State = (Arc<Semaphore>, Arc<Mutex<Option<Instant>>>);
        static STATES: crate::fork::Lazy<Mutex<HashMap<String, State>>> =
            crate::fork::Lazy::new(Default::default);
        let (turn, last) = STATES
            .lock()
            .entry(key.to_owned())
            .or_insert_with(|| (Arc::new(Semaphore::new(1)), Arc::default()))
            .clone();
        Throttle {
            turn,
            last,
            min_interval: Duration::ZERO,
            from_end: false,
            queue_timeout: DEFAULT_QUEUE_TIMEOUT,
        }
    }

    /// Time left before the next snapshot may start, if any.
    pub(crate) fn too_soon(&self) -> Option<Duration> {
        self.wait_left(*self.last.lock(), Instant::now())
    }

    /// Waits up to `queue_timeout` for the snapshot in progress to end;
    /// `None` when it did not.
    pub(crate) async fn turn(&self, runtime: &impl Runtime) -> Option<Turn> {
        let acquire = self.turn.clone().acquire_owned();
        match runtime.timeout(self.queue_timeout, acquire).await {
            Some(Ok(permit)) => Some(Turn {
                end: None,
                _permit: permit,
            }),
            // Timed out, or (never: it is not closed) the semaphore was closed.
            _ => None,
        }
    }

    /// Starts the snapshot of `turn` unless it is too soon (else the time
    /// left): records its start, or has `turn` record its end when it is
    /// dropped.
    pub(crate) fn start(&self, turn: &mut Turn) -> Result<(), Duration> {
        let now = Instant::now();
        let mut last = self.last.lock();
        if let Some(wait) = self.wait_left(*last, now) {
            return Err(wait);
        }
        if self.from_end {
            turn.end = Some(self.last.clone());
        } else {
            *last = Some(now);
        }
        Ok(())
    }

    fn wait_left(&self, last: Option<Instant>, now: Instant) -> Option<Duration> {
        let elapsed = now.saturating_duration_since(last?);
        (elapsed < self.min_interval).then(|| self.min_interval - elapsed)
    }
}

impl std::fmt::Debug for Throttle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Throttle")
            .field("min_interval", &self.min_interval)
            .field("from_end", &self.from_end)
            .field("queue_timeout", &self.queue_timeout)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::Tokio;

    const HOUR: Duration = Duration::from_secs(3600);

    #[tokio::test]
    async fn from_the_start_a_snapshot_in_progress_already_counts() {
        let mut throttle = Throttle::shared("throttle-from-start");
        throttle.min_interval = HOUR;
        let mut turn = throttle.turn(&Tokio).await.unwrap();
        assert_eq!(throttle.start(&mut turn), Ok(()));
        assert!(throttle.too_soon().is_some());
        drop(turn);
        let mut next = throttle.turn(&Tokio).await.unwrap();
        assert!(throttle.start(&mut next).is_err());
    }

    /// The interval runs from the moment the turn is given back, and a
    /// request that waited for it is then too soon.
    #[tokio::test]
    async fn from_the_end_the_interval_starts_when_the_turn_is_given_back() {
        let mut throttle = Throttle::shared("throttle-from-end");
        throttle.min_interval = HOUR;
        throttle.from_end = true;
        let mut turn = throttle.turn(&Tokio).await.unwrap();
        assert_eq!(throttle.start(&mut turn), Ok(()));
        assert_eq!(throttle.too_soon(), None);
        drop(turn);
        let wait = throttle.too_soon().unwrap();
        assert!(wait > HOUR - Duration::from_secs(60), "{wait:?}");
        let mut next = throttle.turn(&Tokio).await.unwrap();
        assert!(throttle.start(&mut next).is_err());
        // A turn that did not start a snapshot records no end.
        *throttle.last.lock() = None;
        drop(next);
        assert_eq!(throttle.too_soon(), None);
    }
}
