//! The native-stack signal belongs to the application when it installed a
//! handler first: webstack refuses to replace it, says why in the snapshot,
//! and shows shadow stacks. Runs without the test harness so that nothing
//! else captures while the process's signal dispositions change.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use support::wait::watchdog;
use webstack::native::{self, Error};
use webstack::{Options, Snapshot, State};

static APP_HANDLER_CALLS: AtomicUsize = AtomicUsize::new(0);

extern "C" fn app_handler(_: libc::c_int) {
    APP_HANDLER_CALLS.fetch_add(1, Ordering::Relaxed);
}

fn handler_of(signal: i32) -> usize {
    // SAFETY: a zeroed `sigaction` is a valid out-parameter; a null new action
    // only queries.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        assert_eq!(libc::sigaction(signal, std::ptr::null(), &mut old), 0);
        old.sa_sigaction
    }
}

#[webstack::instrument]
fn capture_inside(request: u32) -> Snapshot {
    Snapshot::capture(&Options::default().augment(true))
}

fn main() {
    let _watchdog = watchdog("native_conflict", Duration::from_secs(120));
    let default_signal = libc::SIGRTMIN() + 3;
    assert_eq!(native::current_signal(), Some(default_signal));

    // augment=0 installs nothing and signals nobody.
    let snapshot = Snapshot::capture(&Options::default().augment(false));
    assert!(!snapshot.augmented);
    assert_eq!(snapshot.native_error, None);
    assert_eq!(handler_of(default_signal), libc::SIG_DFL);
    assert_eq!(webstack::__test_hooks::native::handler_runs(), 0);

    // The application owns SIGRTMIN+3.
    // SAFETY: installing a plain handler that only touches an atomic.
    unsafe {
        assert_ne!(
            libc::signal(default_signal, app_handler as *const () as usize),
            libc::SIG_ERR
        );
    }
    let snapshot = capture_inside(5);
    assert!(!snapshot.augmented);
    let error = snapshot
        .native_error
        .as_deref()
        .expect("an error is recorded");
    assert!(error.contains("already has a handler"), "{error}");
    assert!(error.contains("set_signal"), "{error}");
    assert_eq!(
        handler_of(default_signal),
        app_handler as *const () as usize
    );
    assert_eq!(APP_HANDLER_CALLS.load(Ordering::Relaxed), 0);
    assert_eq!(webstack::__test_hooks::native::handler_runs(), 0);
    // Shadow stacks are still there, and kernel states from /proc.
    let me = snapshot
        .routines()
        .find(|r| {
            r.frames
                .iter()
                .any(|f| f.function.ends_with("::capture_inside"))
        })
        .expect("the capturing thread's shadow frame");
    assert_eq!(me.frames[0].args[0].value.to_string(), "5");
    assert!(me.frames.iter().all(|f| f.instrumented));
    assert!(
        matches!(&me.state, State::Native(s) if s == "running"),
        "{:?}",
        me.state
    );
    assert!(snapshot.to_json().contains("\"native_error\":"));

    // Choosing the signal: only real-time signals.
    assert_eq!(
        native::set_signal(libc::SIGUSR1),
        Err(Error::NotRealTime(libc::SIGUSR1))
    );
    assert_eq!(
        native::set_signal(libc::SIGPROF),
        Err(Error::NotRealTime(libc::SIGPROF))
    );
    let chosen = libc::SIGRTMIN() + 5;
    assert_eq!(native::set_signal(chosen), Ok(()));
    assert_eq!(native::current_signal(), Some(chosen));
    let snapshot = capture_inside(6);
    assert!(snapshot.augmented, "{:?}", snapshot.native_error);
    assert_eq!(snapshot.native_error, None);
    assert!(webstack::__test_hooks::native::handler_runs() > 0);
    assert_eq!(APP_HANDLER_CALLS.load(Ordering::Relaxed), 0);
    let me = snapshot
        .routines()
        .find(|r| {
            r.frames
                .iter()
                .any(|f| f.function.ends_with("::capture_inside"))
        })
        .expect("the capturing thread");
    assert!(me.frames.iter().any(|f| !f.instrumented));

    // Once installed, the signal is fixed.
    assert_eq!(
        native::set_signal(libc::SIGRTMIN() + 6),
        Err(Error::AlreadyInstalled(chosen))
    );

    // An application that replaces webstack's handler later is noticed.
    // SAFETY: as above.
    unsafe {
        libc::signal(chosen, app_handler as *const () as usize);
    }
    let runs = webstack::__test_hooks::native::handler_runs();
    let snapshot = Snapshot::capture(&Options::default());
    assert!(!snapshot.augmented);
    assert!(snapshot
        .native_error
        .as_deref()
        .is_some_and(|e| e.contains("replaced")));
    assert_eq!(webstack::__test_hooks::native::handler_runs(), runs);
    assert_eq!(APP_HANDLER_CALLS.load(Ordering::Relaxed), 0);
    println!("native_conflict: ok");
}
