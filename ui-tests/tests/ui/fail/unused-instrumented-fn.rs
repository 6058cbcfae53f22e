#![deny(dead_code)]

#[webstack::instrument]
fn never_called(a: u32) {}

#[webstack::instrument]
async fn never_awaited(a: u32) {}

#[webstack::instrument]
fn never_polled() -> impl std::future::Future<Output = ()> {
    async {}
}

fn main() {}
