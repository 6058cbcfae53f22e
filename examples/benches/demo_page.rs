//! The default demo page, warm, in a release build: what a user of the demo
//! waits for when they reload `/debug/webstack`.
//!
//! The demo's own `main` (its threads, its 280 tasks, its actix server with
//! two workers and a connection parked in a handler) runs in this process on
//! a free loopback port; each measurement is one HTTP/1.1 request over a new
//! loopback connection, read to the end of the response. Beside the default
//! page (`augment=1`, HTML) the same snapshot as JSON and text, the page
//! without native stacks, and a baseline: the demo's trivial `/` route (a
//! redirect), so the server's own time is the difference.
//!
//! Run with `cargo bench -p webstack-examples --bench demo_page`; the
//! recorded figures are in BENCHMARKS.md, "The demo page".

#[allow(dead_code, unreachable_pub)]
#[path = "../demo.rs"]
mod demo;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};

/// One GET over a new connection; the response's length. Panics on
/// anything but `200` or `302`, so a throttled or failed page cannot pass
/// for a fast one.
fn get(addr: SocketAddr, path: &str) -> usize {
    let mut stream = TcpStream::connect(addr).expect("connects to the demo");
    stream.set_nodelay(true).expect("sets TCP_NODELAY");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).expect("sends");
    let mut response = Vec::with_capacity(256 << 10);
    stream
        .read_to_end(&mut response)
        .expect("reads the response");
    let head = response.get(..12).unwrap_or_default();
    assert!(
        head == b"HTTP/1.1 200" || head == b"HTTP/1.1 302",
        "{path}: {}",
        String::from_utf8_lossy(&response[..response.len().min(300)])
    );
    response.len()
}

/// Starts the demo on a free loopback port and waits until it answers.
fn start_demo() -> SocketAddr {
    let addr = TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port");
    // Set before the demo's thread starts: it reads the address from there,
    // as it would in a shell.
    std::env::set_var("WEBSTACK_DEMO_ADDR", addr.to_string());
    std::thread::Builder::new()
        .name("demo-main".into())
        .spawn(|| demo::main().expect("the demo runs"))
        .expect("starts the demo");
    let started = Instant::now();
    while TcpStream::connect(addr).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the demo did not listen on {addr}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Until the report client's request is parked in its handler, the page
    // is not the demo's page.
    while !String::from_utf8_lossy(&page_text(addr)).contains("render_report") {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the demo's report connection never arrived"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    addr
}

fn page_text(addr: SocketAddr) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).expect("connects to the demo");
    let request = format!(
        "GET /debug/webstack?format=text&augment=0 HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).expect("sends");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("reads");
    response
}

fn demo_page(c: &mut Criterion) {
    let addr = start_demo();
    let cases = [
        ("baseline: / (redirect)", "/"),
        ("default page (augment=1, html)", "/debug/webstack"),
        ("augment=1, json", "/debug/webstack?format=json"),
        ("augment=1, text", "/debug/webstack?format=text"),
        ("augment=0, html", "/debug/webstack?augment=0"),
    ];
    // Warm: debug info loaded, symbols cached, templates parsed.
    for (_, path) in cases {
        for _ in 0..3 {
            get(addr, path);
        }
    }
    for (name, path) in cases {
        eprintln!("  {name}: {} bytes", get(addr, path));
    }
    let mut group = c.benchmark_group("demo_page");
    group
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for (name, path) in cases {
        group.bench_function(name, |b| b.iter(|| get(addr, path)));
    }
    group.finish();
}

criterion_group!(benches, demo_page);
criterion_main!(benches);
