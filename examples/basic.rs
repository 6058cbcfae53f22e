//! The smallest setup: the snapshot handler mounted on a route of a plain
//! server, as panicparse's Go does with
//! `http.HandleFunc("/debug/panicparse", webstack.SnapshotHandler)`.
//!
//! ```text
//! cargo run -p webstack-examples --example basic
//! ```
//!
//! prints
//!
//! ```text
//! basic: open http://127.0.0.1:6060/debug/webstack
//! ```
//!
//! and serves the snapshot page there with the default parameters.
//! `snapshot_handler` has no access control of its own, which is why the
//! server listens on 127.0.0.1 only: a page that shows every thread's
//! arguments must not be reachable by anyone else. For an allow-list, one
//! snapshot at a time, a rate limit and a memory cap, see `complex.rs`.

use actix_web::{web, App, HttpServer};

#[webstack::main]
#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let server = HttpServer::new(|| {
        App::new().route(
            "/debug/webstack",
            web::get().to(webstack::actix::snapshot_handler),
        )
    })
    .bind("127.0.0.1:6060")?;
    for addr in server.addrs() {
        println!("basic: open http://{addr}/debug/webstack");
    }
    server.run().await
}
