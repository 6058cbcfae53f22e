//! Runs a test's body in a child process (the same test binary, filtered to
//! that one test), so that a crash or a hang fails the test instead of
//! killing or stalling the test binary.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Set in the child to the name of the test whose body it runs.
const CHILD: &str = "WEBSTACK_TEST_CHILD";

/// Runs `body` in a child process that must exit successfully within
/// `limit`; in the child itself, runs `body`. `test` is the test function's
/// name, as the harness filters it.
pub fn run_in_child(test: &str, limit: Duration, body: fn()) {
    if std::env::var(CHILD).as_deref() == Ok(test) {
        body();
        return;
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut child = Command::new(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, test)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the child test process");
    // Drain both pipes on threads, so a chatty child never blocks on a full
    // pipe while the parent only polls its exit.
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("piped stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("piped stderr")));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break Some(status);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = format!(
        "--- child stdout ---\n{}\n--- child stderr ---\n{}",
        stdout.join().unwrap_or_default(),
        stderr.join().unwrap_or_default()
    );
    match status {
        None => panic!("{test}: the child process hung for {limit:?} and was killed\n{output}"),
        Some(status) if !status.success() => {
            panic!("{test}: the child process failed ({status})\n{output}")
        }
        Some(_) => println!("{test}: the child process passed\n{output}"),
    }
}
