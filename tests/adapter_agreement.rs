//! The actix and axum adapters answer alike: one table of requests
//! (`support::agreement::TABLE`: each format, each bad parameter, HEAD,
//! 405, the allow-list and trusted proxies, throttling, a forced `maxmem`,
//! one snapshot at a time off the async workers) run over TCP against a
//! real server of each, then the two runs compared row by row.
//!
//! Each server has one async worker (actix: one worker; axum: a
//! current-thread runtime), so a page served while another snapshot is in
//! progress shows that captures run off the async workers.

use std::sync::Arc;

use pretty_assertions::assert_eq;
use support::agreement::{run, services, Hold, Outcome};
use support::server::{start_axum_server, start_server_with};
use support::wait::watchdog;

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
