// `#[must_use]` on an instrumented `async fn` still applies to the awaited
// output, as on a plain `async fn`.

#![deny(unused_must_use)]

#[webstack::instrument]
#[must_use]
async fn total(a: u32) -> u32 {
    a
}

async fn caller() {
    total(1).await;
}

fn main() {
    drop(caller());
}
