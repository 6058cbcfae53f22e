//! Dumps without a web server: `webstack::dump` to a writer, the dump on a
//! signal (`kill -QUIT`) and the panic hook. The signal and panic cases run
//! in a child process (this test binary, filtered to one test) that the
//! test talks to.

use std::io::BufRead;
use std::sync::mpsc;
use std::time::Duration;

use support::child::{is_child, run_in_child, Interactive};
use support::wait::watchdog;
use webstack::{DumpOptions, DumpSignal, SignalError};

/// Above the longest chain of a test's own limits (four 30 s waits for the
/// child in `sigquit_…`); each test takes a few seconds.
const LIMIT: Duration = Duration::from_secs(180);

#[webstack::instrument]
fn hold_order(order: u32, customer: &str, release: &mpsc::Receiver<()>) {
    let _ = release.recv();
}

#[webstack::instrument]
async fn parked_on(order: u32, wake: tokio::sync::oneshot::Receiver<()>) {
    let _ = wake.await;
}

#[webstack::instrument]
fn explode(order: u32, customer: &str) {
    panic!("boom in order {order} for {customer}");
}

#[test]
fn dump_writes_the_grouped_text_form_to_any_writer() {
    let _watchdog = watchdog(
        "dumps::dump_writes_the_grouped_text_form_to_any_writer",
        LIMIT,
    );
    let (tx, rx) = mpsc::channel();
    let (ready_tx, ready_rx) = mpsc::channel();
    let holder = std::thread::Builder::new()
        .name("order-holder".into())
        .spawn(move || {
            webstack::init();
            ready_tx.send(()).unwrap();
            hold_order(31337, "zoe", &rx);
        })
        .unwrap();
    ready_rx.recv().unwrap();
    let options = DumpOptions::default().view(|view| view.augment(false));
    let found = support::wait::wait_until(Duration::from_secs(10), || {
        webstack::dump_to_string(&options).contains("order: u32 = 31337")
    });
    let mut out = Vec::new();
    webstack::dump(&mut out, &options).unwrap();
    let text = String::from_utf8(out).unwrap();
    tx.send(()).unwrap();
    holder.join().unwrap();
    assert!(found, "{text}");
    assert!(text.starts_with("webstack "), "{text}");
    assert!(
        text.contains("hold_order(order: u32 = 31337, customer: &str = \"zoe\""),
        "{text}"
    );
    assert!(text.contains("order-holder"), "{text}");
}

#[test]
fn sigquit_prints_a_dump_and_the_process_keeps_running() {
    let _watchdog = watchdog(
        "dumps::sigquit_prints_a_dump_and_the_process_keeps_running",
        LIMIT,
    );
    const TEST: &str = "sigquit_prints_a_dump_and_the_process_keeps_running";
    if is_child(TEST) {
        webstack::dump_on_signal(DumpSignal::Quit).expect("arm SIGQUIT");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (wake, parked) = tokio::sync::oneshot::channel();
        let task = runtime.spawn(parked_on(4242, parked));
        println!("ready");
        for line in std::io::stdin().lock().lines() {
            if line.unwrap() == "exit" {
                break;
            }
        }
        wake.send(()).unwrap();
        runtime.block_on(task).unwrap();
        println!("exiting normally");
        return;
    }
    let mut child = Interactive::start(TEST);
    assert!(
        child.wait_for(Duration::from_secs(30), |out, _| out.contains("ready")),
        "the child did not start\n{}",
        child.output()
    );
    let dumps = |text: &str| text.matches("webstack: end of dump").count();
    for round in 1..=2 {
        // SAFETY: `kill` with a valid pid and signal number.
        assert_eq!(unsafe { libc::kill(child.pid() as i32, libc::SIGQUIT) }, 0);
        assert!(
            child.wait_for(Duration::from_secs(30), |_, err| dumps(err) >= round),
            "dump {round} did not come\n{}",
            child.output()
        );
    }
    let err = child.stderr();
    assert!(
        err.contains("webstack: dump on SIGQUIT; the process keeps running"),
        "{err}"
    );
    assert!(err.contains("parked_on(order: u32 = 4242"), "{err}");
    assert!(err.contains("task idle"), "{err}");
    exits_normally(&mut child);
}

#[test]
fn dump_on_signal_keeps_a_handler_the_application_installed() {
    let _watchdog = watchdog(
        "dumps::dump_on_signal_keeps_a_handler_the_application_installed",
        LIMIT,
    );
    run_in_child(
        "dump_on_signal_keeps_a_handler_the_application_installed",
        Duration::from_secs(60),
        || {
            extern "C" fn application(_: libc::c_int) {}
            // SAFETY: zeroed `sigaction`s are valid; `application` has the
            // one-argument handler signature; `old` is writable.
            let current = unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = application as extern "C" fn(libc::c_int) as usize;
                libc::sigemptyset(&mut action.sa_mask);
                assert_eq!(
                    libc::sigaction(libc::SIGUSR1, &action, std::ptr::null_mut()),
                    0
                );
                let error = webstack::dump_on_signal(DumpSignal::User1).unwrap_err();
                assert!(matches!(
                    error,
                    SignalError::AlreadyHandled(DumpSignal::User1)
                ));
                assert!(error.to_string().contains("SIGUSR1 already has a handler"));
                let mut old: libc::sigaction = std::mem::zeroed();
                libc::sigaction(libc::SIGUSR1, std::ptr::null(), &mut old);
                old.sa_sigaction
            };
            assert_eq!(
                current, application as extern "C" fn(libc::c_int) as usize,
                "the application's handler was replaced"
            );
            // A signal still at its default action is taken, and again.
            webstack::dump_on_signal(DumpSignal::User2).unwrap();
            webstack::dump_on_signal(DumpSignal::User2).unwrap();
        },
    );
}

/// Runs `body` in a child that installs the panic hook first. In the
/// parent, returns the child's stderr once it exited successfully; in the
/// child, `None` once `body` returned (the caller checks nothing there).
fn panicking_child(test: &str, body: fn()) -> Option<String> {
    if is_child(test) {
        // The first dump with native stacks loads the test binary's debug
        // info (seconds, unoptimised): wait for it longer than the default.
        webstack::panic_hook_with(DumpOptions::default().timeout(Duration::from_secs(60)));
        body();
        println!("survived");
        return None;
    }
    let mut child = Interactive::start(test);
    let status = child.exit_status(Duration::from_secs(120));
    assert!(
        status.is_some_and(|s| s.success()) && child.stdout().contains("survived"),
        "the child did not finish normally: {status:?}\n{}",
        child.output()
    );
    Some(child.stderr())
}

#[test]
fn a_panic_prints_the_panicking_threads_frames_with_their_arguments() {
    let _watchdog = watchdog(
        "dumps::a_panic_prints_the_panicking_threads_frames_with_their_arguments",
        LIMIT,
    );
    let Some(err) = panicking_child(
        "a_panic_prints_the_panicking_threads_frames_with_their_arguments",
        || {
            let thread = std::thread::Builder::new()
                .name("exploder".into())
                .spawn(|| explode(7, "alice"))
                .unwrap();
            assert!(thread.join().is_err());
        },
    ) else {
        return;
    };
    let message = err.find("boom in order 7 for alice").expect(&err);
    let header = err
        .find("webstack: every thread and task at the panic in thread 'exploder'")
        .expect(&err);
    assert!(
        message < header,
        "the dump comes after the panic's message\n{err}"
    );
    let dump = &err[header..];
    assert!(
        dump.contains("explode(order: u32 = 7, customer: &str = \"alice\")"),
        "{err}"
    );
    assert!(dump.contains("webstack: end of dump"), "{err}");
}

#[test]
fn panics_inside_webstack_or_at_once_neither_hang_nor_repeat() {
    let _watchdog = watchdog(
        "dumps::panics_inside_webstack_or_at_once_neither_hang_nor_repeat",
        LIMIT,
    );
    let Some(err) = panicking_child(
        "panics_inside_webstack_or_at_once_neither_hang_nor_repeat",
        || {
            // A writer that panics makes the panic happen inside webstack's
            // rendering, on a thread that is taking a dump itself.
            struct Panicking;
            impl std::io::Write for Panicking {
                fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                    panic!("writer gave up");
                }
                fn flush(&mut self) -> std::io::Result<()> {
                    Ok(())
                }
            }
            let inside = std::thread::spawn(|| {
                let options = DumpOptions::default().view(|view| view.augment(false));
                webstack::dump(&mut Panicking, &options)
            });
            assert!(inside.join().is_err());
            // Eight threads panic at once while another takes snapshots in a
            // loop: the panics share one dump (or are told one was just
            // printed), and the process goes on.
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let busy = {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let _ = webstack::dump_to_string(&DumpOptions::default());
                    }
                })
            };
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
            let threads: Vec<_> = (0..8)
                .map(|i| {
                    let barrier = barrier.clone();
                    std::thread::spawn(move || {
                        barrier.wait();
                        explode(i, "many");
                    })
                })
                .collect();
            for thread in threads {
                assert!(thread.join().is_err());
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            busy.join().unwrap();
        },
    ) else {
        return;
    };
    assert!(err.contains("writer gave up"), "{err}");
    assert_eq!(err.matches("boom in order").count(), 8, "{err}");
    let dumps = err.matches("webstack: end of dump").count();
    // One for the writer's panic, one shared by the eight (which come
    // more than a second later only if the first dump was slow).
    assert!((1..=3).contains(&dumps), "{dumps} dumps\n{err}");
    assert!(!err.contains("did not finish within"), "{err}");
}

/// Makes fd 2 the write end of a pipe whose read end is closed, as when
/// the log collector reading a service's stderr went away: every write
/// fails with `EPIPE` (std ignores `SIGPIPE`).
fn stderr_to_a_closed_pipe() {
    let mut fds = [0; 2];
    // SAFETY: `pipe` writes two new fds into the array; `dup2` replaces fd 2
    // with the write end, and both pipe fds are closed after, leaving fd 2
    // as the only end. Nothing else in this process holds them.
    unsafe {
        assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
        assert_eq!(libc::dup2(fds[1], 2), 2);
        libc::close(fds[0]);
        libc::close(fds[1]);
    }
    let byte = b'x';
    // SAFETY: `write` reads one byte from a local.
    let written = unsafe { libc::write(2, std::ptr::addr_of!(byte).cast(), 1) };
    let error = std::io::Error::last_os_error();
    println!("a write to stderr: {written}, {error}");
    assert_eq!(error.raw_os_error(), Some(libc::EPIPE));
}

#[test]
fn panics_with_stderr_a_closed_pipe_do_not_abort() {
    let _watchdog = watchdog(
        "dumps::panics_with_stderr_a_closed_pipe_do_not_abort",
        LIMIT,
    );
    run_in_child(
        "panics_with_stderr_a_closed_pipe_do_not_abort",
        Duration::from_secs(120),
        || {
            webstack::panic_hook_with(DumpOptions::default().timeout(Duration::from_secs(60)));
            stderr_to_a_closed_pipe();
            // The second panic comes within a second of the first dump's
            // end: the hook writes a note instead of a dump.
            for order in [1, 2] {
                let caught = std::panic::catch_unwind(|| explode(order, "closed"));
                assert!(caught.is_err());
                println!("panic {order} caught");
                std::thread::sleep(Duration::from_millis(10));
            }
            println!("survived");
        },
    );
}

/// About 1 KiB of stack left: less than the kernel's signal frame on any
/// x86_64 or aarch64 (`AT_MINSIGSTKSZ`, 2 to 5 KiB), so a handler that
/// does not run on the thread's alternate stack cannot even start there.
const NEAR_GUARD: usize = 1024;

#[test]
fn sigquit_on_a_thread_near_its_guard_page_runs_on_its_alternate_stack() {
    let _watchdog = watchdog(
        "dumps::sigquit_on_a_thread_near_its_guard_page_runs_on_its_alternate_stack",
        LIMIT,
    );
    const TEST: &str = "sigquit_on_a_thread_near_its_guard_page_runs_on_its_alternate_stack";
    if is_child(TEST) {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        webstack::dump_on_signal(DumpSignal::Quit).expect("arm SIGQUIT");
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let left = std::sync::Arc::new(AtomicUsize::new(0));
        let (tid_tx, tid_rx) = mpsc::channel();
        let deep = {
            let (stop, left) = (stop.clone(), left.clone());
            std::thread::Builder::new()
                .name("near-guard".into())
                .stack_size(64 * 1024)
                .spawn(move || {
                    let _alternate = support::altstack::install_small();
                    // SAFETY: `gettid` has no preconditions.
                    tid_tx.send(unsafe { libc::gettid() }).unwrap();
                    std::hint::black_box(support::guard_page::descend_and_spin(
                        NEAR_GUARD, &left, &stop,
                    ));
                })
                .unwrap()
        };
        let tid = tid_rx.recv().unwrap();
        while left.load(Ordering::Acquire) == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        println!("ready {tid} {}", left.load(Ordering::Acquire));
        for line in std::io::stdin().lock().lines() {
            if line.unwrap() == "exit" {
                break;
            }
        }
        stop.store(true, Ordering::Relaxed);
        deep.join().unwrap();
        println!("exiting normally");
        return;
    }
    let mut child = Interactive::start(TEST);
    assert!(
        child.wait_for(Duration::from_secs(30), |out, _| out.contains("ready ")),
        "the child did not start\n{}",
        child.output()
    );
    let out = child.stdout();
    let ready = out[out.find("ready ").unwrap()..].lines().next().unwrap();
    let mut words = ready.split(' ').skip(1);
    let tid: libc::pid_t = words.next().unwrap().parse().unwrap();
    let left: usize = words.next().unwrap().parse().unwrap();
    assert!(
        (NEAR_GUARD - 512..=NEAR_GUARD).contains(&left),
        "{left} bytes left\n{}",
        child.output()
    );
    // The signal goes to the thread near its guard page, as a process-wide
    // `kill -QUIT` does when the kernel picks that thread.
    // SAFETY: `tgkill` with the child's pid, one of its threads and a
    // valid signal number.
    let sent = unsafe { libc::tgkill(child.pid() as libc::pid_t, tid, libc::SIGQUIT) };
    assert_eq!(sent, 0, "{}", std::io::Error::last_os_error());
    let dumped = child.wait_for(Duration::from_secs(30), |_, err| {
        err.contains("webstack: end of dump")
    });
    if !dumped {
        let status = child.exit_status(Duration::ZERO);
        panic!("no dump came; the child: {status:?}\n{}", child.output());
    }
    let err = child.stderr();
    assert!(
        err.contains("webstack: dump on SIGQUIT; the process keeps running"),
        "{err}"
    );
    assert!(err.contains("near-guard"), "{err}");
    exits_normally(&mut child);
}

/// A server framework a child process runs for the SIGQUIT tests.
#[derive(Clone, Copy, Debug)]
enum Framework {
    /// actix-web with its own signal handling on, as `HttpServer` starts by
    /// default: SIGINT and SIGTERM stop it gracefully, SIGQUIT at once.
    Actix,
    /// axum on tokio, shut down gracefully on the same three signals
    /// through `tokio::signal`, as applications write it.
    Axum,
}

/// In the child: arms the dump on SIGQUIT, serves `GET /` on 127.0.0.1
/// with `framework`, prints `ready <addr>`, and stops the server on `exit`
/// from stdin.
fn serve_until_exit(framework: Framework) {
    webstack::dump_on_signal(DumpSignal::Quit).expect("arm SIGQUIT");
    let (addr_tx, addr_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = std::thread::spawn(move || match framework {
        Framework::Actix => actix_rt::System::new().block_on(async move {
            use actix_web::{web, App, HttpServer};
            let server = HttpServer::new(|| {
                App::new().route("/", web::get().to(|| async { "still serving" }))
            })
            .workers(1)
            .bind("127.0.0.1:0")
            .expect("bind 127.0.0.1:0");
            addr_tx.send(server.addrs()[0]).unwrap();
            let server = server.run();
            let handle = server.handle();
            actix_rt::spawn(async move {
                let _ = stop_rx.await;
                handle.stop(true).await;
            });
            server.await.unwrap();
        }),
        Framework::Axum => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                use actix_rt::signal::unix::{signal, SignalKind};
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                let app = axum::Router::new()
                    .route("/", axum::routing::get(|| async { "still serving" }));
                let mut term = signal(SignalKind::terminate()).unwrap();
                let mut quit = signal(SignalKind::quit()).unwrap();
                let shutdown = async move {
                    tokio::select! {
                        _ = actix_rt::signal::ctrl_c() => println!("shutdown on SIGINT"),
                        _ = term.recv() => println!("shutdown on SIGTERM"),
                        _ = quit.recv() => println!("shutdown on SIGQUIT"),
                        _ = stop_rx => {}
                    }
                };
                axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown)
                    .await
                    .unwrap();
            });
        }
    });
    let addr = addr_rx.recv().unwrap();
    println!("ready {addr}");
    for line in std::io::stdin().lock().lines() {
        if line.unwrap() == "exit" {
            break;
        }
    }
    let _ = stop_tx.send(());
    server.join().unwrap();
    println!("exiting normally");
}

/// In the parent: the child serving with `framework` gets `kill -QUIT`,
/// prints the dump, and still answers a request a second later.
fn sigquit_keeps_serving(test: &str, framework: Framework) {
    let mut child = Interactive::start(test);
    assert!(
        child.wait_for(Duration::from_secs(30), |out, _| out.contains("ready ")),
        "the child did not start\n{}",
        child.output()
    );
    let out = child.stdout();
    let ready = out[out.find("ready ").unwrap()..].lines().next().unwrap();
    let addr: std::net::SocketAddr = ready["ready ".len()..].parse().unwrap();
    let before = support::server::get_within(addr, "/", Duration::from_secs(30));
    assert_eq!(before.text(), "still serving", "{framework:?}");
    // SAFETY: `kill` with a valid pid and signal number.
    assert_eq!(unsafe { libc::kill(child.pid() as i32, libc::SIGQUIT) }, 0);
    assert!(
        child.wait_for(Duration::from_secs(30), |_, err| err
            .contains("webstack: end of dump")),
        "no dump came\n{}",
        child.output()
    );
    std::thread::sleep(Duration::from_secs(1));
    let after = support::server::get(addr, "/");
    assert!(
        after.as_ref().is_ok_and(|r| r.text() == "still serving"),
        "{framework:?} stopped serving after SIGQUIT: {after:?}\n{}",
        child.output()
    );
    exits_normally(&mut child);
}

#[test]
fn sigquit_dumps_and_an_actix_server_keeps_serving() {
    let _watchdog = watchdog(
        "dumps::sigquit_dumps_and_an_actix_server_keeps_serving",
        LIMIT,
    );
    const TEST: &str = "sigquit_dumps_and_an_actix_server_keeps_serving";
    if is_child(TEST) {
        serve_until_exit(Framework::Actix);
        return;
    }
    sigquit_keeps_serving(TEST, Framework::Actix);
}

#[test]
fn sigquit_dumps_and_an_axum_server_keeps_serving() {
    let _watchdog = watchdog(
        "dumps::sigquit_dumps_and_an_axum_server_keeps_serving",
        LIMIT,
    );
    const TEST: &str = "sigquit_dumps_and_an_axum_server_keeps_serving";
    if is_child(TEST) {
        serve_until_exit(Framework::Axum);
        return;
    }
    sigquit_keeps_serving(TEST, Framework::Axum);
}

/// Asks the child to exit and checks that it did, normally.
fn exits_normally(child: &mut Interactive) {
    child.send("exit");
    let status = child.exit_status(Duration::from_secs(30));
    assert!(
        status.is_some_and(|s| s.success()) && child.stdout().contains("exiting normally"),
        "the child did not exit normally: {status:?}\n{}",
        child.output()
    );
}
