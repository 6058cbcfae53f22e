//! Keeping webstack usable in the child of `fork()`.
//!
//! Only the forking thread exists in the child; every other thread stopped
//! wherever it was, maybe holding a lock of webstack's. So this module holds
//! two things, and imports no stage:
//!
//! - the capture gate ([`capturing`]), held shared by every capture while
//!   it reads the registry, and the primitives the stages keep their state
//!   in ([`Held`], [`Lazy`], [`Mutex`]);
//! - one set of `pthread_atfork` handlers (installed once, by the first
//!   [`register`] or capture), which run the handlers that each stage
//!   registered, a static [`ForkHandlers`], from its own module, with
//!   [`register`], before its first use of the lock it protects. A stage
//!   says where it runs with its [`Rank`]; registration stores a pointer in
//!   the rank's slot, without locking or allocating.
//!
//! The order, which keeps forks free of deadlocks:
//!
//! - *prepare* (in the parent, before the fork) first runs the registered
//!   stages' one-time initialisations that must not be left half done by
//!   another thread (`before_gate`: the registry's stack for exiting
//!   threads, the snapshot's process facts; and the clock's epoch), then
//!   takes the capture gate exclusively, which waits for the registry reads
//!   of running captures to finish (microseconds to a millisecond: a
//!   capture holds the gate only while it reads the registry, and never
//!   waits on the program there), then runs each registered stage's
//!   *prepare* in rank order, whatever the order they registered in:
//!   [`Rank::Registry`] takes every registry shard lock (a capture holds
//!   the gate and then takes them, so the gate comes first),
//!   [`Rank::Native`] the native signal's configuration,
//!   [`Rank::Resolve`] the crate-origin set and [`Rank::Serve`] the serving
//!   throttle's table (the locks reached outside a capture). At the fork no other thread holds any of them, and none
//!   holds a lock that only the registry reads take (a task's lock for
//!   copying its chain). Which stages' *prepare* ran is kept with the gate's
//!   guard;
//! - *parent* runs the *after* handler of exactly those stages, in reverse
//!   rank order (serve, resolve, native, registry), which release their locks,
//!   then releases the gate;
//! - *child* does the same, each stage first making its state describe the
//!   child: the registry keeps only the forking thread (its kernel thread
//!   id updated) and the tasks that can still make progress, the native
//!   collector forgets the parent's threads (ids by tid, suspects, a slot
//!   left claimed by an unwinder that never finished), and the throttle
//!   forgets the parent's turns (one may be held by a request of the
//!   parent's, which never ends in the child).
//!
//! A stage that registers while a fork is under way (between the slots'
//! scan in *prepare* and the end of *parent*) is not undone by that fork,
//! whose *prepare* did not run for it; and its registration waits for the
//! fork to end before it returns, so its first lock is taken after the
//! fork (see [`register`]). So a stage registers where its thread holds
//! no lock that a *prepare* takes.
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

use std::cell::{Cell, UnsafeCell};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, Ordering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

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
    /// Only from a fork handler's *prepare* (or a test calling the handlers
    /// of a [`Stages`] of its own the same way), with `guard` just acquired
    /// by the caller.
    pub(crate) unsafe fn put(&self, guard: G) {
        // SAFETY: the caller holds the lock, so no other thread uses the cell.
        unsafe { *self.0.get() = Some(guard) };
    }

    /// The guard kept by `put`, if any.
    ///
    /// # Safety
    /// Only from the *parent* or *child* handler (or a test, as for `put`),
    /// on the thread that ran *prepare* (which holds the lock while the
    /// guard is kept).
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

/// A stage's place in the order of the fork handlers: *prepare* runs the
/// registered stages' handlers in this order, after taking the gate;
/// *parent* and *child* in the reverse order, before releasing it. A
/// capture holds the gate and then takes registry shard locks, so the
/// registry comes first after the gate. Names positions only: this module
/// knows nothing of the stages but the handlers they register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rank {
    /// The registry of threads and tasks (its shard locks).
    Registry,
    /// The native pass (the signal's configuration; the collector's state).
    Native,
    /// The snapshot's symbol resolution (the crate-origin set).
    Resolve,
    /// The serving throttle (its table of paths' turns).
    Serve,
}

/// How many [`Rank`]s there are.
const RANKS: usize = 4;

impl Rank {
    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// A stage's fork handlers: a static of the stage's own, given to
/// [`register`].
pub(crate) struct ForkHandlers {
    /// A one-time initialisation run before the gate is taken, so that no
    /// fork finds it half done by another thread (a `LazyLock` so found
    /// hangs the child's first use): forcing it waits for the thread that
    /// is building it.
    pub(crate) before_gate: Option<fn()>,
    /// Takes the stage's locks. Called only by *prepare*, on the forking
    /// thread, with the gate held exclusively and the lower ranks' locks
    /// taken; it must not [`register`] anything.
    pub(crate) prepare: unsafe fn(),
    /// Releases what `prepare` took; in the child (`child` true), first
    /// makes the stage's state describe the child. Called only by *parent*
    /// or *child*, on the thread that ran `prepare`, once after each run of
    /// `prepare`, with the gate still held; it must not [`register`]
    /// anything.
    pub(crate) after: unsafe fn(child: bool),
}

/// Registers a stage's fork handlers at `rank`, once; later calls cost one
/// atomic load. Never locks or allocates (but the first registration in the
/// process installs the `pthread_atfork` handlers, see [`install`]).
///
/// Call it before the stage first takes a lock that `handlers.prepare`
/// takes, or first builds state that `handlers.after` resets in the child,
/// on every path that can come first, where the calling thread holds no
/// lock that a stage's *prepare* takes (it may hold the gate, shared). Then
/// no fork finds such a lock held without running the stage's handlers:
/// either *prepare*'s scan of the slots sees this registration, and the
/// stage's *prepare* takes the lock (waiting for its holder), or it does
/// not, and then this call returns only once that fork's *parent* has run
/// (in the child, the calling thread does not exist), so the lock is first
/// taken after the fork. See [`Stages::add`].
#[inline]
pub(crate) fn register(rank: Rank, handlers: &'static ForkHandlers) {
    if !STAGES.is_ready(rank) {
        register_slow(rank, handlers);
    }
}

#[cold]
#[inline(never)]
fn register_slow(rank: Rank, handlers: &'static ForkHandlers) {
    STAGES.add(rank, handlers);
    install();
}

/// The stages registered with the process's fork handlers.
static STAGES: Stages = Stages::new(&GATE);

/// Registered stages and the gate they are ordered after: one table for the
/// process ([`STAGES`]), others in tests.
struct Stages {
    gate: &'static RwLock<()>,
    /// Per rank, the registered handlers, null until then; set once, never
    /// changed (a pointer made from a `&'static ForkHandlers`).
    slots: [AtomicPtr<ForkHandlers>; RANKS],
    /// Per rank, a bit set once a registration has returned: the fast path
    /// of [`register`].
    ready: AtomicU8,
    /// Set by *prepare* once it holds the gate exclusively, cleared before
    /// the gate is released: a registration meanwhile waits.
    forking: AtomicBool,
    /// What *prepare* leaves for *parent* or *child*, on the forking thread.
    held: Held<Prepared>,
}

/// What a fork's *prepare* took.
struct Prepared {
    /// The stages whose *prepare* ran, by rank: only theirs are undone.
    ran: [Option<&'static ForkHandlers>; RANKS],
    /// The gate, held exclusively; released last.
    _gate: RwLockWriteGuard<'static, ()>,
}

thread_local! {
    /// Whether this thread is running fork handlers of a [`Stages`]: a
    /// registration from within them (which they must not make) does not
    /// wait for itself.
    static FORKING_HERE: Cell<bool> = const { Cell::new(false) };
}

fn set_forking_here(forking: bool) {
    let _ = FORKING_HERE.try_with(|here| here.set(forking));
}

fn forking_here() -> bool {
    FORKING_HERE.try_with(Cell::get).unwrap_or(false)
}

impl Stages {
    const fn new(gate: &'static RwLock<()>) -> Self {
        Stages {
            gate,
            slots: [const { AtomicPtr::new(std::ptr::null_mut()) }; RANKS],
            ready: AtomicU8::new(0),
            forking: AtomicBool::new(false),
            held: Held::new(),
        }
    }

    #[inline]
    fn is_ready(&self, rank: Rank) -> bool {
        // Acquire: pairs with the release in `add`, so that what follows a
        // `true` here happens after the check of `forking` made there.
        self.ready.load(Ordering::Acquire) & rank.bit() != 0
    }

    /// Stores `handlers` in the rank's slot (if no registration did
    /// already), and returns once no fork that missed it is under way.
    ///
    /// Why that is enough (see [`register`]): the slot's store (or the
    /// failed compare-exchange that read it) and the loads of `forking`
    /// here, and the store of `forking` and the slots' loads in *prepare*,
    /// are all `SeqCst`, so they fall in one total order. If a *prepare*
    /// read the slot empty, that load comes before the store here, and its
    /// store of `true` to `forking` before that: every load of `forking`
    /// here then reads `true` until that fork's *parent* clears it, so this
    /// returns after the fork. The only other clear of `forking`, *prepare*
    /// starting over, comes before that *prepare*'s next scan of the slots,
    /// which then sees this one. A caller of [`register`] that takes the
    /// fast path read `ready` set by the release below, after such a load.
    #[cold]
    fn add(&self, rank: Rank, handlers: &'static ForkHandlers) {
        let slot = &self.slots[rank as usize];
        let ptr = std::ptr::from_ref(handlers).cast_mut();
        if let Err(stored) = slot.compare_exchange(
            std::ptr::null_mut(),
            ptr,
            Ordering::SeqCst,
            Ordering::SeqCst,
        ) {
            debug_assert_eq!(stored, ptr, "two stages registered at {rank:?}");
        }
        while self.forking.load(Ordering::SeqCst) && !forking_here() {
            std::thread::sleep(std::time::Duration::from_micros(100));
        }
        self.ready.fetch_or(rank.bit(), Ordering::Release);
    }

    /// The registered handlers, by rank.
    fn registered(&self) -> [Option<&'static ForkHandlers>; RANKS] {
        std::array::from_fn(|rank| {
            let ptr = self.slots[rank].load(Ordering::SeqCst);
            // SAFETY: a non-null slot holds a pointer made in `add` from a
            // `&'static ForkHandlers`, never written through.
            unsafe { ptr.as_ref() }
        })
    }

    /// A fork's *prepare*: the registered stages' one-time initialisations,
    /// then the gate (exclusively), then the registered stages' *prepare*
    /// in rank order, each recorded for [`after`](Stages::after).
    ///
    /// # Safety
    /// As `pthread_atfork` runs a *prepare*: [`after`](Stages::after)
    /// follows on this thread, once, before this is called again.
    #[cfg_attr(not(unix), allow(dead_code))]
    unsafe fn prepare(&'static self) {
        let mut initialised = [false; RANKS];
        loop {
            for (done, handlers) in initialised.iter_mut().zip(self.registered()) {
                if let Some(handlers) = handlers.filter(|_| !*done) {
                    if let Some(init) = handlers.before_gate {
                        init();
                    }
                    *done = true;
                }
            }
            let gate = self.gate.write().unwrap_or_else(PoisonError::into_inner);
            self.forking.store(true, Ordering::SeqCst);
            set_forking_here(true);
            // From here on a stage that registers waits for the fork's end;
            // one that registered since the loop above is run after its
            // one-time initialisation or not at all: start over for it.
            // Stages only ever get added, so this ends within RANKS rounds.
            let registered = self.registered();
            let complete = registered
                .iter()
                .zip(&initialised)
                .all(|(handlers, done)| handlers.is_none() || *done);
            if !complete {
                self.forking.store(false, Ordering::SeqCst);
                set_forking_here(false);
                drop(gate);
                continue;
            }
            let mut ran = [None; RANKS];
            for (ran, handlers) in ran.iter_mut().zip(registered) {
                if let Some(handlers) = handlers {
                    // SAFETY: in *prepare*, on the forking thread, with the
                    // gate held exclusively and the lower ranks' locks
                    // taken; `after` runs once after it (our caller's
                    // contract, and it undoes what `ran` records).
                    unsafe { (handlers.prepare)() };
                    *ran = Some(handlers);
                }
            }
            // SAFETY: `held` is only touched by the thread holding this
            // table's gate exclusively: here, right after taking it, and in
            // `after`, before releasing it.
            unsafe { self.held.put(Prepared { ran, _gate: gate }) };
            return;
        }
    }

    /// A fork's *parent* or *child*: the *after* handlers of the stages
    /// whose *prepare* ran, in reverse rank order, then the gate's release.
    /// Does nothing if *prepare* did not run.
    ///
    /// # Safety
    /// As `pthread_atfork` runs a *parent* or *child*: on the thread that ran
    /// [`prepare`](Stages::prepare), once after it.
    #[cfg_attr(not(unix), allow(dead_code))]
    unsafe fn after(&self, child: bool) {
        // SAFETY: on the thread that ran `prepare` and still holds the gate
        // exclusively (our caller's contract), as `put` there.
        let Some(prepared) = (unsafe { self.held.take() }) else {
            return;
        };
        for handlers in prepared.ran.iter().rev().flatten() {
            // SAFETY: this stage's *prepare* ran in this fork's *prepare*,
            // on this thread, which still holds the gate; reverse rank
            // order; once (`ran` was just taken out of `held`).
            unsafe { (handlers.after)(child) };
        }
        self.forking.store(false, Ordering::SeqCst);
        set_forking_here(false);
        drop(prepared);
    }
}

#[cfg(unix)]
pub(crate) use imp::install;

#[cfg(not(unix))]
pub(crate) fn install() {}

#[cfg(unix)]
mod imp {
    use std::sync::atomic::{AtomicU8, Ordering};

    use super::STAGES;

    const NOT_INSTALLED: u8 = 0;
    const INSTALLING: u8 = 1;
    const INSTALLED: u8 = 2;

    /// Not a `Once`: one left running by a fork would hang the child.
    static STATE: AtomicU8 = AtomicU8::new(NOT_INSTALLED);

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
        // The clock's one-time initialisations, which another thread might
        // be in the middle of: done now, so that none is left half done in
        // the child. (The stages' own run in `STAGES.prepare`.)
        crate::clock::now_ns();
        crate::clock::uptime();
        // SAFETY: `pthread_atfork` runs *parent* or *child*, which call
        // `after`, once after this *prepare*, on this thread.
        unsafe { STAGES.prepare() };
    }

    extern "C" fn parent() {
        // SAFETY: in *parent*, on the thread that ran *prepare*, once.
        unsafe { STAGES.after(false) };
    }

    extern "C" fn child() {
        // SAFETY: in *child*, on the one thread, which ran *prepare*, once.
        unsafe { STAGES.after(true) };
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

#[cfg(all(test, not(webstack_loom)))]
mod tests {
    use std::sync::atomic::Ordering;
    use std::sync::{Mutex, RwLock};
    use std::time::Duration;

    use super::{ForkHandlers, Rank, Stages};

    /// Stages registered out of rank order run their *prepare* in rank
    /// order and their *after* in reverse; one registered while a fork is
    /// under way waits for its end and is not undone by it; the next fork
    /// runs it too.
    #[test]
    fn handlers_run_in_rank_order_and_only_what_prepare_ran_is_undone() {
        static LOG: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
        fn log(what: &'static str) {
            LOG.lock().unwrap().push(what);
        }
        fn take_log() -> Vec<&'static str> {
            std::mem::take(&mut *LOG.lock().unwrap())
        }
        static REGISTRY: ForkHandlers = ForkHandlers {
            before_gate: Some(|| log("registry init")),
            prepare: || log("registry prepare"),
            after: |child| {
                log(if child {
                    "registry child"
                } else {
                    "registry parent"
                })
            },
        };
        static NATIVE: ForkHandlers = ForkHandlers {
            before_gate: None,
            prepare: || log("native prepare"),
            after: |child| {
                log(if child {
                    "native child"
                } else {
                    "native parent"
                })
            },
        };
        static RESOLVE: ForkHandlers = ForkHandlers {
            before_gate: Some(|| log("resolve init")),
            prepare: || log("resolve prepare"),
            after: |child| {
                log(if child {
                    "resolve child"
                } else {
                    "resolve parent"
                })
            },
        };
        static GATE: RwLock<()> = RwLock::new(());
        static STAGES: Stages = Stages::new(&GATE);

        STAGES.add(Rank::Resolve, &RESOLVE);
        STAGES.add(Rank::Registry, &REGISTRY);
        assert!(STAGES.is_ready(Rank::Resolve) && STAGES.is_ready(Rank::Registry));
        assert!(!STAGES.is_ready(Rank::Native));

        // SAFETY: `after` follows on this thread, once.
        unsafe { STAGES.prepare() };
        assert!(GATE.try_read().is_err(), "prepare holds the gate");
        let late = std::thread::spawn(|| {
            STAGES.add(Rank::Native, &NATIVE);
            log("native registered");
        });
        while STAGES.slots[Rank::Native as usize]
            .load(Ordering::SeqCst)
            .is_null()
        {
            std::thread::yield_now();
        }
        std::thread::sleep(Duration::from_millis(20));
        assert!(!late.is_finished(), "a registration waits for the fork");
        // SAFETY: on the thread that ran `prepare`, once.
        unsafe { STAGES.after(false) };
        late.join().unwrap();
        assert!(GATE.try_read().is_ok(), "after releases the gate");
        assert!(STAGES.is_ready(Rank::Native));
        assert_eq!(
            take_log(),
            [
                "registry init",
                "resolve init",
                "registry prepare",
                "resolve prepare",
                "resolve parent",
                "registry parent",
                "native registered",
            ]
        );

        // SAFETY: as above.
        unsafe { STAGES.prepare() };
        // SAFETY: as above.
        unsafe { STAGES.after(true) };
        // A second `after` finds nothing to undo.
        // SAFETY: as above (it does nothing without a `prepare`).
        unsafe { STAGES.after(false) };
        assert_eq!(
            take_log(),
            [
                "registry init",
                "resolve init",
                "registry prepare",
                "native prepare",
                "resolve prepare",
                "resolve child",
                "native child",
                "registry child",
            ]
        );
    }

    /// A stage registered after *prepare* ran the one-time initialisations
    /// (here by one of them) has its own run before the gate too: *prepare*
    /// starts over rather than run its handlers without it.
    #[test]
    fn a_stage_registered_during_prepare_gets_its_initialisation_first() {
        static LOG: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
        fn log(what: &'static str) {
            LOG.lock().unwrap().push(what);
        }
        static GATE: RwLock<()> = RwLock::new(());
        static STAGES: Stages = Stages::new(&GATE);
        static REGISTRY: ForkHandlers = ForkHandlers {
            before_gate: Some(|| {
                log("registry init");
                STAGES.add(Rank::Native, &NATIVE);
            }),
            prepare: || log("registry prepare"),
            after: |_| log("registry after"),
        };
        static NATIVE: ForkHandlers = ForkHandlers {
            before_gate: Some(|| {
                assert!(GATE.try_write().is_ok(), "run before the gate");
                log("native init");
            }),
            prepare: || log("native prepare"),
            after: |_| log("native after"),
        };

        STAGES.add(Rank::Registry, &REGISTRY);
        // SAFETY: `after` follows on this thread, once.
        unsafe { STAGES.prepare() };
        // SAFETY: on the thread that ran `prepare`, once.
        unsafe { STAGES.after(false) };
        assert_eq!(
            *LOG.lock().unwrap(),
            [
                "registry init",
                "native init",
                "registry prepare",
                "native prepare",
                "native after",
                "registry after",
            ]
        );
    }
}
