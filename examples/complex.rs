//! The hardened setup, on axum, point for point as panicparse's
//! `ExampleSnapshotHandler_complex` wraps its handler to
//!
//! - allow only localhost and `100.64.0.0/10` (Tailscale) clients;
//! - take one snapshot at a time;
//! - take at most one a second, measured from the end of the previous
//!   snapshot (its `last = time.Now()` runs after the handler);
//! - force `maxmem` to 32 MiB, whatever the request says.
//!
//! and, as this project's issue asks, `augment` (here: native stacks) is
//! off unless the request says `augment=1`. Each point is one builder call
//! in [`webstack`]; `tests/example_complex.rs` checks each.
//!
//! ```text
//! cargo run -p webstack-examples --example complex
//! ```
//!
//! prints
//!
//! ```text
//! complex: open http://127.0.0.1:6060/debug/webstack
//! ```
//!
//! and serves the page there. It listens on 127.0.0.1 only; set `WEBSTACK_COMPLEX_ADDR` (e.g. to a Tailscale address
//! and port) for `100.64.0.0/10` clients to reach it.

use std::net::SocketAddr;
use std::time::Duration;

use webstack::axum::Webstack;
use webstack::serve::Cidr;
use webstack::View;

/// Where the page is served.
pub const PATH: &str = "/debug/webstack";

/// The snapshot service: who may ask (an allow-list: the page shows every
/// thread's arguments), one snapshot at a time and at most one a second
/// (a page costs the process CPU), and a fixed memory cap.
pub fn webstack() -> Webstack {
    Webstack::new(PATH)
        // Loopback is on the allow-list by default; add 100.64.0.0/10.
        .allow(Cidr::TAILSCALE_V4)
        // One snapshot at a time is how every service works; at most one
        // a second, from the end of the last one.
        .min_interval_from_end(Duration::from_secs(1))
        // Native stacks only when asked for with `augment=1`.
        .defaults(View::default().augment(false))
        // 32 MiB whatever the request says (the default is 64 MiB).
        .force_maxmem(32 << 20)
}

/// The router the example serves.
pub fn router() -> axum::Router {
    axum::Router::from(webstack())
}

#[webstack::main]
#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::var("WEBSTACK_COMPLEX_ADDR").unwrap_or_else(|_| "127.0.0.1:6060".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("complex: open http://{}{PATH}", listener.local_addr()?);
    // The allow-list needs the client address: serve with ConnectInfo.
    let app = router().into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app).await
}
