//! The lock of the registry's shards: a mutex whose waiters sleep in the
//! kernel and that never poisons.
//!
//! Why not `parking_lot`: it queues its waiters in a process-wide table,
//! which a fork can leave locked in the child (see [`crate::fork`]). Why not
//! `std::sync::Mutex`: it reads the panic count when it is locked and again
//! when it is unlocked, for poisoning the registry has no use for (the
//! vectors a shard holds stay consistent if a push panics), and a task root
//! takes a shard lock twice, to register and to leave: that cost it about a
//! tenth of its instructions. This is the three-state futex mutex of
//! Drepper's "Futexes Are Tricky", as std's own on Linux: 0 unlocked, 1
//! locked, 2 locked with (maybe) sleeping waiters. Its state is one word, so
//! a fork handler can hold it across the fork and release it in the child,
//! where no waiter exists.

use std::cell::UnsafeCell;
use std::ops::{Deref, DerefMut};

use crate::sync::{AtomicU32, Ordering};

const UNLOCKED: u32 = 0;
const LOCKED: u32 = 1;
const CONTENDED: u32 = 2;

/// Times a thread finding the lock held spins before it sleeps: a shard is
/// held for a few dozen instructions, except by a snapshot copying a chunk
/// of entries.
#[cfg(not(webstack_loom))]
const SPINS: u32 = 100;
#[cfg(webstack_loom)]
const SPINS: u32 = 0;

pub(crate) struct Mutex<T> {
    state: AtomicU32,
    value: UnsafeCell<T>,
}

// SAFETY: the lock lets one thread at a time reach `value` (through a
// `MutexGuard`), and its acquire and release order those accesses: that is
// what handing a `T` from thread to thread needs, so `T: Send` suffices.
unsafe impl<T: Send> Sync for Mutex<T> {}

impl<T> Mutex<T> {
    #[cfg(not(webstack_loom))]
    pub(crate) const fn new(value: T) -> Self {
        Mutex {
            state: AtomicU32::new(UNLOCKED),
            value: UnsafeCell::new(value),
        }
    }

    #[cfg(webstack_loom)]
    pub(crate) fn new(value: T) -> Self {
        Mutex {
            state: AtomicU32::new(UNLOCKED),
            value: UnsafeCell::new(value),
        }
    }

    #[inline]
    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        if self
            .state
            .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_contended();
        }
        MutexGuard { lock: self }
    }

    #[cold]
    fn lock_contended(&self) {
        let mut state = self.state.load(Ordering::Relaxed);
        let mut spins = 0;
        while state == LOCKED && spins < SPINS {
            std::hint::spin_loop();
            spins += 1;
            state = self.state.load(Ordering::Relaxed);
        }
        if state == UNLOCKED
            && self
                .state
                .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        {
            return;
        }
        // From here on the lock is marked contended, even if this thread
        // turns out to be the only waiter: the unlock then makes one
        // unneeded wake-up call, never a missed one.
        while self.state.swap(CONTENDED, Ordering::Acquire) != UNLOCKED {
            wait(&self.state, CONTENDED);
        }
    }

    #[inline]
    fn unlock(&self) {
        if self.state.swap(UNLOCKED, Ordering::Release) == CONTENDED {
            wake_one(&self.state);
        }
    }
}

pub(crate) struct MutexGuard<'a, T> {
    lock: &'a Mutex<T>,
}

impl<T> Deref for MutexGuard<'_, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the guard's existence means this thread holds the lock.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for MutexGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes the access unique.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for MutexGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.lock.unlock();
    }
}

/// Sleeps while `state` holds `expected` (or until woken; spurious returns
/// are fine: the caller checks again).
#[cfg(all(target_os = "linux", not(webstack_loom)))]
fn wait(state: &AtomicU32, expected: u32) {
    crate::futex::wait(state, expected, None);
}

/// Wakes one thread sleeping in [`wait`] on `state`.
#[cfg(all(target_os = "linux", not(webstack_loom)))]
fn wake_one(state: &AtomicU32) {
    crate::futex::wake_one(state);
}

/// Elsewhere (and under loom) a waiter yields instead of sleeping.
#[cfg(any(not(target_os = "linux"), webstack_loom))]
fn wait(_state: &AtomicU32, _expected: u32) {
    #[cfg(webstack_loom)]
    loom::thread::yield_now();
    #[cfg(not(webstack_loom))]
    std::thread::yield_now();
}

#[cfg(any(not(target_os = "linux"), webstack_loom))]
fn wake_one(_state: &AtomicU32) {}

/// Under loom, the registry's statics keep std's lock: loom's atomics cannot
/// be built in a `static`, and the registry is not what the loom models
/// check (they check this lock on its own).
#[cfg(webstack_loom)]
pub(crate) mod std_backed {
    pub(crate) type MutexGuard<'a, T> = std::sync::MutexGuard<'a, T>;

    pub(crate) struct Mutex<T>(std::sync::Mutex<T>);

    impl<T> Mutex<T> {
        pub(crate) const fn new(value: T) -> Self {
            Mutex(std::sync::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        }
    }
}

#[cfg(all(test, not(webstack_loom)))]
mod tests {
    use super::*;

    #[test]
    fn four_threads_add_under_the_lock() {
        let lock = Mutex::new(0u64);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..100_000 {
                        *lock.lock() += 1;
                    }
                });
            }
        });
        assert_eq!(*lock.lock(), 400_000);
        assert_eq!(lock.state.load(Ordering::Relaxed), UNLOCKED);
    }

    #[test]
    fn a_guard_released_by_a_panic_leaves_the_lock_usable() {
        let lock = Mutex::new(vec![1]);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut guard = lock.lock();
            guard.push(2);
            panic!("inside the lock");
        }));
        assert!(result.is_err());
        assert_eq!(*lock.lock(), [1, 2]);
    }
}
