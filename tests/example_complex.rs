//! `examples/complex.rs` reproduces panicparse's complex example point for
//! point; its router is driven in process, each client address given as
//! axum's `MockConnectInfo`:
//!
//! - the allow-list is loopback and `100.64.0.0/10`, nothing else;
//! - `maxmem` is 32 MiB whatever the request says (JSON and page links);
//! - `augment` is off unless the request says `augment=1`;
//! - at most one snapshot a second, measured from the end of the last;
//! - one snapshot at a time: a request that arrives during a snapshot
//!   waits for it to end, and is then answered `429`, as the seed's
//!   mutex-then-throttle does.
//!
//! One test, in order: the throttle is shared by every service of the
//! path in the process.

#[path = "../examples/complex.rs"]
#[allow(dead_code)]
mod complex;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::Request;
use axum::Router;
use pretty_assertions::assert_eq;
use tower_service::Service as _;

struct Reply {
    status: u16,
    retry_after: Option<String>,
    body: String,
}

impl Reply {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("a JSON page")
    }
}

async fn send(router: &Router, method: &str, query: &str, peer: &str) -> Reply {
    let peer = SocketAddr::new(peer.parse().unwrap(), 40000);
    let mut router = router.clone().layer(MockConnectInfo(peer));
    let uri = format!("{}{query}", complex::PATH);
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::empty())
        .unwrap();
    let response = router.call(request).await.unwrap();
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    Reply {
        status,
        retry_after,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

/// A `GET` that waits out the one-second limit of an earlier snapshot.
async fn get_in_turn(router: &Router, query: &str, peer: &str) -> Reply {
    for _ in 0..10 {
        let reply = send(router, "GET", query, peer).await;
        if reply.status != 429 {
            return reply;
        }
        let secs: u64 = reply.retry_after.as_deref().unwrap().parse().unwrap();
        tokio::time::sleep(Duration::from_secs(secs)).await;
    }
    panic!("{query}: still 429 after ten waits");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complex_example_point_by_point() {
    let router = complex::router();

    // The allow-list: localhost and 100.64.0.0/10 (HEAD takes no snapshot,
    // so the limit does not apply).
    for peer in [
        "127.0.0.1",
        "::1",
        "::ffff:127.0.0.1",
        "100.64.0.0",
        "100.64.1.2",
        "100.127.255.255",
        "::ffff:100.100.0.1",
    ] {
        assert_eq!(send(&router, "HEAD", "", peer).await.status, 200, "{peer}");
    }
    for peer in [
        "100.63.255.255",
        "100.128.0.0",
        "192.0.2.1",
        "10.0.0.1",
        // Tailscale's IPv6 range is not in the seed's list.
        "fd7a:115c:a1e0::1",
    ] {
        assert_eq!(send(&router, "HEAD", "", peer).await.status, 403, "{peer}");
    }

    // A 100.64.x.x client; maxmem forced, augment off by default.
    let reply = get_in_turn(&router, "?format=json&maxmem=1048576", "100.64.1.2").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let json = reply.json();
    assert_eq!(json["maxmem"], 32 << 20);
    assert_eq!(json["augmented"], false);

    // Right after it: too soon.
    let reply = send(&router, "GET", "?format=text", "127.0.0.1").await;
    assert_eq!(
        (reply.status, reply.retry_after.as_deref()),
        (429, Some("1"))
    );

    // augment when the request asks; maxmem forced down as well as up.
    let query = "?format=json&augment=1&maxmem=999999999999";
    let json = get_in_turn(&router, query, "::1").await.json();
    assert_eq!(json["maxmem"], 32 << 20);
    assert_eq!(json["augmented"], true);

    // The page's links carry the forced value, not the requested one.
    let page = get_in_turn(&router, "?maxmem=2097152", "127.0.0.1").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("maxmem=33554432"));
    assert!(!page.body.contains("maxmem=2097152"));

    // From the end, one at a time: hold a snapshot, and more than a
    // second after it started, send another request.
    let entered = Arc::new(AtomicBool::new(false));
    let release = Arc::new(AtomicBool::new(false));
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let slow = Router::from(complex::webstack().map_snapshot({
        let (entered, release) = (entered.clone(), release.clone());
        let (running, most) = (running.clone(), most.clone());
        move |_| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            entered.store(true, Ordering::SeqCst);
            let deadline = Instant::now() + Duration::from_secs(60);
            while !release.load(Ordering::SeqCst) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(2));
            }
            running.fetch_sub(1, Ordering::SeqCst);
        }
    }));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let first = tokio::spawn({
        let slow = slow.clone();
        async move { send(&slow, "GET", "?format=text", "127.0.0.1").await }
    });
    while !entered.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = tokio::spawn({
        let slow = slow.clone();
        async move { send(&slow, "GET", "?format=text", "100.64.1.2").await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    // It waits for its turn: no answer while the first is held.
    assert!(!second.is_finished());
    release.store(true, Ordering::SeqCst);
    let (first, second) = (first.await.unwrap(), second.await.unwrap());
    assert_eq!(first.status, 200, "{}", first.body);
    // The first started over a second before the second came, so measured
    // from the start the second would be served; measured from the end,
    // the first ended just now.
    assert_eq!(
        (second.status, second.retry_after.as_deref()),
        (429, Some("1")),
        "{}",
        second.body
    );
    assert_eq!(most.load(Ordering::SeqCst), 1);
}
