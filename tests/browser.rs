//! The snapshot page in a real browser: headless Chromium loads the page from
//! an in-process actix server and we check the DOM it built — one block per
//! bucket of the JSON form, typed arguments shown, a thread named with a
//! `<script>` tag shown as text and never run — and save a screenshot to
//! `artifacts/webstack.png`.
//!
//! Without Chromium (`$WEBSTACK_CHROMIUM` if set, else `/usr/bin/chromium`,
//! or `chromium` / `chromium-browser` on `PATH`) the test prints a SKIP line
//! and passes, unless `WEBSTACK_REQUIRE_BROWSER=1`.
//! `WEBSTACK_UPDATE_SCREENSHOT=1` also copies the screenshot to
//! `docs/screenshot.png`.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::server::{get, start_server};
use webstack::actix::Webstack;

const HOSTILE_NAME: &str = "<script>document.title='pwned'</script>";

#[webstack::instrument(skip(inside, release))]
fn browser_fixture(
    order_id: u64,
    customer: &str,
    inside: mpsc::Sender<()>,
    release: mpsc::Receiver<()>,
) {
    let _ = inside.send(());
    let _ = release.recv();
}

/// Threads for the page: one with a hostile name, parked in an instrumented
/// function with typed arguments, and two plain workers in one bucket;
/// returns once all three are inside.
fn start_workload() -> Vec<mpsc::Sender<()>> {
    let mut releases = Vec::new();
    let (inside, entered) = mpsc::channel();
    for (name, order, customer) in [
        (HOSTILE_NAME, 31337, "mallory"),
        ("order-worker-a", 7, "zoë"),
        ("order-worker-b", 7, "zoë"),
    ] {
        let (tx, rx) = mpsc::channel();
        releases.push(tx);
        let inside = inside.clone();
        webstack::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || browser_fixture(order, customer, inside, rx))
            .unwrap();
    }
    for _ in 0..releases.len() {
        entered.recv().unwrap();
    }
    releases
}

fn find_chromium() -> Option<PathBuf> {
    if let Some(chosen) = std::env::var_os("WEBSTACK_CHROMIUM") {
        let chosen = PathBuf::from(chosen);
        return chosen.is_file().then_some(chosen);
    }
    let fixed = Path::new("/usr/bin/chromium");
    if fixed.is_file() {
        return Some(fixed.to_owned());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// Runs headless Chromium with `extra` arguments on `url`; returns stdout.
fn chromium(binary: &Path, extra: &[&str], url: &str) -> String {
    let profile = std::env::temp_dir().join(format!(
        "webstack-browser-test-{}-{:x}",
        std::process::id(),
        rand_word()
    ));
    std::fs::create_dir_all(&profile).unwrap();
    let mut child = Command::new(binary)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        out
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 90 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = reader.join().unwrap();
    let _ = std::fs::remove_dir_all(&profile);
    assert!(status.success(), "chromium failed: {status}");
    out
}

/// A few bits of entropy so parallel runs do not share a profile directory.
fn rand_word() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(0u8)
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn chromium_renders_the_page_safely() {
    let Some(binary) = find_chromium() else {
        if std::env::var("WEBSTACK_REQUIRE_BROWSER").as_deref() == Ok("1") {
            panic!("chromium not found and WEBSTACK_REQUIRE_BROWSER=1");
        }
        // Written straight to stderr so that the test harness does not
        // swallow it.
        let _ = writeln!(
            std::io::stderr(),
            "SKIP browser test: chromium not found ($WEBSTACK_CHROMIUM, /usr/bin/chromium \
             or on PATH); set WEBSTACK_REQUIRE_BROWSER=1 to make this a failure"
        );
        return;
    };
    let _releases = start_workload();
    // One worker, so that consecutive snapshots see the same threads.
    let addr = start_server(1, || Webstack::new("/debug/webstack"));
    let page = format!("http://{addr}/debug/webstack?augment=0");

    let dom = chromium(&binary, &["--dump-dom"], &page);
    let response = get(addr, "/debug/webstack?augment=0&format=json").unwrap();
    assert_eq!(response.status, 200, "{}", response.text());
    let json: serde_json::Value = serde_json::from_str(response.text()).unwrap();

    // One block per bucket, as many as the JSON form has.
    let buckets = json["buckets"].as_array().unwrap();
    assert_eq!(json["totals"]["buckets"], buckets.len());
    let blocks = dom.matches("<section class=\"bucket").count();
    assert_eq!(blocks, buckets.len(), "DOM:\n{dom}");
    assert!(blocks >= 3, "the fixture threads make at least 3 buckets");

    // Typed arguments are on the page.
    assert!(dom.contains("browser_fixture"), "DOM:\n{dom}");
    for text in ["order_id", "u64", "31337", "customer", "mallory", "zoë"] {
        assert!(dom.contains(text), "{text} missing from the DOM:\n{dom}");
    }

    // The hostile thread name is text, not markup, and nothing ran.
    assert!(
        dom.contains("&lt;script&gt;document.title='pwned'&lt;/script&gt;"),
        "escaped name missing from the DOM:\n{dom}"
    );
    assert!(!dom.to_ascii_lowercase().contains("<script"), "DOM:\n{dom}");
    let title = dom
        .split_once("<title>")
        .and_then(|(_, rest)| rest.split_once("</title>"))
        .map(|(title, _)| title)
        .expect("a <title>");
    assert!(title.starts_with("webstack: "), "title changed: {title:?}");
    assert!(!title.contains("pwned"), "a script ran: {title:?}");

    // A screenshot of the default page (native stacks included).
    let artifacts = workspace_root().join("artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("webstack.png");
    let _ = std::fs::remove_file(&shot);
    chromium(
        &binary,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1280,2000",
            "--hide-scrollbars",
        ],
        &format!("http://{addr}/debug/webstack"),
    );
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(png.len() > 10_000, "suspiciously small screenshot");
    if std::env::var("WEBSTACK_UPDATE_SCREENSHOT").as_deref() == Ok("1") {
        let docs = workspace_root().join("docs");
        std::fs::create_dir_all(&docs).unwrap();
        std::fs::copy(&shot, docs.join("screenshot.png")).unwrap();
    }
}
