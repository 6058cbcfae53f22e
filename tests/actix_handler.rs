//! What the actix-web adapter adds to `webstack::serve::Service`: the
//! headers of every answer as actix sends them, HEAD, 405 with `Allow`, the
//! path it is mounted at, and `snapshot_handler` on a plain route. The
//! service's own behaviour (parameters, throttling, panics) is tested
//! without a framework in `serve.rs`, and actix against axum in
//! `adapter_agreement.rs`.

use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::header::{self, HeaderMap};
use actix_web::http::{Method, StatusCode};
use actix_web::{test, web, App};
use pretty_assertions::assert_eq;
use support::wait::{watchdog, Watchdog};
use webstack::actix::{snapshot_handler, Webstack};
use webstack::render::Format;
use webstack::serve::CONTENT_SECURITY_POLICY;

/// Aborts the test binary if a test runs past a minute.
fn guard(what: &'static str) -> Watchdog {
    watchdog(what, Duration::from_secs(60))
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
    let _watchdog = guard("each_format_has_its_content_type_and_the_security_headers");
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
        // The whole page arrives (its content: `serve.rs`).
        match format {
            Format::Html => assert!(reply.body.starts_with("<!DOCTYPE html>"), "{query}"),
            Format::Json => assert_eq!(reply.json()["version"], 1),
            Format::Text => assert!(reply.body.starts_with("webstack "), "{query}"),
        }
    }
}

#[actix_rt::test]
async fn other_methods_answer_405_with_allow() {
    let _watchdog = guard("other_methods_answer_405_with_allow");
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
    let _watchdog = guard("head_answers_the_headers_without_a_body");
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
    let _watchdog = guard("snapshot_handler_serves_a_plain_route");
    let app = test::init_service(
        App::new()
            .route("/get", web::get().to(snapshot_handler))
            .route("/any", web::route().to(snapshot_handler)),
    )
    .await;
    let reply = get(&app, "/get?format=text&augment=0").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert!(reply.body.starts_with("webstack "), "{}", reply.body);
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
async fn only_the_exact_path_is_served() {
    let _watchdog = guard("only_the_exact_path_is_served");
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
