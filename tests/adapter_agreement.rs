//! The actix and axum adapters answer alike: one table of requests
//! ([`TABLE`]: each format, each bad parameter, HEAD, 405, the allow-list
//! and trusted proxies, throttling, a forced `maxmem`, one snapshot at a
//! time off the async workers) run over TCP against a real server of each,
//! then the two runs compared row by row.
//!
//! Each server mounts the services of [`services`] under its own prefix:
//! throttle state is shared per path in the process, and the servers run
//! in the same one. The table is the same for every adapter; a row that
//! an adapter fails is a bug in that adapter or in the core, never a reason
//! for a per-adapter row.
//!
//! Each server has one async worker (actix: one worker; axum: a
//! current-thread runtime), so a page served while another snapshot is in
//! progress shows that captures run off the async workers.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pretty_assertions::assert_eq;
use support::server::{request, start_axum_server, start_server_with, Response};
use support::wait::{wait_until, watchdog};
use webstack::serve::{Cidr, Service, CONTENT_SECURITY_POLICY};

fn actix() -> Vec<Outcome> {
    let hold = Arc::new(Hold::default());
    let make = {
        let hold = hold.clone();
        move || services("/actix", &hold)
    };
    let addr = start_server_with(1, make);
    run("actix", addr, "/actix", &hold)
}

fn axum() -> Vec<Outcome> {
    let hold = Arc::new(Hold::default());
    let router = {
        let hold = hold.clone();
        move || {
            services("/axum", &hold)
                .into_iter()
                .fold(axum::Router::new(), |router, service| {
                    router.merge(axum::Router::from(service))
                })
        }
    };
    let addr = start_axum_server(router);
    run("axum", addr, "/axum", &hold)
}

#[test]
fn actix_and_axum_answer_the_table_alike() {
    let _watchdog = watchdog("adapter agreement", std::time::Duration::from_secs(300));
    let actix = actix();
    let axum = axum();
    // Same rows, same statuses, same header names (values are checked by
    // the table itself).
    assert_eq!(actix, axum);
}

/// Holds every snapshot of the `/slow` service inside its capture until
/// released, so that rows can run while a snapshot is in progress.
#[derive(Debug, Default)]
struct Hold {
    entered: AtomicBool,
    released: AtomicBool,
}

impl Hold {
    fn wait_released(&self) {
        self.entered.store(true, Ordering::SeqCst);
        // Bounded: a test that forgets to release must still end.
        let deadline = Instant::now() + Duration::from_secs(120);
        while !self.released.load(Ordering::SeqCst) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// The trusted proxy and the range the restricted services allow.
const CLIENTS: &str = "192.0.2.0/24";

/// The services every adapter serves under `prefix` (e.g. `/actix`):
///
/// - `/ws`: every default (loopback only), with Go's goroutine profile at
///   `/goroutine`;
/// - `/denied`: only `CLIENTS` (192.0.2.0/24) allowed, no proxy trusted;
/// - `/proxied`: only `CLIENTS` (192.0.2.0/24), and 127.0.0.1 trusted as a proxy;
/// - `/throttled`: one snapshot an hour, measured from the start;
/// - `/from-end`: one an hour, measured from the end;
/// - `/forced`: `maxmem` forced to 32 MiB;
/// - `/slow`: captures wait for `hold`; a request that finds one in
///   progress is answered `503` at once.
fn services(prefix: &str, hold: &Arc<Hold>) -> Vec<Service> {
    let clients: Cidr = CLIENTS.parse().unwrap();
    let hour = Duration::from_secs(3600);
    let hold = hold.clone();
    vec![
        Service::new(format!("{prefix}/ws")).goroutine_profile_at(format!("{prefix}/goroutine")),
        Service::new(format!("{prefix}/denied")).allow_only([clients]),
        Service::new(format!("{prefix}/proxied"))
            .allow_only([clients])
            .trusted_proxy("127.0.0.1".parse().unwrap()),
        Service::new(format!("{prefix}/throttled")).min_interval(hour),
        Service::new(format!("{prefix}/from-end")).min_interval_from_end(hour),
        Service::new(format!("{prefix}/forced")).force_maxmem(32 << 20),
        Service::new(format!("{prefix}/slow"))
            .queue_timeout(Duration::ZERO)
            .map_snapshot(move |_| hold.wait_released()),
    ]
}

/// What a response must show, beyond its status and the security headers
/// every response carries.
#[derive(Clone, Copy, Debug)]
enum Check {
    /// Header `name` has exactly this value.
    Header(&'static str, &'static str),
    /// Header `name` is absent.
    NoHeader(&'static str),
    /// The body is exactly this.
    Body(&'static str),
    /// The body starts with this.
    Starts(&'static str),
    /// The body contains this.
    Contains(&'static str),
    /// The body is the page's JSON form.
    PageJson,
    /// No body.
    Empty,
}

/// One request and the answer it must get.
#[derive(Clone, Copy, Debug)]
struct Case {
    method: &'static str,
    /// Path under the prefix, with the query.
    path: &'static str,
    headers: &'static [(&'static str, &'static str)],
    status: u16,
    checks: &'static [Check],
}

/// A row of the table.
#[derive(Clone, Copy, Debug)]
enum Step {
    /// Send the request, check the answer.
    Send(Case),
    /// Start a `GET` of `/slow`, wait until its capture holds the turn, send
    /// each case, then release the capture and check that the first
    /// request was answered `200`.
    WhileHeld(&'static [Case]),
}

const HTML: &str = "text/html; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";
const JSON: &str = "application/json";

const fn get(path: &'static str, status: u16, checks: &'static [Check]) -> Step {
    Step::Send(Case {
        method: "GET",
        path,
        headers: &[],
        status,
        checks,
    })
}

const fn error(method: &'static str, path: &'static str, status: u16) -> Case {
    Case {
        method,
        path,
        headers: &[],
        status,
        checks: &[Check::Header("content-type", TEXT)],
    }
}

const fn from(
    path: &'static str,
    forwarded: &'static [(&'static str, &'static str)],
    status: u16,
) -> Step {
    Step::Send(Case {
        method: "GET",
        path,
        headers: forwarded,
        status,
        checks: &[],
    })
}

use Check::{Body, Contains, Empty, Header, NoHeader, PageJson, Starts};

/// The table: every row for every adapter, in order (the throttle rows
/// depend on the rows before them).
const TABLE: &[Step] = &[
    // The default page and each format.
    get(
        "/ws",
        200,
        &[Header("content-type", HTML), Starts("<!DOCTYPE html>")],
    ),
    get(
        "/ws?format=html&augment=0",
        200,
        &[Header("content-type", HTML), Starts("<!DOCTYPE html>")],
    ),
    get(
        "/ws?format=json&augment=0",
        200,
        &[Header("content-type", JSON), PageJson],
    ),
    get(
        "/ws?format=text&augment=0&similarity=anyvalue&fold=0",
        200,
        &[Header("content-type", TEXT), Starts("webstack ")],
    ),
    get(
        "/ws?format=json&augment=0&maxmem=2000000",
        200,
        &[Contains("\"maxmem\":2000000")],
    ),
    // Each bad parameter: 400 naming it, before any capture.
    get(
        "/ws?augment=2",
        400,
        &[
            Header("content-type", TEXT),
            Body("augment must be 0 or 1\n"),
        ],
    ),
    get(
        "/ws?maxmem=lots",
        400,
        &[Starts("maxmem must be a number of bytes")],
    ),
    get(
        "/ws?maxmem=-1",
        400,
        &[Starts("maxmem must be a number of bytes")],
    ),
    get(
        "/ws?similarity=fuzzy",
        400,
        &[Body(
            "similarity must be one of: exactflags, exactlines, anypointer, anyvalue\n",
        )],
    ),
    get(
        "/ws?format=xml",
        400,
        &[Body("format must be one of: html, json, text\n")],
    ),
    get("/ws?fold=yes", 400, &[Body("fold must be 0 or 1\n")]),
    get(
        "/ws?augment=0&augment=1",
        400,
        &[Body(
            "augment given more than once; augment must be 0 or 1\n",
        )],
    ),
    get(
        "/ws?format=%zz",
        400,
        &[Body("format must be one of: html, json, text\n")],
    ),
    get(
        "/ws?augment=0&",
        400,
        &[Starts("empty parameter in the query; ")],
    ),
    // An unknown parameter: the message of the first release.
    get(
        "/ws?bogus=1",
        400,
        &[Body(
            "unknown parameter \"bogus\"; allowed: augment, maxmem, similarity, format\n",
        )],
    ),
    // HEAD: the headers of a GET, no body, no length.
    Step::Send(Case {
        method: "HEAD",
        path: "/ws?format=json",
        headers: &[],
        status: 200,
        checks: &[
            Header("content-type", JSON),
            Empty,
            NoHeader("content-length"),
        ],
    }),
    Step::Send(Case {
        method: "HEAD",
        path: "/ws",
        headers: &[],
        status: 200,
        checks: &[Header("content-type", HTML), Empty],
    }),
    Step::Send(error("HEAD", "/ws?format=xml", 400)),
    Step::Send(error("HEAD", "/denied", 403)),
    // Other methods: 405 with Allow.
    Step::Send(Case {
        method: "POST",
        path: "/ws",
        headers: &[("Content-Length", "0")],
        status: 405,
        checks: &[
            Header("allow", "GET, HEAD"),
            Body("method not allowed; allowed: GET, HEAD\n"),
        ],
    }),
    Step::Send(Case {
        method: "DELETE",
        path: "/ws?format=json",
        headers: &[],
        status: 405,
        checks: &[Header("allow", "GET, HEAD")],
    }),
    Step::Send(Case {
        method: "OPTIONS",
        path: "/ws",
        headers: &[],
        status: 405,
        checks: &[Header("allow", "GET, HEAD")],
    }),
    // A peer off the allow-list (127.0.0.1 is not in CLIENTS).
    get(
        "/denied?format=text&augment=0",
        403,
        &[
            Header("content-type", TEXT),
            Body("forbidden: client address not allowed\n"),
        ],
    ),
    // Forwarded headers from an untrusted peer are ignored.
    from(
        "/denied?format=text&augment=0",
        &[("X-Forwarded-For", "192.0.2.9")],
        403,
    ),
    from(
        "/denied?format=text&augment=0",
        &[("Forwarded", "for=192.0.2.9")],
        403,
    ),
    // From a trusted proxy, the forwarded client is checked.
    from(
        "/proxied?format=text&augment=0",
        &[("X-Forwarded-For", "192.0.2.9")],
        200,
    ),
    from(
        "/proxied?format=text&augment=0",
        &[("X-Forwarded-For", "198.51.100.1, 192.0.2.9")],
        200,
    ),
    from(
        "/proxied?format=text&augment=0",
        &[("X-Forwarded-For", "192.0.2.9, 198.51.100.1")],
        403,
    ),
    from(
        "/proxied?format=text&augment=0",
        &[("X-Forwarded-For", "198.51.100.1")],
        403,
    ),
    from(
        "/proxied?format=text&augment=0",
        &[("Forwarded", "for=192.0.2.9;proto=http")],
        200,
    ),
    from("/proxied?format=text&augment=0", &[], 403),
    // Loopback is not on this list, whoever forwards it.
    from(
        "/proxied?format=text&augment=0",
        &[("X-Forwarded-For", "127.0.0.1")],
        403,
    ),
    // Throttle: the first snapshot, then 429 with Retry-After.
    get("/throttled?format=text&augment=0", 200, &[]),
    get(
        "/throttled?format=text&augment=0",
        429,
        &[
            Header("retry-after", "3600"),
            Body("too many snapshots; retry in 3600 s\n"),
        ],
    ),
    get("/throttled?format=xml", 400, &[]),
    Step::Send(Case {
        method: "HEAD",
        path: "/throttled",
        headers: &[],
        status: 200,
        checks: &[Empty],
    }),
    get("/from-end?format=text&augment=0", 200, &[]),
    get(
        "/from-end?format=text&augment=0",
        429,
        &[Header("retry-after", "3600")],
    ),
    // maxmem forced, whatever the request says.
    get(
        "/forced?format=json&augment=0&maxmem=1048576",
        200,
        &[Contains("\"maxmem\":33554432")],
    ),
    get(
        "/forced?format=json&augment=0&maxmem=999999999999",
        200,
        &[Contains("\"maxmem\":33554432")],
    ),
    // One snapshot at a time, taken off the async workers: while one is in
    // progress, another request for it is answered 503 at once, and a page
    // of another path is still served by the one async worker.
    Step::WhileHeld(&[
        Case {
            method: "GET",
            path: "/slow?format=text&augment=0",
            headers: &[],
            status: 503,
            checks: &[
                Header("retry-after", "1"),
                Body("busy: another snapshot is in progress; retry shortly\n"),
            ],
        },
        Case {
            method: "GET",
            path: "/ws?format=text&augment=0",
            headers: &[],
            status: 200,
            checks: &[Starts("webstack ")],
        },
        Case {
            method: "HEAD",
            path: "/slow",
            headers: &[],
            status: 200,
            checks: &[Empty],
        },
    ]),
    // Only the exact path.
    get("/ws/", 404, &[]),
    get(
        "/goroutine?augment=0",
        400,
        &[Body("unknown parameter \"augment\"; allowed: debug\n")],
    ),
    get(
        "/goroutine?debug=1",
        200,
        &[
            Header("content-type", TEXT),
            Starts("goroutine profile: total "),
        ],
    ),
    get(
        "/goroutine?debug=2",
        200,
        &[Header("content-type", TEXT), Starts("webstack ")],
    ),
    get(
        "/goroutine",
        200,
        &[Header("content-type", "application/octet-stream")],
    ),
];

/// What one request got, for comparing adapters.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    request: String,
    status: u16,
    /// Header names, lower case and sorted, `date` left out.
    header_names: Vec<String>,
    /// For an answer other than `200` (which shows a snapshot, different
    /// each time): every header value, then the body.
    error: Option<String>,
}

/// Runs [`TABLE`] against the server at `addr` whose services are under
/// `prefix` and use `hold`; panics naming `adapter` and the row on the
/// first answer that does not match. Returns each answer's outcome, in
/// order.
fn run(adapter: &str, addr: SocketAddr, prefix: &str, hold: &Hold) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    for step in TABLE {
        match step {
            Step::Send(case) => outcomes.push(send(adapter, addr, prefix, case)),
            Step::WhileHeld(cases) => {
                let path = format!("{prefix}/slow?format=text&augment=0");
                let held = std::thread::spawn(move || request(addr, "GET", &path, &[]));
                assert!(
                    wait_until(Duration::from_secs(60), || hold
                        .entered
                        .load(Ordering::SeqCst)),
                    "{adapter}: the held snapshot never started"
                );
                for case in *cases {
                    outcomes.push(send(adapter, addr, prefix, case));
                }
                hold.released.store(true, Ordering::SeqCst);
                let first = held.join().unwrap().unwrap();
                assert_eq!(
                    first.status,
                    200,
                    "{adapter}: the held request: {}",
                    first.text()
                );
            }
        }
    }
    outcomes
}

fn send(adapter: &str, addr: SocketAddr, prefix: &str, case: &Case) -> Outcome {
    let path = format!("{prefix}{}", case.path);
    let row = format!("{adapter}: {} {}", case.method, case.path);
    let response =
        request(addr, case.method, &path, case.headers).unwrap_or_else(|e| panic!("{row}: {e}"));
    let body = String::from_utf8_lossy(&response.body);
    assert_eq!(response.status, case.status, "{row}: {body}");
    if case.status != 404 {
        check_security_headers(&row, &response);
    }
    for check in case.checks {
        check_one(&row, &response, &body, *check);
    }
    if let (Some(len), false) = (response.header("content-length"), case.method == "HEAD") {
        assert_eq!(
            len,
            response.body.len().to_string(),
            "{row}: content-length"
        );
    }
    let mut header_names: Vec<String> = response
        .headers
        .iter()
        .map(|(n, _)| n.to_ascii_lowercase())
        .filter(|n| n != "date")
        .collect();
    header_names.sort();
    let error = (response.status != 200).then(|| {
        let mut headers: Vec<String> = response
            .headers
            .iter()
            .filter(|(n, _)| !n.eq_ignore_ascii_case("date"))
            .map(|(n, v)| format!("{}: {v}\n", n.to_ascii_lowercase()))
            .collect();
        headers.sort();
        headers.concat() + "\n" + &body
    });
    Outcome {
        request: format!("{} {}", case.method, case.path),
        status: response.status,
        header_names,
        error,
    }
}

fn check_security_headers(row: &str, response: &Response) {
    for (name, value) in [
        ("cache-control", "no-store"),
        ("x-content-type-options", "nosniff"),
        ("content-security-policy", CONTENT_SECURITY_POLICY),
    ] {
        assert_eq!(response.header(name), Some(value), "{row}: {name}");
    }
}

fn check_one(row: &str, response: &Response, body: &str, check: Check) {
    match check {
        Check::Header(name, value) => {
            assert_eq!(response.header(name), Some(value), "{row}: {name}")
        }
        Check::NoHeader(name) => assert_eq!(response.header(name), None, "{row}: {name}"),
        Check::Body(expected) => assert_eq!(body, expected, "{row}"),
        Check::Starts(start) => assert!(body.starts_with(start), "{row}: {body:.200}"),
        Check::Contains(part) => assert!(body.contains(part), "{row}: {body:.300}"),
        Check::PageJson => {
            let json: serde_json::Value = serde_json::from_str(body)
                .unwrap_or_else(|e| panic!("{row}: not JSON ({e}): {body:.200}"));
            assert_eq!(json["schema"], "page", "{row}");
            assert_eq!(json["augmented"], false, "{row}");
        }
        Check::Empty => assert!(body.is_empty(), "{row}: {body:.200}"),
    }
}
