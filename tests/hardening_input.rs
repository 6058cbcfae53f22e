//! Hostile program data is escaped and bounded in every format.
//!
//! Threads are named, and arguments given values, with HTML (`<script>`,
//! `</td>`), quotes and ampersands, control characters (ANSI escapes, CR/LF
//! that would forge a line of the text dump, BEL, DEL, a right-to-left
//! override), text from invalid UTF-8 (`String::from_utf8_lossy`), and
//! 1 MiB strings; a `&[u8]` of 1 MiB records its length; a task is named by a
//! literal full of HTML and quotes. Each format is checked straight from
//! `render` and over HTTP from a real server, with `augment` off and on:
//! - HTML: a whole page whose tags nest, no `<script` in any case, no raw
//!   control character, the hostile names present in escaped form;
//! - text: no raw control character but newline and tab, no forged line;
//! - JSON: parses, names round-trip exactly (JSON escapes anything);
//! - size: a 1 MiB name or value adds at most a few hundred bytes per
//!   occurrence (pages stay under 512 KiB; the page without the hostile
//!   threads is well under that).
//!
//! A watchdog aborts the process after 120 s.

use std::borrow::Cow;
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::Duration;

use support::checks::{check_html, check_json, check_text};
use support::poll::poll_once;
use support::server::{get, start_server};
use support::wait::watchdog;
use webstack::actix::Webstack;
use webstack::render::{render, Format};
use webstack::View;
use webstack::{Buckets, Options, Similarity, Snapshot};

const MIB: usize = 1 << 20;
/// No page here may come near a hostile value's size.
const PAGE_LIMIT: usize = 512 << 10;

fn hostile_names() -> Vec<String> {
    vec![
        "<script>alert('name')</script>".to_owned(),
        "\"quotes\" 'single' & <b>bold</b> &amp; </td></tr></table>".to_owned(),
        "ctrl \u{1b}[31mred\u{7}\r\nFAKE-LINE forged\t\u{7f}\u{202e}evil".to_owned(),
        String::from_utf8_lossy(b"bad \xff\xfe utf8 <script src=x>").into_owned(),
        format!("huge-{}", "N".repeat(MIB)),
    ]
}

#[webstack::instrument(skip(release))]
fn input_parked(
    label: &str,
    markup: &str,
    bytes: &[u8],
    lossy: Cow<'_, str>,
    big: &str,
    release: mpsc::Receiver<()>,
) {
    let _ = release.recv();
}

#[webstack::instrument(name = "<script>task</script> \"q\" & 'a'")]
async fn input_task(markup: &str) {
    std::future::pending::<()>().await;
}

/// Starts, once per process, the hostile threads (parked in `input_parked`
/// with hostile arguments) and a hostile task, and returns the names.
fn hostile_workload() -> &'static [String] {
    static NAMES: OnceLock<Vec<String>> = OnceLock::new();
    NAMES.get_or_init(|| {
        let names = hostile_names();
        for name in &names {
            let (tx, rx) = mpsc::channel::<()>();
            std::mem::forget(tx);
            webstack::thread::Builder::new()
                .name(name.clone())
                .spawn(move || {
                    let big = "B".repeat(MIB);
                    let bytes = vec![0xffu8; MIB];
                    let lossy = String::from_utf8_lossy(b"\xc3\x28 <img onerror=x> \xff");
                    let markup = "</td><script>alert(1)</script>\r\nFAKE-LINE";
                    let label = "\u{1b}]0;title\u{7}\"'&<>";
                    input_parked(label, markup, &bytes, lossy, &big, rx);
                })
                .unwrap();
        }
        let task = Box::leak(Box::new(Box::pin(input_task("<script>x</script>"))));
        assert!(poll_once(task.as_mut()).is_pending());
        wait_until_parked(names.len());
        names
    })
}

fn wait_until_parked(threads: usize) {
    for _ in 0..500 {
        let snapshot = Snapshot::capture(&Options::default().augment(false));
        let parked = snapshot
            .routines()
            .filter(|r| {
                r.frames
                    .first()
                    .is_some_and(|f| f.function.ends_with("input_parked"))
            })
            .count();
        if parked == threads {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("hostile threads did not park");
}

/// Checks one rendered page of any format against every rule.
fn check_page(format: Format, page: &str, names: &[String], what: &str) {
    let problem = match format {
        Format::Html => check_html(page).err(),
        Format::Text => check_text(page).err(),
        Format::Json => check_json(page).err(),
    };
    if let Some(problem) = problem {
        panic!("{what}: {problem}");
    }
    match format {
        Format::Html => {
            assert!(
                page.contains("&lt;script&gt;alert("),
                "{what}: name shown escaped"
            );
            assert!(
                page.contains("&lt;b&gt;bold&lt;&#x2F;b&gt;")
                    || page.contains("&lt;b&gt;bold&lt;/b&gt;"),
                "{what}: markup shown escaped"
            );
        }
        Format::Text => {
            let forged: Vec<&str> = page
                .lines()
                .filter(|l| l.trim_start().starts_with("FAKE-LINE"))
                .collect();
            assert!(forged.is_empty(), "{what}: forged lines {forged:?}");
            assert!(page.contains("<script>alert('name')</script>"), "{what}");
        }
        Format::Json => {
            let summary = check_json(page).unwrap();
            for name in names.iter().filter(|n| n.len() < 1000) {
                assert!(summary.has_thread(name), "{what}: {name:?} round-trips");
            }
            assert!(
                summary
                    .names
                    .iter()
                    .any(|(k, n)| k == "task" && n == "<script>task</script> \"q\" & 'a'"),
                "{what}: the task's literal name round-trips"
            );
        }
    }
    let longest = page.lines().map(str::len).max().unwrap_or(0);
    println!("{what}: {} bytes, longest line {longest}", page.len());
    if format != Format::Json {
        assert!(longest < 16 << 10, "{what}: a line of {longest} bytes");
    }
    // JSON's size is the concern of `a_huge_thread_name_is_bounded_in_json`.
    if format != Format::Json {
        assert!(
            page.len() < PAGE_LIMIT,
            "{what}: {} bytes: a 1 MiB name or value is not bounded",
            page.len()
        );
    }
}

fn render_direct(format: Format, augment: bool) -> String {
    let snapshot = Snapshot::capture(&Options::default().augment(augment));
    let buckets = Buckets::aggregate(&snapshot, Similarity::AnyPointer);
    render(&snapshot, &buckets, &View::default().format(format)).expect("renders")
}

#[test]
fn hostile_names_and_values_are_escaped_in_html_and_text() {
    let _watchdog = watchdog("hostile html/text", Duration::from_secs(120));
    let names = hostile_workload();
    for augment in [false, true] {
        for format in [Format::Html, Format::Text] {
            let page = render_direct(format, augment);
            check_page(
                format,
                &page,
                names,
                &format!("render {format} augment={augment}"),
            );
        }
    }
}

#[test]
fn hostile_names_and_values_round_trip_in_json() {
    let _watchdog = watchdog("hostile json", Duration::from_secs(120));
    let names = hostile_workload();
    for augment in [false, true] {
        let page = render_direct(Format::Json, augment);
        // Every value is recorded bounded; the 1 MiB name is the only large
        // piece of program data.
        let doc: serde_json::Value = serde_json::from_str(&page).unwrap();
        let values: Vec<String> = doc["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|b| b["frames"].as_array().unwrap())
            .filter(|f| f["function"].as_str().unwrap().ends_with("input_parked"))
            .flat_map(|f| f["args"].as_array().unwrap())
            .map(|a| {
                format!(
                    "{}={}",
                    a["name"].as_str().unwrap(),
                    a["value"].as_str().unwrap()
                )
            })
            .collect();
        assert!(
            values.iter().any(|v| v == "bytes=len 1048576"),
            "{values:?}"
        );
        assert!(
            values
                .iter()
                .any(|v| v.starts_with("big=\"BBBB") && v.ends_with("(len 1048576)")),
            "{values:?}"
        );
        assert!(values.iter().all(|v| v.len() < 200), "{values:?}");
        check_page(
            Format::Json,
            &page,
            names,
            &format!("render json augment={augment}"),
        );
    }
}

#[test]
fn hostile_data_is_safe_over_http() {
    let _watchdog = watchdog("hostile http", Duration::from_secs(120));
    let names = hostile_workload();
    let addr = start_server(1, || Webstack::new("/debug/webstack"));
    for augment in [0, 1] {
        for format in [Format::Html, Format::Text] {
            let path = format!("/debug/webstack?augment={augment}&format={format}");
            let response = get(addr, &path).unwrap_or_else(|e| panic!("{path}: {e}"));
            assert_eq!(response.status, 200, "{path}");
            check_page(format, response.text(), names, &path);
        }
    }
}

#[test]
fn a_huge_thread_name_is_bounded_in_json() {
    let _watchdog = watchdog("huge name json", Duration::from_secs(120));
    hostile_workload();
    let page = render_direct(Format::Json, false);
    let doc: serde_json::Value = serde_json::from_str(&page).unwrap();
    let longest = doc["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|b| b["names"].as_array().unwrap())
        .map(|n| n.as_str().unwrap().len())
        .max()
        .unwrap();
    println!(
        "json with a 1 MiB thread name: {} bytes, longest name {longest} bytes",
        page.len()
    );
    assert!(
        page.len() < PAGE_LIMIT && longest < 4096,
        "JSON is {} bytes, a name {longest} bytes: a 1 MiB thread name is copied \
         whole into every JSON snapshot",
        page.len()
    );
}
