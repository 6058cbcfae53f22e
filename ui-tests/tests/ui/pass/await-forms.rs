// Every form of `.await` in an instrumented body still compiles and means
// the same after the rewrite that records await lines: `?` after it, fields
// and methods of its output, awaits inside awaited expressions, `IntoFuture`
// types, awaits in async blocks and closures, in macro arguments, and in
// nested items (which are not rewritten).

use std::future::{ready, IntoFuture, Ready};

struct Deferred(u32);

impl IntoFuture for Deferred {
    type Output = u32;
    type IntoFuture = Ready<u32>;

    fn into_future(self) -> Ready<u32> {
        ready(self.0)
    }
}

struct Pair {
    left: u32,
}

async fn pair(left: u32) -> Pair {
    Pair { left }
}

async fn fallible(ok: bool) -> Result<u32, String> {
    if ok { Ok(1) } else { Err("no".to_owned()) }
}

async fn add(a: u32, b: u32) -> u32 {
    a + b
}

#[webstack::instrument]
async fn forms(n: u32) -> Result<u32, String> {
    let a = fallible(true).await?;
    let b = pair(n).await.left;
    let c = add(add(1, 2).await, Deferred(3).await).await;
    let d = async { ready(4).await + 1 }.await;
    let double = |x: u32| async move { ready(x * 2).await };
    let e = double(3).await;
    assert_eq!(ready(7).await, 7);
    async fn nested_item() -> u32 {
        ready(10).await
    }
    let f = nested_item().await;
    let g = (ready(1).await, ready(2).await).1;
    Ok(a + b + c + d + e + f + g)
}

#[webstack::instrument]
fn returns_future(n: u32) -> impl std::future::Future<Output = u32> {
    async move { ready(n).await + 1 }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert_eq!(runtime.block_on(forms(2)), Ok(1 + 2 + 6 + 5 + 6 + 10 + 2));
    assert_eq!(runtime.block_on(returns_future(1)), 2);
}
