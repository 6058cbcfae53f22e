//! Keeping webstack usable in the child of `fork()`.
//!
//! Only the forking thread exists in the child; every other thread stopped
//! wherever it was, maybe holding a lock of webstack's. So, with
//! `pthread_atfork` handlers (installed once, on the first registration or
//! capture):
//!
//! - *prepare* (in the parent, before the fork) takes, in this order, the
//!   capture gate exclusively, which waits for the registry reads of
//!   running captures to finish (microseconds to a millisecond: a capture
//!   holds the gate only while it reads the registry, and never waits on
//!   the program there), then every registry shard lock, then the few locks
//!   reached outside a capture (the native signal's configuration, the
//!   crate-origin set). At the fork no other thread holds any of them, and
//!   none holds a lock that only the registry reads take (a task's lock for
//!   copying its chain);
//! - *parent* releases them;
//! - *child* first makes the state describe the child, then releases them:
//!   the registry keeps only the forking thread (its kernel thread id
//!   updated) and the tasks that can still make progress, and the native
//!   collector forgets the parent's threads (ids by tid, suspects, a slot
//!   left claimed by an unwinder that never finished).
//!
//! The native pass of a capture (signalling, unwinding, symbolising,
//! reading source files: up to seconds when symbols are first loaded) runs
//! after the gate is released, so a fork does not wait for it. What it
//! keeps across captures (the collector, the symbol caches) sits behind
//! [`Mutex`]es that the *child* takes back if a thread of the parent held
//! one at the fork, starting that state afresh (the old one is leaked): the
//! child's first native capture then loads symbols again instead of
//! waiting forever. It never takes `backtrace`'s lock.
//!
//! Which tasks stay in the child: a task idle at the fork stays; its future
//! exists in the child's copy of memory and the forking thread may well poll
//! it again (a current-thread runtime), though webstack cannot tell which
//! executor owns it, so the idle tasks of a dead thread's runtime stay too,
//! shown as they were at the fork. A task being polled by the forking thread
//! stays. A task being polled by another thread, or whose lock another
//! thread held (a poll's prologue or epilogue), is removed: that poll never
//! ends in the child. Its key is cleared too, so if its future is ever
//! dropped in the child it removes nothing that took its place in the
//! registry. The registry's references to the removed threads' stacks are
//! dropped; the stacks stay alive through their threads' owners, which no
//! destructor will run in the child.
//!
//! The locks held across the fork (`std::sync` ones, and the registry's
//! futex lock, [`crate::lock`]) queue their waiters in the kernel: waiters
//! of the parent do not exist in the child, so
//! releasing them there wakes nobody and leaves nothing behind
//! (`parking_lot` keeps its queues in a process-wide table that a fork can
//! leave locked).
//!
//! One-time initialisations: those *prepare* cannot simply run itself
//! (the HTML templates take tens of milliseconds to parse, and most forks
//! never render a page) are [`Lazy`] values, which no thread waits for: a
//! fork in the middle of one leaves the child to build its own, where a
//! `LazyLock` or `Once` would stay running in the child forever.
//!
//! Not covered: a lock outside webstack held at the fork (a memory
//! allocator's is the allocator's business: glibc's handles fork; the
//! `backtrace` crate's lock held by the application's own use of it).

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard};

/// Held shared by every capture, exclusively from *prepare* to *parent* or
/// *child*.
static GATE: RwLock<()> = RwLock::new(());

/// Lets a capture run; a fork waits for it.
pub(crate) fn capturing() -> RwLockReadGuard<'static, ()> {
    install();
    GATE.read().unwrap_or_else(PoisonError::into_inner)
}

/// A lock guard kept from *prepare* to *parent* or *child*, on the forking
/// thread.
pub(crate) struct Held<G>(UnsafeCell<Option<G>>);

// SAFETY: the cell is only touched by a thread that holds the lock its guard
// stands for: `put` right after acquiring it, `take` before releasing it
// (see their contracts). Two accesses are thus ordered by that lock's
// release and acquire; the guard never leaves the thread that took the lock.
unsafe impl<G> Sync for Held<G> {}

impl<G> Held<G> {
    pub(crate) const fn new() -> Self {
        Held(UnsafeCell::new(None))
    }

    /// Keeps `guard`.
    ///
    /// # Safety
    /// Only from the fork handlers, with `guard` just acquired by the caller.
    pub(crate) unsafe fn put(&self, guard: G) {
        // SAFETY: the caller holds the lock, so no other thread uses the cell.
        unsafe { *self.0.get() = Some(guard) };
    }

    /// The guard kept by `put`, if any.
    ///
    /// # Safety
    /// Only from the *parent* or *child* handler, on the thread that ran
    /// *prepare* (which holds the lock while the guard is kept).
    pub(crate) unsafe fn take(&self) -> Option<G> {
        // SAFETY: as for `put`.
        unsafe { (*self.0.get()).take() }
    }
}

/// A value built on first use by whichever thread asks first, where no
/// thread ever waits for another's build: threads that ask meanwhile build
/// their own, and the first one stored wins (the others are dropped).
///
/// For the statics that code outside the fork gate initialises (the HTML
/// templates, parsed by the warm-up thread; the serving core's shared
/// state). A `LazyLock` or `Once` that a fork finds running stays running
/// in the child, where the thread running it does not exist: the child's
/// first use waits forever. Here the child finds nothing stored and builds
/// its own.
pub(crate) struct Lazy<T> {
    value: Leaked<T>,
    build: fn() -> T,
}

impl<T> Lazy<T> {
    pub(crate) const fn new(build: fn() -> T) -> Self {
        Lazy {
            value: Leaked::new(),
            build,
        }
    }

    /// The value, built now if none is stored.
    pub(crate) fn get(&self) -> &T {
        self.value.get_or(self.build)
    }
}

impl<T> std::ops::Deref for Lazy<T> {
    type Target = T;

    fn deref(&self) -> &T {
        self.get()
    }
}

/// A mutex for state that the native pass keeps across captures (the
/// collector, the symbol caches), which runs outside the fork gate: a fork
/// does not wait for its holder, and the child of a fork that found it held
/// takes it back with [`recover`](Mutex::recover), starting that state
/// afresh. A `std` mutex inside (its waiters sleep in the kernel: none is
/// left queued in the child), built on first use like a [`Lazy`].
pub(crate) struct Mutex<T> {
    lock: Leaked<std::sync::Mutex<T>>,
    fresh: fn() -> T,
}

impl<T> Mutex<T> {
    /// A mutex holding `fresh()`, built on first use and again after
    /// [`recover`](Mutex::recover) gave up a value.
    pub(crate) const fn new(fresh: fn() -> T) -> Self {
        Mutex {
            lock: Leaked::new(),
            fresh,
        }
    }

    /// Locks the value (a panic while it was held does not poison it: each
    /// user keeps it consistent, or resets it).
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, T> {
        self.lock
            .get_or(|| std::sync::Mutex::new((self.fresh)()))
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// In the child of a fork: if the lock is held, the thread holding it
    /// was left behind by the fork and may have left the value half
    /// changed; the value is then given up (leaked, never dropped) and the
    /// next [`lock`](Mutex::lock) starts from `fresh()`. Returns whether it
    /// was given up.
    pub(crate) fn recover(&self) -> bool {
        let Some(lock) = self.lock.peek() else {
            return false;
        };
        if let Err(std::sync::TryLockError::WouldBlock) = lock.try_lock() {
            self.lock.forget();
            return true;
        }
        false
    }
}

/// A value in a leaked box, stored once by whichever thread comes first;
/// [`Leaked::forget`] lets another be stored, never freeing the old one.
struct Leaked<T>(AtomicPtr<T>);

// SAFETY: a stored value is built by one thread and then only read, through
// shared references, by any thread (so `T: Sync`); a built value that lost
// the race is dropped by the thread that built it, and a stored one is never
// dropped, so `T` never changes threads by value (`Send` is asked for as
// `LazyLock` does, so that changing one for the other needs no second look).
unsafe impl<T: Send + Sync> Sync for Leaked<T> {}

impl<T> Leaked<T> {
    const fn new() -> Self {
        Leaked(AtomicPtr::new(std::ptr::null_mut()))
    }

    fn get_or(&self, build: impl FnOnce() -> T) -> &T {
        match self.peek() {
            Some(value) => value,
            None => self.store(build()),
        }
    }

    #[cold]
    fn store(&self, value: T) -> &T {
        let built = Box::into_raw(Box::new(value));
        match self.0.compare_exchange(
            std::ptr::null_mut(),
            built,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            // SAFETY: just leaked, and a stored box is never freed.
            Ok(_) => unsafe { &*built },
            Err(stored) => {
                // SAFETY: `built` came from `Box::into_raw` above and was
                // never shared; `stored` as in `peek`.
                unsafe {
                    drop(Box::from_raw(built));
                    &*stored
                }
            }
        }
    }

    fn peek(&self) -> Option<&T> {
        let stored = self.0.load(Ordering::Acquire);
        // SAFETY: a non-null pointer was stored by `store` from a leaked
        // box, whose value was written before the release half of that
        // compare-exchange, which this acquire load read; a stored box is
        // never freed (`forget` leaks it).
        (!stored.is_null()).then(|| unsafe { &*stored })
    }

    fn forget(&self) {
        self.0.store(std::ptr::null_mut(), Ordering::Release);
    }
}

#[cfg(unix)]
pub(crate) use imp::install;

#[cfg(not(unix))]
pub(crate) fn install() {}

#[cfg(unix)]
mod imp {
    use std::sync::atomic::{AtomicU8, Ordering};
    use std::sync::{PoisonError, RwLockWriteGuard};

    use super::{Held, GATE};

    const NOT_INSTALLED: u8 = 0;
    const INSTALLING: u8 = 1;
    const INSTALLED: u8 = 2;

    /// Not a `Once`: one left running by a fork would hang the child.
    static STATE: AtomicU8 = AtomicU8::new(NOT_INSTALLED);

    static GATE_HELD: Held<RwLockWriteGuard<'static, ()>> = Held::new();

    /// Installs the fork handlers once. Another thread calling meanwhile
    /// goes on without waiting.
    #[inline]
    pub(crate) fn install() {
        if STATE.load(Ordering::Acquire) == INSTALLED {
            return;
        }
        if STATE
            .compare_exchange(
                NOT_INSTALLED,
                INSTALLING,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_err()
        {
            return;
        }
        // SAFETY: the three handlers are `extern "C" fn()` that live as long
        // as the process; `pthread_atfork` has no other precondition.
        let rc = unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
        // On failure (out of memory) forks stay unprotected; try again later.
        let state = if rc == 0 { INSTALLED } else { NOT_INSTALLED };
        STATE.store(state, Ordering::Release);
    }

    extern "C" fn prepare() {
        // One-time initialisations another thread might be in the middle of:
        // done now, so that none is left half done in the child.
        crate::clock::now_ns();
        crate::clock::uptime();
        crate::snapshot::capture::init_process_facts();
        crate::record::stack::force_detached();
        let gate = GATE.write().unwrap_or_else(PoisonError::into_inner);
        // SAFETY: in *prepare*, with the gate just taken.
        unsafe { GATE_HELD.put(gate) };
        // SAFETY: in *prepare*, after the gate.
        unsafe {
            crate::record::registry::prepare_fork();
            crate::native::prepare_fork();
            crate::snapshot::resolve::prepare_fork();
        }
    }

    extern "C" fn parent() {
        // SAFETY: in *parent*, on the thread that ran *prepare*, in reverse
        // order.
        unsafe {
            crate::snapshot::resolve::after_fork();
            crate::native::after_fork(false);
            crate::record::registry::after_fork(false);
            drop(GATE_HELD.take());
        }
    }

    extern "C" fn child() {
        // SAFETY: in *child*, on the one thread, which ran *prepare*.
        unsafe {
            crate::snapshot::resolve::after_fork();
            crate::native::after_fork(true);
            crate::record::registry::after_fork(true);
            drop(GATE_HELD.take());
        }
    }
}

/// Hooks for tests that fork at a chosen moment, reached through
/// `webstack::__test_hooks::fork`. Each is checked only on a path that runs
/// once or on the slow path, where a relaxed load costs nothing measurable.
pub(crate) mod hooks {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    static HOLD_TEMPLATES: AtomicBool = AtomicBool::new(false);
    static TEMPLATES_HELD: AtomicBool = AtomicBool::new(false);

    /// While `hold` is set, the parsing of the HTML templates waits before
    /// it starts (a forked child that means to parse them clears it).
    pub fn hold_template_parsing(hold: bool) {
        HOLD_TEMPLATES.store(hold, Ordering::Relaxed);
    }

    /// Whether a thread is parsing the HTML templates and waits at the hold.
    pub fn template_parsing_held() -> bool {
        TEMPLATES_HELD.load(Ordering::Relaxed)
    }

    /// Called where the templates' parsing starts.
    pub(crate) fn parsing_templates() {
        wait_at(&HOLD_TEMPLATES, &TEMPLATES_HELD);
    }

    static HOLD_REGISTRATION: AtomicBool = AtomicBool::new(false);
    static REGISTRATION_HELD: AtomicBool = AtomicBool::new(false);

    /// While `hold` is set, a thread registering waits between inserting
    /// its stack in the registry and installing it as its own (a forked
    /// child that means to register threads clears it).
    pub fn hold_registration(hold: bool) {
        HOLD_REGISTRATION.store(hold, Ordering::Relaxed);
    }

    /// Whether a registering thread waits at the hold.
    pub fn registration_held() -> bool {
        REGISTRATION_HELD.load(Ordering::Relaxed)
    }

    /// Called by a registering thread once its stack is in the registry.
    pub(crate) fn registering() {
        wait_at(&HOLD_REGISTRATION, &REGISTRATION_HELD);
    }

    fn wait_at(hold: &AtomicBool, held: &AtomicBool) {
        if !hold.load(Ordering::Relaxed) {
            return;
        }
        held.store(true, Ordering::Relaxed);
        while hold.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(1));
        }
        held.store(false, Ordering::Relaxed);
    }
}
