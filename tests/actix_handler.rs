//! The actix-web handler and service: every query parameter and format,
//! every error answer, the headers on all of them, HEAD, rate limiting,
//! one snapshot at a time, and recovery from a panic while capturing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::header::{self, HeaderMap};
use actix_web::http::{Method, StatusCode};
use actix_web::{test, web, App};
use pretty_assertions::assert_eq;
use webstack::actix::{snapshot_handler, Webstack};
use webstack::render::Format;
use webstack::serve::CONTENT_SECURITY_POLICY;
use webstack::{Similarity, DEFAULT_MAXMEM, MIN_MAXMEM};

#[webstack::instrument(skip(inside, release))]
fn parked_worker(job: u32, owner: &str, inside: mpsc::Sender<()>, release: mpsc::Receiver<()>) {
    let _ = inside.send(());
    let _ = release.recv();
}

/// A named thread parked inside an instrumented function with typed
/// arguments, for the page to show; returns once it is inside.
fn start_workload() {
    static START: Once = Once::new();
    START.call_once(|| {
        let (release, parked) = mpsc::channel();
        std::mem::forget(release);
        let (inside, entered) = mpsc::channel();
        webstack::thread::Builder::new()
            .name("handler-test-worker".into())
            .spawn(move || parked_worker(4242, "alice", inside, parked))
            .unwrap();
        entered.recv().unwrap();
    });
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Reply {
    fn header(&self, name: header::HeaderName) -> &str {
        self.headers
            .get(&name)
            .unwrap_or_else(|| panic!("no {name} header"))
            .to_str()
            .unwrap()
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("body is JSON")
    }
}

async fn fetch<S, B>(app: &S, method: Method, uri: &str) -> Reply
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let req = test::TestRequest::default()
        .method(method)
        .uri(uri)
        .peer_addr("127.0.0.1:50000".parse().unwrap())
        .to_request();
    let resp = test::call_service(app, req).await;
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = String::from_utf8(test::read_body(resp).await.to_vec()).unwrap();
    Reply {
        status,
        headers,
        body,
    }
}

async fn get<S, B>(app: &S, uri: &str) -> Reply
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    fetch(app, Method::GET, uri).await
}

fn assert_security_headers(reply: &Reply) {
    assert_eq!(reply.header(header::CACHE_CONTROL), "no-store");
    assert_eq!(reply.header(header::X_CONTENT_TYPE_OPTIONS), "nosniff");
    assert_eq!(
        reply.header(header::CONTENT_SECURITY_POLICY),
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; \
         form-action 'none'; frame-ancestors 'none'"
    );
    assert_eq!(
        CONTENT_SECURITY_POLICY,
        reply.header(header::CONTENT_SECURITY_POLICY)
    );
}

/// An error answer: status, one line of plain text, the security headers.
fn assert_error(reply: &Reply, status: StatusCode, line: &str) {
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (status, &*format!("{line}\n"))
    );
    assert_eq!(
        reply.header(header::CONTENT_TYPE),
        "text/plain; charset=utf-8"
    );
    assert_security_headers(reply);
}

#[actix_rt::test]
async fn each_format_has_its_content_type_and_the_security_headers() {
    start_workload();
    let app = test::init_service(App::new().service(Webstack::new("/ws"))).await;
    for (query, format) in [
        ("?augment=0", Format::Html),
        ("?augment=0&format=html", Format::Html),
        ("?augment=0&format=json", Format::Json),
        ("?augment=0&format=text", Format::Text),
    ] {
        let reply = get(&app, &format!("/ws{query}")).await;
        assert_eq!(reply.status, StatusCode::OK, "{query}: {}", reply.body);
        assert_eq!(
            reply.header(header::CONTENT_TYPE),
            format.content_type(),
            "{query}"
        );
        assert_security_headers(&reply);
        match format {
            Format::Html => {
                assert!(reply.body.starts_with("<!DOCTYPE html>"), "{query}");
                assert!(!reply.body.contains("<script"), "{query}");
            }
            Format::Json => assert_eq!(reply.json()["version"], 1),
            Format::Text => assert!(reply.body.starts_with("webstack "), "{query}"),
        }
        // Every format shows the typed arguments of the parked worker.
        assert!(reply.body.contains("parked_worker"), "{query}");
        assert!(reply.body.contains("4242"), "{query}");
        assert!(reply.body.contains("alice"), "{query}");
    }
}

#[actix_rt::test]
async fn json_reflects_every_parameter() {
    start_workload();
    let app =
        test::init_service(App::new().service(Webstack::new("/ws-json_reflects_every_parameter")))
            .await;

    let json = get(&app, "/ws-json_reflects_every_parameter?format=json")
        .await
        .json();
    assert_eq!(json["augmented"], true);
    assert_eq!(json["maxmem"], DEFAULT_MAXMEM);
    assert_eq!(json["similarity"], "anypointer");

    let json = get(
        &app,
        "/ws-json_reflects_every_parameter?format=json&augment=0&maxmem=5",
    )
    .await
    .json();
    assert_eq!(json["augmented"], false);
    assert_eq!(json["maxmem"], MIN_MAXMEM, "values below 1 MiB are raised");

    let json = get(
        &app,
        "/ws-json_reflects_every_parameter?maxmem=3000000&format=json&augment=1",
    )
    .await
    .json();
    assert_eq!(json["augmented"], true);
    assert_eq!(json["maxmem"], 3_000_000);

    for similarity in Similarity::ALL {
        let uri = format!(
            "/ws-json_reflects_every_parameter?similarity={similarity}&format=json&augment=0"
        );
        let json = get(&app, &uri).await.json();
        assert_eq!(json["similarity"], similarity.as_str());
    }

    // Percent-encoded names and values are decoded.
    let json = get(
        &app,
        "/ws-json_reflects_every_parameter?%66ormat=js%6Fn&augment=%30",
    )
    .await
    .json();
    assert_eq!(json["augmented"], false);
}

#[actix_rt::test]
async fn the_serving_thread_comes_first() {
    let app =
        test::init_service(App::new().service(Webstack::new("/ws-the_serving_thread_comes_first")))
            .await;
    let json = get(
        &app,
        "/ws-the_serving_thread_comes_first?format=json&augment=0",
    )
    .await
    .json();
    let buckets = json["buckets"].as_array().unwrap();
    assert_eq!(buckets[0]["serving"], true, "{:#}", buckets[0]);
    assert_eq!(buckets.iter().filter(|b| b["serving"] == true).count(), 1);
}

#[actix_rt::test]
async fn malformed_parameters_answer_400_naming_the_parameter() {
    let app = test::init_service(App::new().service(Webstack::new(
        "/ws-malformed_parameters_answer_400_naming_the_parameter",
    )))
    .await;
    let allowed = "allowed: augment, maxmem, similarity, format";
    let augment = "augment must be 0 or 1";
    let maxmem = format!(
        "maxmem must be a number of bytes from 0 to {}; values below 1048576 are raised to it",
        usize::MAX
    );
    let similarity = "similarity must be one of: exactflags, exactlines, anypointer, anyvalue";
    let format = "format must be one of: html, json, text";
    let cases: Vec<(&str, String)> = vec![
        ("augment=2", augment.into()),
        ("augment=", augment.into()),
        ("augment", augment.into()),
        ("augment=yes", augment.into()),
        ("augment=-1", augment.into()),
        ("augment=%ff", augment.into()),
        (
            "augment=1&augment=1",
            format!("augment given more than once; {augment}"),
        ),
        ("maxmem=-1", maxmem.clone()),
        ("maxmem=", maxmem.clone()),
        ("maxmem=1.5", maxmem.clone()),
        ("maxmem=0x10", maxmem.clone()),
        ("maxmem=%2B5", maxmem.clone()),
        ("maxmem=18446744073709551616", maxmem.clone()),
        ("maxmem=99999999999999999999999999", maxmem.clone()),
        (
            "maxmem=1&maxmem=2",
            format!("maxmem given more than once; {maxmem}"),
        ),
        ("similarity=", similarity.into()),
        ("similarity=AnyValue", similarity.into()),
        ("similarity=any", similarity.into()),
        ("similarity=%e2%82", similarity.into()),
        ("format=xml", format.into()),
        ("format=HTML", format.into()),
        (
            "format=json&format=json",
            format!("format given more than once; {format}"),
        ),
        ("foo=1", format!("unknown parameter \"foo\"; {allowed}")),
        (
            "Augment=1",
            format!("unknown parameter \"Augment\"; {allowed}"),
        ),
        (
            "&augment=1",
            format!("empty parameter in the query; {allowed}"),
        ),
        (
            "augment=1&",
            format!("empty parameter in the query; {allowed}"),
        ),
        ("%zz=1", format!("malformed parameter name; {allowed}")),
        ("%c3%28=1", format!("malformed parameter name; {allowed}")),
        (
            "a%0d%0aSet-Cookie:%20x=1",
            format!("unknown parameter \"a\\r\\nSet-Cookie: x\"; {allowed}"),
        ),
        // The first bad parameter decides, even after good ones.
        ("augment=0&format=json&similarity=x", similarity.into()),
    ];
    for (query, line) in cases {
        let reply = get(
            &app,
            &format!("/ws-malformed_parameters_answer_400_naming_the_parameter?{query}"),
        )
        .await;
        assert_error(&reply, StatusCode::BAD_REQUEST, &line);
    }
}

#[actix_rt::test]
async fn parameters_are_checked_before_any_capture() {
    let captures = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = captures.clone();
    let app = test::init_service(App::new().service(
        Webstack::new("/ws-parameters_are_checked_before_any_capture").map_snapshot(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
        }),
    ))
    .await;
    assert_eq!(
        get(
            &app,
            "/ws-parameters_are_checked_before_any_capture?format=json&similarity=bogus"
        )
        .await
        .status,
        400
    );
    assert_eq!(captures.load(Ordering::SeqCst), 0);
    assert_eq!(
        get(
            &app,
            "/ws-parameters_are_checked_before_any_capture?format=json&augment=0"
        )
        .await
        .status,
        200
    );
    assert_eq!(captures.load(Ordering::SeqCst), 1);
}

#[actix_rt::test]
async fn other_methods_answer_405_with_allow() {
    let app = test::init_service(
        App::new().service(Webstack::new("/ws-other_methods_answer_405_with_allow")),
    )
    .await;
    for method in [
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::OPTIONS,
        Method::TRACE,
        Method::CONNECT,
    ] {
        let reply = fetch(
            &app,
            method.clone(),
            "/ws-other_methods_answer_405_with_allow",
        )
        .await;
        assert_error(
            &reply,
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed; allowed: GET, HEAD",
        );
        assert_eq!(reply.header(header::ALLOW), "GET, HEAD", "{method}");
    }
}

#[actix_rt::test]
async fn head_answers_the_headers_without_a_body() {
    let app = test::init_service(
        App::new().service(Webstack::new("/ws-head_answers_the_headers_without_a_body")),
    )
    .await;
    for format in Format::ALL {
        let reply = fetch(
            &app,
            Method::HEAD,
            &format!("/ws-head_answers_the_headers_without_a_body?format={format}"),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.body, "");
        assert_eq!(reply.header(header::CONTENT_TYPE), format.content_type());
        assert_security_headers(&reply);
    }
    let reply = fetch(
        &app,
        Method::HEAD,
        "/ws-head_answers_the_headers_without_a_body?format=pdf",
    )
    .await;
    assert_error(
        &reply,
        StatusCode::BAD_REQUEST,
        "format must be one of: html, json, text",
    );
}

#[actix_rt::test]
async fn snapshot_handler_serves_a_plain_route() {
    start_workload();
    let app = test::init_service(
        App::new()
            .route("/get", web::get().to(snapshot_handler))
            .route("/any", web::route().to(snapshot_handler)),
    )
    .await;
    let reply = get(&app, "/get?format=text&augment=0").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert!(reply.body.contains("parked_worker"));
    assert_security_headers(&reply);

    let reply = get(&app, "/get?format=text&bogus=1").await;
    assert_error(
        &reply,
        StatusCode::BAD_REQUEST,
        "unknown parameter \"bogus\"; allowed: augment, maxmem, similarity, format",
    );

    let reply = fetch(&app, Method::DELETE, "/any").await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(reply.header(header::ALLOW), "GET, HEAD");
    let reply = fetch(&app, Method::HEAD, "/any?format=json").await;
    assert_eq!((reply.status, reply.body.as_str()), (StatusCode::OK, ""));
}

#[actix_rt::test]
async fn overridden_defaults_apply_unless_asked() {
    let app = test::init_service(
        App::new().service(
            Webstack::new("/ws-overridden_defaults_apply_unless_asked")
                .augment_default(false)
                .maxmem_cap(2 << 20)
                .similarity_default(Similarity::AnyValue)
                .format_default(Format::Json),
        ),
    )
    .await;
    let json = get(&app, "/ws-overridden_defaults_apply_unless_asked")
        .await
        .json();
    assert_eq!(json["augmented"], false);
    assert_eq!(json["maxmem"], 2 << 20, "the default is lowered to the cap");
    assert_eq!(json["similarity"], "anyvalue");

    let json = get(
        &app,
        "/ws-overridden_defaults_apply_unless_asked?augment=1&maxmem=1000000000&similarity=exactlines",
    )
    .await
    .json();
    assert_eq!(json["augmented"], true);
    assert_eq!(
        json["maxmem"],
        2 << 20,
        "asked values are lowered to the cap"
    );
    assert_eq!(json["similarity"], "exactlines");

    let reply = get(
        &app,
        "/ws-overridden_defaults_apply_unless_asked?format=text",
    )
    .await;
    assert_eq!(
        reply.header(header::CONTENT_TYPE),
        "text/plain; charset=utf-8"
    );

    let app = test::init_service(App::new().service(
        Webstack::new("/ws-overridden_defaults_apply_unless_asked").maxmem_default(3 << 20),
    ))
    .await;
    assert_eq!(
        get(
            &app,
            "/ws-overridden_defaults_apply_unless_asked?format=json&augment=0"
        )
        .await
        .json()["maxmem"],
        3 << 20
    );
}

#[actix_rt::test]
async fn min_interval_answers_429_with_retry_after_then_recovers() {
    let interval = Duration::from_millis(1500);
    let app = test::init_service(
        App::new().service(
            Webstack::new("/ws-min_interval_answers_429_with_retry_after_then_recovers")
                .min_interval(interval),
        ),
    )
    .await;
    assert_eq!(
        get(
            &app,
            "/ws-min_interval_answers_429_with_retry_after_then_recovers?format=text&augment=0"
        )
        .await
        .status,
        StatusCode::OK
    );
    // The interval started before the first answer arrived.
    let answered = Instant::now();
    let reply = get(
        &app,
        "/ws-min_interval_answers_429_with_retry_after_then_recovers?format=text&augment=0",
    )
    .await;
    let retry_after: u64 = reply.header(header::RETRY_AFTER).parse().unwrap();
    assert!((1..=2).contains(&retry_after), "Retry-After: {retry_after}");
    assert_error(
        &reply,
        StatusCode::TOO_MANY_REQUESTS,
        &format!("too many snapshots; retry in {retry_after} s"),
    );
    // Parameters are still checked first.
    assert_eq!(
        get(
            &app,
            "/ws-min_interval_answers_429_with_retry_after_then_recovers?format=nope"
        )
        .await
        .status,
        StatusCode::BAD_REQUEST
    );
    // HEAD takes no snapshot, so it is not limited.
    assert_eq!(
        fetch(
            &app,
            Method::HEAD,
            "/ws-min_interval_answers_429_with_retry_after_then_recovers"
        )
        .await
        .status,
        StatusCode::OK
    );

    let recovered = answered + interval + Duration::from_millis(50);
    actix_rt::time::sleep(recovered.saturating_duration_since(Instant::now())).await;
    let reply = get(
        &app,
        "/ws-min_interval_answers_429_with_retry_after_then_recovers?format=text&augment=0",
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    // And the next interval starts.
    let reply = get(
        &app,
        "/ws-min_interval_answers_429_with_retry_after_then_recovers?format=text&augment=0",
    )
    .await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
}

/// Makes every capture last `hold`, so that requests overlap.
fn slow(hold: Duration) -> impl Fn(&mut webstack::Snapshot) + Send + Sync + 'static {
    move |_| std::thread::sleep(hold)
}

#[actix_rt::test]
async fn a_second_concurrent_request_waits_its_turn() {
    let app = test::init_service(
        App::new().service(
            Webstack::new("/ws-a_second_concurrent_request_waits_its_turn")
                .map_snapshot(slow(Duration::from_millis(300))),
        ),
    )
    .await;
    let started = Instant::now();
    let (a, b) = futures::join!(
        get(
            &app,
            "/ws-a_second_concurrent_request_waits_its_turn?format=text&augment=0"
        ),
        get(
            &app,
            "/ws-a_second_concurrent_request_waits_its_turn?format=text&augment=0"
        )
    );
    assert_eq!((a.status, b.status), (StatusCode::OK, StatusCode::OK));
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "snapshots ran one at a time: {:?}",
        started.elapsed()
    );
}

#[actix_rt::test]
async fn a_snapshot_does_not_stall_other_requests() {
    let app = test::init_service(
        App::new()
            .service(
                Webstack::new("/ws-a_snapshot_does_not_stall_other_requests")
                    .map_snapshot(slow(Duration::from_millis(600))),
            )
            .route("/ping", web::get().to(|| async { "pong" })),
    )
    .await;
    let started = Instant::now();
    let (snapshot, (ping, ping_done)) = futures::join!(
        get(
            &app,
            "/ws-a_snapshot_does_not_stall_other_requests?format=text&augment=0"
        ),
        async {
            actix_rt::time::sleep(Duration::from_millis(50)).await;
            let reply = get(&app, "/ping").await;
            (reply, started.elapsed())
        }
    );
    assert_eq!(
        (snapshot.status, ping.body.as_str()),
        (StatusCode::OK, "pong")
    );
    assert!(
        ping_done < Duration::from_millis(450),
        "the ping waited for the snapshot: {ping_done:?}"
    );
    assert!(started.elapsed() >= Duration::from_millis(600));
}

#[actix_rt::test]
async fn a_request_that_waits_too_long_answers_503() {
    let app = test::init_service(
        App::new().service(
            Webstack::new("/ws-a_request_that_waits_too_long_answers_503")
                .map_snapshot(slow(Duration::from_millis(500)))
                .queue_timeout(Duration::from_millis(50)),
        ),
    )
    .await;
    let (a, b) = futures::join!(
        get(
            &app,
            "/ws-a_request_that_waits_too_long_answers_503?format=text&augment=0"
        ),
        get(
            &app,
            "/ws-a_request_that_waits_too_long_answers_503?format=text&augment=0"
        )
    );
    let (ok, busy) = if a.status == StatusCode::OK {
        (a, b)
    } else {
        (b, a)
    };
    assert_eq!(ok.status, StatusCode::OK);
    assert_error(
        &busy,
        StatusCode::SERVICE_UNAVAILABLE,
        "busy: another snapshot is in progress; retry shortly",
    );
    assert_eq!(busy.header(header::RETRY_AFTER), "1");
    // The turn is free again once the first snapshot ended.
    assert_eq!(
        get(
            &app,
            "/ws-a_request_that_waits_too_long_answers_503?format=text&augment=0"
        )
        .await
        .status,
        StatusCode::OK
    );
}

#[actix_rt::test]
async fn a_panic_while_capturing_answers_500_and_the_service_recovers() {
    let armed = Arc::new(AtomicBool::new(true));
    let trigger = armed.clone();
    let app = test::init_service(
        App::new().service(
            Webstack::new("/ws-a_panic_while_capturing_answers_500_and_the_service_recovers")
                .map_snapshot(move |_| {
                    if trigger.swap(false, Ordering::SeqCst) {
                        panic!("redaction hook failed on purpose");
                    }
                }),
        ),
    )
    .await;
    let reply = get(
        &app,
        "/ws-a_panic_while_capturing_answers_500_and_the_service_recovers?format=json&augment=0",
    )
    .await;
    assert_error(
        &reply,
        StatusCode::INTERNAL_SERVER_ERROR,
        "snapshot failed: panicked: redaction hook failed on purpose",
    );
    // No lock poisoned, the turn released: the next snapshot is served.
    let reply = get(
        &app,
        "/ws-a_panic_while_capturing_answers_500_and_the_service_recovers?format=json&augment=0",
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.json()["version"], 1);
}

#[actix_rt::test]
async fn only_the_exact_path_is_served() {
    let app = test::init_service(App::new().service(Webstack::new("/debug/webstack"))).await;
    assert_eq!(
        get(&app, "/debug/webstack?augment=0").await.status,
        StatusCode::OK
    );
    assert_eq!(
        get(&app, "/debug/webstack/x").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(get(&app, "/debug").await.status, StatusCode::NOT_FOUND);
}

#[actix_rt::test]
async fn extreme_durations_do_not_overflow() {
    let app = test::init_service(
        App::new().service(
            Webstack::new("/ws-extreme_durations_do_not_overflow")
                .min_interval(Duration::MAX)
                .queue_timeout(Duration::MAX),
        ),
    )
    .await;
    assert_eq!(
        get(
            &app,
            "/ws-extreme_durations_do_not_overflow?format=text&augment=0"
        )
        .await
        .status,
        StatusCode::OK
    );
    let reply = get(
        &app,
        "/ws-extreme_durations_do_not_overflow?format=text&augment=0",
    )
    .await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = reply.header(header::RETRY_AFTER).parse().unwrap();
    assert!(retry_after > 1 << 60, "{retry_after}");
}
