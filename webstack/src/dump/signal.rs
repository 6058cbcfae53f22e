//! `kill -QUIT`: a signal that prints the grouped dump to stderr while the
//! program keeps running.
//!
//! The handler only writes one byte to the dump thread's pipe (`write` is
//! async-signal-safe; the write end does not block); errno is preserved. It
//! runs on the thread's alternate signal stack where it has one.

use std::fmt;
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};

use super::worker::{self, SIGNALS};
use super::DumpOptions;

/// A signal that can ask for a dump. Default: [`DumpSignal::Quit`], as Go
/// and the JVM do on `kill -3`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DumpSignal {
    /// `SIGQUIT` (`kill -QUIT`, `kill -3`, Ctrl-\ in a terminal).
    #[default]
    Quit,
    /// `SIGUSR1`.
    User1,
    /// `SIGUSR2`.
    User2,
    /// `SIGHUP`.
    Hangup,
}

impl DumpSignal {
    const ALL: [DumpSignal; SIGNALS] = [
        DumpSignal::Quit,
        DumpSignal::User1,
        DumpSignal::User2,
        DumpSignal::Hangup,
    ];

    /// The signal's number.
    pub fn number(self) -> i32 {
        match self {
            DumpSignal::Quit => libc::SIGQUIT,
            DumpSignal::User1 => libc::SIGUSR1,
            DumpSignal::User2 => libc::SIGUSR2,
            DumpSignal::Hangup => libc::SIGHUP,
        }
    }

    /// The signal's name: `SIGQUIT`, `SIGUSR1`, `SIGUSR2` or `SIGHUP`.
    pub fn name(self) -> &'static str {
        match self {
            DumpSignal::Quit => "SIGQUIT",
            DumpSignal::User1 => "SIGUSR1",
            DumpSignal::User2 => "SIGUSR2",
            DumpSignal::Hangup => "SIGHUP",
        }
    }

    fn index(self) -> usize {
        DumpSignal::ALL.iter().position(|s| *s == self).unwrap_or(0)
    }
}

impl fmt::Display for DumpSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why [`dump_on_signal`] did not arm a signal.
#[derive(Debug)]
#[non_exhaustive]
pub enum SignalError {
    /// The application installed its own handler for the signal; webstack
    /// does not replace it.
    AlreadyHandled(DumpSignal),
    /// The dump thread or the handler could not be set up.
    Os(std::io::Error),
}

impl fmt::Display for SignalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignalError::AlreadyHandled(signal) => write!(
                f,
                "{signal} already has a handler installed by the application (or by \
                 tokio::signal, e.g. a server already started); webstack does not replace it: \
                 arm the dump before the server starts, or choose another DumpSignal"
            ),
            SignalError::Os(e) => write!(f, "cannot arm the dump signal: {e}"),
        }
    }
}

impl std::error::Error for SignalError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SignalError::Os(e) => Some(e),
            SignalError::AlreadyHandled(_) => None,
        }
    }
}

/// Prints the grouped text dump of every thread and task to stderr each
/// time the process receives `signal`, and keeps running:
/// [`dump_on_signal_with`] the default [`DumpOptions`].
/// `#[webstack::main(dump_on_signal)]` calls it with `SIGQUIT`.
///
/// ```no_run
/// webstack::dump_on_signal(webstack::DumpSignal::Quit).unwrap();
/// // `kill -QUIT <pid>` now prints a dump to stderr.
/// ```
///
/// The handler replaces only the default action or `SIG_IGN` (a shell
/// starts background jobs with `SIGQUIT` ignored); a handler the
/// application installed is kept and [`SignalError::AlreadyHandled`]
/// returned, as the native capture does. Calling it again for the same
/// signal only changes the options. In the child of a `fork`, the signal
/// does nothing until this is called again there (the dump thread does not
/// exist in the child).
///
/// Once armed, the signal is webstack's alone: what registers for it later
/// through `tokio::signal` (which uses signal-hook-registry) is never
/// called. So `kill -QUIT` only prints a dump also under actix-web, whose
/// server otherwise stops at once on `SIGQUIT`, and under an application
/// that shuts down on it; `SIGINT` and `SIGTERM` still stop them. Arm it
/// before the server starts (`#[webstack::main(dump_on_signal)]` does):
/// once a runtime has registered the signal, it is kept as the
/// application's.
pub fn dump_on_signal(signal: DumpSignal) -> Result<(), SignalError> {
    dump_on_signal_with(signal, DumpOptions::default())
}

/// [`dump_on_signal`] with other [`DumpOptions`] (the timeout does not
/// apply: nothing waits for a signal's dump).
pub fn dump_on_signal_with(signal: DumpSignal, options: DumpOptions) -> Result<(), SignalError> {
    let worker = worker::get().map_err(SignalError::Os)?;
    worker.arm_signal(signal.index(), signal.name(), options);
    WRITE_FD.store(worker.write_fd(), Ordering::Release);
    PID.store(worker.pid(), Ordering::Release);
    install(signal)
}

/// The dump thread's pipe and the process it belongs to, for the handler.
static WRITE_FD: AtomicI32 = AtomicI32::new(-1);
static PID: AtomicU32 = AtomicU32::new(0);

/// The handler of `signal` now (`SIG_DFL`, `SIG_IGN` or a function).
fn current_handler(signal: libc::c_int) -> Result<libc::sighandler_t, SignalError> {
    // SAFETY: a zeroed `sigaction` is a valid out-parameter.
    let mut current: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a null new action only reads the current one into `current`.
    if unsafe { libc::sigaction(signal, std::ptr::null(), &mut current) } != 0 {
        return Err(SignalError::Os(std::io::Error::last_os_error()));
    }
    Ok(current.sa_sigaction)
}

/// Makes `signal` webstack's alone, also for handlers registered later
/// through signal-hook-registry, which is how `tokio::signal` registers:
/// the registry installs its own handler at a signal's first registration
/// only, and later ones join that handler's list. Registering a no-op
/// first, then installing webstack's handler over the registry's, leaves
/// that list unreachable. Without it, tokio's handler goes on top and
/// calls webstack's, and actix-server, which treats SIGQUIT as "stop now",
/// ends the process after its dump.
fn take_over_registry(signal: libc::c_int) -> Result<(), SignalError> {
    // SAFETY: the action does nothing, so it is async-signal-safe; `signal`
    // is one of `DumpSignal`'s, none of the registry's forbidden ones.
    unsafe { signal_hook_registry::register(signal, || {}) }
        .map(drop)
        .map_err(SignalError::Os)
}

fn install(signal: DumpSignal) -> Result<(), SignalError> {
    let ours = handler as extern "C" fn(libc::c_int) as usize;
    let number = signal.number();
    let mut expected = current_handler(number)?;
    if expected != ours {
        if expected != libc::SIG_DFL && expected != libc::SIG_IGN {
            return Err(SignalError::AlreadyHandled(signal));
        }
        take_over_registry(number)?;
        expected = current_handler(number)?;
    }
    // SAFETY: a zeroed `sigaction` is a valid value; every field the kernel
    // reads is set below.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = ours;
    // SA_ONSTACK: on the thread's alternate signal stack where it has one
    // (std gives one to every thread it starts). A thread near its guard
    // page has no room for the kernel's signal frame on its own stack: the
    // delivery would fail with a SIGSEGV instead of a dump.
    action.sa_flags = libc::SA_RESTART | libc::SA_ONSTACK;
    // SAFETY: a zeroed `sigaction` is a valid out-parameter.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: `sa_mask` is a valid `sigset_t` to initialise; `action` is
    // fully initialised, `handler` has the one-argument signature that the
    // absence of `SA_SIGINFO` asks for, and `old` is writable.
    let rc = unsafe {
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(number, &action, &mut old)
    };
    if rc != 0 {
        return Err(SignalError::Os(std::io::Error::last_os_error()));
    }
    let previous = old.sa_sigaction;
    if previous == expected || previous == ours {
        return Ok(());
    }
    // The application installed its handler since `expected` was read: put
    // it back. (Checking the action the kernel swapped out makes the check
    // and the change one step.)
    // SAFETY: `old` is the action the kernel just returned.
    unsafe { libc::sigaction(number, &old, std::ptr::null_mut()) };
    Err(SignalError::AlreadyHandled(signal))
}

extern "C" fn handler(signal: libc::c_int) {
    // SAFETY: `__errno_location` returns this thread's errno, always valid.
    let errno = unsafe { *libc::__errno_location() };
    let index = DumpSignal::ALL.iter().position(|s| s.number() == signal);
    // SAFETY: `getpid` is async-signal-safe and has no preconditions.
    let here = unsafe { libc::getpid() } as u32;
    let fd = WRITE_FD.load(Ordering::Acquire);
    if let (Some(index), true, true) = (index, fd >= 0, PID.load(Ordering::Acquire) == here) {
        let byte = index as u8;
        // SAFETY: `write` is async-signal-safe; it reads one byte from a
        // local. The fd stays open: the dump thread's pipe is never closed
        // in this process (its worker is kept for the process's life).
        unsafe { libc::write(fd, std::ptr::addr_of!(byte).cast(), 1) };
    }
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = errno };
}
