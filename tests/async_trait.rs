//! Methods of `#[async_trait]` impls: `async_trait` rewrites them into a
//! `fn` returning `Pin<Box<dyn Future>>` before `#[webstack::instrument]`
//! sees them, and the frame must still live in the method's future, so a task
//! waiting inside the method shows it.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pretty_assertions::assert_eq;
use support::snapshot::{describe_all, routines, shadow_snapshot};
use support::wait::{wait_until, watchdog};
use tokio::sync::oneshot;

#[async_trait]
trait Store {
    async fn fetch(&self, key: u32, rx: oneshot::Receiver<u32>) -> u32;
}

struct Remote;

#[async_trait]
impl Store for Remote {
    #[webstack::instrument(skip(rx))]
    async fn fetch(&self, key: u32, rx: oneshot::Receiver<u32>) -> u32 {
        rx.await.unwrap_or(0) + key
    }
}

#[webstack::instrument(name = "request", skip(store, rx))]
async fn request(store: Arc<dyn Store + Send + Sync>, id: u32, rx: oneshot::Receiver<u32>) -> u32 {
    store.fetch(id * 10, rx).await
}

#[test]
fn an_async_trait_method_shows_while_its_future_is_pending() {
    let _watchdog = watchdog(
        "async_trait::an_async_trait_method_shows_while_its_future_is_pending",
        Duration::from_secs(60),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    let (tx, rx) = oneshot::channel();
    let store: Arc<dyn Store + Send + Sync> = Arc::new(Remote);
    let handle = rt.spawn(request(store, 4, rx));
    // Compared below whatever it shows: a failure prints the chain.
    wait_until(Duration::from_secs(5), || {
        routines(&shadow_snapshot(), |n| n == "request")
            .iter()
            .any(|r| r.frames.len() == 2 && r.state.as_str() == "idle")
    });
    assert_eq!(
        describe_all(&shadow_snapshot(), |n| n == "request"),
        "Task \"request\" idle\n\
         \x20 async_trait::Remote::fetch(self: &Self = ADDR, key: u32 = 40) async_trait.rs:LINE\n\
         \x20 async_trait::request(id: u32 = 4) async_trait.rs:LINE [task root]\n"
    );
    tx.send(2).unwrap();
    assert_eq!(rt.block_on(handle).unwrap(), 42);
}
