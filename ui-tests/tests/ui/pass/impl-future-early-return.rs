// A `return` in an instrumented function returning `impl Future` returns
// the instrumented future, like its tail expression: both paths record the
// frame while polled, also when the body reborrows `&mut self` into the
// future. In an `async fn` a `return` leaves the body as usual.

use std::future::Future;
use std::pin::Pin;

type Boxed = Pin<Box<dyn Future<Output = u32> + Send>>;

#[webstack::instrument]
fn lookup(key: u32) -> impl Future<Output = u32> + Send {
    if key == 0 {
        return Box::pin(async {
            ui_tests::frame("lookup");
            0u32
        }) as Boxed;
    }
    let doubled: Vec<u32> = [key].iter().map(|k| k * 2).collect();
    Box::pin(async move {
        tokio::task::yield_now().await;
        let frame = ui_tests::frame("lookup");
        assert_eq!(ui_tests::args(&frame), [("key", "u32", key.to_string())]);
        doubled[0]
    }) as Boxed
}

struct Counter {
    n: u32,
}

impl Counter {
    // The body reborrows `self` into the returned future on both paths, and
    // mutates a `mut` parameter first.
    #[webstack::instrument]
    fn next(&mut self, mut step: u32) -> impl Future<Output = u32> + '_ {
        step += 1;
        self.n += step;
        if self.n > 100 {
            return read(self);
        }
        read(self)
    }
}

async fn read(counter: &mut Counter) -> u32 {
    counter.n
}

#[webstack::instrument]
async fn clamp(n: u32) -> u32 {
    if n > 10 {
        return 10;
    }
    ui_tests::frame("clamp");
    n
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert_eq!(runtime.block_on(ui_tests::assert_send(lookup(0))), 0);
    assert_eq!(runtime.block_on(ui_tests::assert_send(lookup(21))), 42);
    let mut counter = Counter { n: 0 };
    assert_eq!(runtime.block_on(counter.next(1)), 2);
    assert_eq!(runtime.block_on(counter.next(99)), 102);
    assert_eq!(runtime.block_on(clamp(50)), 10);
    assert_eq!(runtime.block_on(clamp(5)), 5);
}
