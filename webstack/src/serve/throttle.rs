//! One snapshot at a time, and a minimum interval between their starts (or
//! from the end of one to the start of the next), for every request to a
//! path in the process.
//!
//! The state of each path lives in one table for the process, looked up at
//! each request. In the child of a `fork()` the table starts empty: the
//! parent's turn may be held by a thread that does not exist there, and a
//! child serving the same path would otherwise answer `503` forever.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::Runtime;
use crate::fork::{ForkHandlers, Held, Lazy, Rank};

/// Default of [`Service::queue_timeout`](super::Service::queue_timeout).
pub(crate) const DEFAULT_QUEUE_TIMEOUT: Duration = Duration::from_secs(10);

/// When the last snapshot of a path started, or ended (as its services
/// measure).
type Last = Arc<Mutex<Option<Instant>>>;

/// The turn and the start (or end) of the last snapshot of one path.
#[derive(Clone)]
struct Shared {
    /// One permit: one snapshot at a time.
    turn: Arc<Semaphore>,
    last: Last,
}

impl Shared {
    fn new() -> Shared {
        Shared {
            turn: Arc::new(Semaphore::new(1)),
            last: Last::default(),
        }
    }
}

type States = Mutex<HashMap<String, Shared>>;

/// Every path's state. A `std` mutex, held only to look a path up: its
/// waiters sleep in the kernel, so none is left queued in a fork's child.
static STATES: Lazy<States> = Lazy::new(Default::default);

/// The lock on [`STATES`] that a fork's *prepare* took.
static STATES_HELD: Held<MutexGuard<'static, HashMap<String, Shared>>> = Held::new();

/// The throttle's fork handlers ([`Rank::Serve`]): the table's lock is
/// never held while another lock is taken, so its place is last.
static FORK: ForkHandlers = ForkHandlers {
    before_gate: None,
    prepare: prepare_fork,
    after: after_fork,
};

/// Takes the table's lock before a fork.
///
/// # Safety
/// Only as [`FORK`]'s *prepare* (see [`ForkHandlers`]).
unsafe fn prepare_fork() {
    let states = STATES.lock().unwrap_or_else(PoisonError::into_inner);
    // SAFETY: in *prepare*, with the lock just taken.
    unsafe { STATES_HELD.put(states) };
}

/// Releases the table's lock after a fork; in the child, first empties the
/// table. The parent's states are leaked, not dropped: a thread that does
/// not exist in the child may hold a lock inside one.
///
/// # Safety
/// Only as [`FORK`]'s *after* (see [`ForkHandlers`]).
unsafe fn after_fork(child: bool) {
    // SAFETY: guaranteed by the caller.
    if let Some(mut states) = unsafe { STATES_HELD.take() } {
        if child {
            std::mem::forget(std::mem::take(&mut *states));
        }
    }
}

/// The state of `key`, shared by every service of that key: a framework
/// may build its app once per worker thread (actix does), and state kept
/// in one service value would then be per worker, and neither
/// `min_interval` nor "one at a time" would hold for the process.
fn path_state(key: &str) -> Shared {
    // Before the table's lock is first taken: see `fork::register`. The
    // caller, a request, holds no lock of webstack's.
    crate::fork::register(Rank::Serve, &FORK);
    let mut states = STATES.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(shared) = states.get(key) {
        return shared.clone();
    }
    states
        .entry(key.to_owned())
        .or_insert_with(Shared::new)
        .clone()
}

/// The limits a service sets on the snapshots of its path.
pub(crate) struct Throttle {
    key: String,
    pub(crate) min_interval: Duration,
    /// Measure `min_interval` from the end of the last snapshot, not from
    /// its start.
    pub(crate) from_end: bool,
    pub(crate) queue_timeout: Duration,
}

/// The right to take a snapshot; the next waiting request gets it once
/// this is dropped.
pub(crate) struct Turn {
    /// The path's last start or end, from the state the permit came from.
    last: Last,
    /// Whether to record the end of the snapshot in `last`.
    record_end: bool,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Turn {
    fn drop(&mut self) {
        // Before the permit goes, so that the next request in the queue
        // measures from this end.
        if self.record_end {
            *lock(&self.last) = Some(Instant::now());
        }
    }
}

fn lock(last: &Last) -> MutexGuard<'_, Option<Instant>> {
    last.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Throttle {
    /// The throttle of the snapshots of `key` (a service's path).
    pub(crate) fn shared(key: &str) -> Throttle {
        Throttle {
            key: key.to_owned(),
            min_interval: Duration::ZERO,
            from_end: false,
            queue_timeout: DEFAULT_QUEUE_TIMEOUT,
        }
    }

    /// Time left before the next snapshot may start, if any.
    pub(crate) fn too_soon(&self) -> Option<Duration> {
        self.wait_left(*lock(&path_state(&self.key).last), Instant::now())
    }

    /// Waits up to `queue_timeout` for the snapshot in progress to end;
    /// `None` when it did not.
    pub(crate) async fn turn(&self, runtime: &impl Runtime) -> Option<Turn> {
        let Shared { turn, last } = path_state(&self.key);
        match runtime
            .timeout(self.queue_timeout, turn.acquire_owned())
            .await
        {
            Some(Ok(permit)) => Some(Turn {
                last,
                record_end: false,
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
        let mut last = lock(&turn.last);
        if let Some(wait) = self.wait_left(*last, now) {
            return Err(wait);
        }
        if self.from_end {
            turn.record_end = true;
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
            .field("key", &self.key)
            .field("min_interval", &self.min_interval)
            .field("from_end", &self.from_end)
            .field("queue_timeout", &self.queue_timeout)
            .finish()
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
        *lock(&path_state("throttle-from-end").last) = None;
        drop(next);
        assert_eq!(throttle.too_soon(), None);
    }
}
