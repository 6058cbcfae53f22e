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

/// Whether this process is the child running `test`'s body (see
/// [`Interactive`]).
pub fn is_child(test: &str) -> bool {
    std::env::var(CHILD).as_deref() == Ok(test)
}

/// A child process running one test's body (the same test binary, filtered
/// to that test), that the parent talks to while it runs: lines on its
/// stdin, what it prints on stdout and stderr, signals. Killed when dropped.
pub struct Interactive {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    stdout: std::sync::Arc<std::sync::Mutex<String>>,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Interactive {
    /// Starts the child for `test`; the child's body checks [`is_child`].
    pub fn start(test: &str) -> Interactive {
        let exe = std::env::current_exe().expect("the test binary's path");
        let mut child = Command::new(exe)
            .args([test, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD, test)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the child test process");
        let collect = |mut pipe: Box<dyn Read + Send>| {
            let text = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
            let out = text.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = pipe.read(&mut buf) {
                    out.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
            text
        };
        let stdout = collect(Box::new(child.stdout.take().expect("piped stdout")));
        let stderr = collect(Box::new(child.stderr.take().expect("piped stderr")));
        let stdin = child.stdin.take();
        Interactive {
            child,
            stdin,
            stdout,
            stderr,
        }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the child printed on stdout so far.
    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// Everything the child printed on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until the child's stdout and stderr, together, satisfy `ready`.
    pub fn wait_for(&self, limit: Duration, ready: impl Fn(&str, &str) -> bool) -> bool {
        crate::wait::wait_until(limit, || ready(&self.stdout(), &self.stderr()))
    }

    /// Writes one line to the child's stdin.
    pub fn send(&mut self, line: &str) {
        use std::io::Write;
        let stdin = self.stdin.as_mut().expect("the child's stdin is open");
        writeln!(stdin, "{line}").expect("write to the child's stdin");
        stdin.flush().expect("flush the child's stdin");
    }

    /// Waits for the child to exit, at most `limit`; `None` if it did not
    /// (it is then killed).
    pub fn exit_status(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the child") {
                return Some(status);
            }
            if started.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What the child printed, for a failure message.
    pub fn output(&self) -> String {
        format!(
            "--- child stdout ---\n{}\n--- child stderr ---\n{}",
            self.stdout(),
            self.stderr()
        )
    }
}

impl Drop for Interactive {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
