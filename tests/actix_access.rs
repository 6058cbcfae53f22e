//! Who may see snapshots: the allow-list at its edges (loopback, IPv4-mapped
//! IPv6, the Tailscale preset, custom IPv4 and IPv6 ranges), forwarded
//! headers ignored unless the peer is a trusted proxy, and the 403 answer.
//!
//! Public addresses such as 8.8.8.8 appear only as in-process peer
//! addresses; nothing is contacted.

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::header;
use actix_web::http::{Method, StatusCode};
use actix_web::{test, App};
use pretty_assertions::assert_eq;
use webstack::actix::Webstack;
use webstack::serve::{Cidr, CONTENT_SECURITY_POLICY};

/// The status of a text snapshot requested from `peer` with `headers`.
async fn status_from<S, B>(app: &S, peer: &str, headers: &[(&str, &str)]) -> StatusCode
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let mut req = test::TestRequest::get().uri("/ws?format=text&augment=0");
    if !peer.is_empty() {
        let addr = match peer.parse::<std::net::IpAddr>().unwrap() {
            ip @ std::net::IpAddr::V4(_) => format!("{ip}:40000"),
            ip => format!("[{ip}]:40000"),
        };
        req = req.peer_addr(addr.parse().unwrap());
    }
    for &(name, value) in headers {
        req = req.insert_header((name, value));
    }
    test::call_service(app, req.to_request()).await.status()
}

async fn status<S, B>(app: &S, peer: &str) -> StatusCode
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    status_from(app, peer, &[]).await
}

const OK: StatusCode = StatusCode::OK;
const DENIED: StatusCode = StatusCode::FORBIDDEN;

#[actix_rt::test]
async fn loopback_only_by_default() {
    let app = test::init_service(App::new().service(Webstack::new("/ws"))).await;
    for peer in ["127.0.0.1", "127.255.255.254", "::1", "::ffff:127.0.0.1"] {
        assert_eq!(status(&app, peer).await, OK, "{peer}");
    }
    for peer in [
        "8.8.8.8",
        "128.0.0.1",
        "126.255.255.255",
        "100.64.0.0",
        "10.0.0.1",
        "::2",
        "::ffff:8.8.8.8",
        "2001:4860:4860::8888",
        // The IPv4-compatible (not mapped) form is not loopback.
        "::127.0.0.1",
    ] {
        assert_eq!(status(&app, peer).await, DENIED, "{peer}");
    }
    // Without a peer address (e.g. a Unix socket) nobody is let in.
    assert_eq!(status(&app, "").await, DENIED);
}

#[actix_rt::test]
async fn the_tailscale_preset_at_its_edges() {
    let app = test::init_service(App::new().service(Webstack::new("/ws").allow_tailscale())).await;
    for peer in [
        "127.0.0.1",
        "::1",
        "::ffff:127.0.0.1",
        "100.64.0.0",
        "100.100.100.100",
        "100.127.255.255",
        "::ffff:100.64.0.1",
        "fd7a:115c:a1e0::1",
        "fd7a:115c:a1e0:ffff:ffff:ffff:ffff:ffff",
    ] {
        assert_eq!(status(&app, peer).await, OK, "{peer}");
    }
    for peer in [
        "100.63.255.255",
        "100.128.0.0",
        "8.8.8.8",
        "::ffff:100.128.0.0",
        "fd7a:115c:a1e1::",
    ] {
        assert_eq!(status(&app, peer).await, DENIED, "{peer}");
    }
}

#[actix_rt::test]
async fn custom_ranges_ipv4_and_ipv6() {
    let app = test::init_service(
        App::new().service(
            Webstack::new("/ws")
                .allow("192.168.10.0/23".parse().unwrap())
                .allow("2001:db8:aa::/48".parse().unwrap())
                .allow("203.0.113.7".parse().unwrap()),
        ),
    )
    .await;
    for peer in [
        "192.168.10.0",
        "192.168.11.255",
        "::ffff:192.168.10.9",
        "2001:db8:aa::1",
        "2001:db8:aa:ffff::1",
        "203.0.113.7",
        "127.0.0.1",
    ] {
        assert_eq!(status(&app, peer).await, OK, "{peer}");
    }
    for peer in [
        "192.168.9.255",
        "192.168.12.0",
        "2001:db8:ab::1",
        "203.0.113.8",
    ] {
        assert_eq!(status(&app, peer).await, DENIED, "{peer}");
    }
}

#[actix_rt::test]
async fn allow_only_replaces_and_allow_any_opens() {
    let only = Webstack::new("/ws").allow_only([Cidr::TAILSCALE_V4]);
    let app = test::init_service(App::new().service(only)).await;
    assert_eq!(status(&app, "100.64.0.1").await, OK);
    assert_eq!(status(&app, "127.0.0.1").await, DENIED);

    let none = Webstack::new("/ws").allow_only([]);
    let app = test::init_service(App::new().service(none)).await;
    assert_eq!(status(&app, "127.0.0.1").await, DENIED);

    let any = Webstack::new("/ws").allow_any();
    let app = test::init_service(App::new().service(any)).await;
    assert_eq!(status(&app, "8.8.8.8").await, OK);
    assert_eq!(status(&app, "").await, OK);
}

#[actix_rt::test]
async fn forwarded_headers_are_ignored_without_a_trusted_proxy() {
    let app = test::init_service(App::new().service(Webstack::new("/ws"))).await;
    let spoofs: [&[(&str, &str)]; 3] = [
        &[("x-forwarded-for", "127.0.0.1")],
        &[("forwarded", "for=127.0.0.1")],
        &[("forwarded", "for=\"[::1]\""), ("x-forwarded-for", "::1")],
    ];
    for headers in spoofs {
        assert_eq!(
            status_from(&app, "8.8.8.8", headers).await,
            DENIED,
            "{headers:?}"
        );
    }
    // And a loopback peer stays allowed whatever it forwards.
    let headers = [("x-forwarded-for", "8.8.8.8")];
    assert_eq!(status_from(&app, "127.0.0.1", &headers).await, OK);
}

#[actix_rt::test]
async fn a_trusted_proxy_forwards_the_client_address() {
    let app = test::init_service(
        App::new().service(Webstack::new("/ws").trusted_proxy("10.0.0.2".parse().unwrap())),
    )
    .await;
    let proxy = "10.0.0.2";
    let cases: [(&[(&str, &str)], StatusCode); 14] = [
        (&[("x-forwarded-for", "127.0.0.1")], OK),
        (&[("x-forwarded-for", "::1")], OK),
        (&[("x-forwarded-for", "8.8.8.8")], DENIED),
        // The proxy appends the address it saw: a client prepending a
        // loopback address gains nothing.
        (&[("x-forwarded-for", "127.0.0.1, 8.8.8.8")], DENIED),
        (&[("x-forwarded-for", "8.8.8.8, 127.0.0.1")], OK),
        (
            &[
                ("x-forwarded-for", "8.8.8.8"),
                ("x-forwarded-for", "127.0.0.1"),
            ],
            OK,
        ),
        (&[("forwarded", "for=127.0.0.1;proto=http")], OK),
        (&[("forwarded", "for=\"[::1]:4711\"")], OK),
        (&[("forwarded", "for=8.8.8.8, for=\"127.0.0.1:80\"")], OK),
        (
            &[("forwarded", "for=\"127.0.0.1:80\", for=8.8.8.8")],
            DENIED,
        ),
        // `Forwarded` takes precedence over `X-Forwarded-For`.
        (
            &[
                ("forwarded", "for=8.8.8.8"),
                ("x-forwarded-for", "127.0.0.1"),
            ],
            DENIED,
        ),
        // Unreadable or missing forwarding: denied, not treated as the proxy.
        (&[("forwarded", "for=unknown")], DENIED),
        (&[("x-forwarded-for", "not-an-address")], DENIED),
        (&[], DENIED),
    ];
    for (headers, expected) in cases {
        assert_eq!(
            status_from(&app, proxy, headers).await,
            expected,
            "{headers:?}"
        );
    }
    // Peers other than the proxy are judged by their own address.
    let headers = [("x-forwarded-for", "8.8.8.8")];
    assert_eq!(status_from(&app, "127.0.0.1", &headers).await, OK);
    let headers = [("x-forwarded-for", "127.0.0.1")];
    assert_eq!(status_from(&app, "10.0.0.3", &headers).await, DENIED);
}

#[actix_rt::test]
async fn a_chain_of_trusted_proxies_is_walked() {
    let app = test::init_service(
        App::new().service(
            Webstack::new("/ws")
                .trusted_proxy("127.0.0.1".parse().unwrap())
                .trusted_proxy("10.0.0.2".parse().unwrap()),
        ),
    )
    .await;
    // 8.8.8.8 -> 10.0.0.2 -> 127.0.0.1 (peer): the client is 8.8.8.8.
    let headers = [("x-forwarded-for", "8.8.8.8, 10.0.0.2")];
    assert_eq!(status_from(&app, "127.0.0.1", &headers).await, DENIED);
    // A trusted proxy at loopback no longer lets its own requests in: they
    // must carry the client's address.
    assert_eq!(status(&app, "127.0.0.1").await, DENIED);
    let headers = [("x-forwarded-for", "::1, 10.0.0.2")];
    assert_eq!(status_from(&app, "::ffff:127.0.0.1", &headers).await, OK);
}

#[actix_rt::test]
async fn denied_is_a_403_with_the_security_headers() {
    let app = test::init_service(App::new().service(Webstack::new("/ws"))).await;
    for method in [Method::GET, Method::HEAD] {
        let req = test::TestRequest::default()
            .method(method.clone())
            .uri("/ws?format=json")
            .peer_addr("8.8.8.8:1234".parse().unwrap())
            .to_request();
        let resp = test::call_service(&app, req).await;
        assert_eq!(resp.status(), DENIED);
        let headers = resp.headers().clone();
        let value = |name| headers.get(name).unwrap().to_str().unwrap().to_owned();
        assert_eq!(value(header::CONTENT_TYPE), "text/plain; charset=utf-8");
        assert_eq!(value(header::CACHE_CONTROL), "no-store");
        assert_eq!(value(header::X_CONTENT_TYPE_OPTIONS), "nosniff");
        assert_eq!(
            value(header::CONTENT_SECURITY_POLICY),
            CONTENT_SECURITY_POLICY
        );
        let body = test::read_body(resp).await;
        if method == Method::GET {
            assert_eq!(body, "forbidden: client address not allowed\n");
        }
    }
    // Access is decided before the parameters: a stranger learns nothing.
    let req = test::TestRequest::get()
        .uri("/ws?bogus=1")
        .peer_addr("8.8.8.8:1234".parse().unwrap())
        .to_request();
    assert_eq!(test::call_service(&app, req).await.status(), DENIED);
}
