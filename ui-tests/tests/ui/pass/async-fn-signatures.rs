// An instrumented `async fn` is expanded to a `fn` returning `impl Future`;
// every signature an `async fn` accepts still compiles and means the same:
// lifetimes hidden in paths or elided several times, generic and `impl
// Trait` parameters, `mut self`, recursion through `Box::pin`, and a future
// that stays `Send`.

use std::fmt::Display;
use std::future::Future;
use std::pin::Pin;

struct Cursor<'a> {
    rest: &'a [u8],
}

// `Cursor` hides a lifetime, which the returned future, holding `cursor`
// across an await, must capture.
#[allow(elided_lifetimes_in_paths)]
#[webstack::instrument]
async fn take(cursor: Cursor, n: usize) -> u32 {
    tokio::task::yield_now().await;
    cursor.rest[..n].iter().map(|&b| u32::from(b)).sum()
}

// Three distinct elided lifetimes.
#[webstack::instrument]
async fn longest(a: &str, b: &str, scratch: &mut Vec<usize>) -> usize {
    scratch.push(a.len());
    scratch.push(b.len());
    a.len().max(b.len())
}

#[webstack::instrument]
async fn show<T: Display + Send>(value: T, suffix: impl Display + Send) -> String {
    tokio::task::yield_now().await;
    format!("{value}{suffix}")
}

#[webstack::instrument]
fn depth(n: u32) -> Pin<Box<dyn Future<Output = u32> + Send>> {
    Box::pin(recurse(n))
}

#[webstack::instrument]
async fn recurse(n: u32) -> u32 {
    if n == 0 {
        let frames = ui_tests::thread_frames();
        return frames.iter().filter(|f| f.function.ends_with("::recurse")).count() as u32;
    }
    depth(n - 1).await
}

struct Counter {
    hits: u32,
}

impl Counter {
    #[webstack::instrument]
    async fn bump(mut self, by: u32) -> Self {
        self.hits += by;
        self
    }

    #[webstack::instrument]
    async fn hits(&self, _unused: &str) -> u32 {
        self.hits
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let bytes = [1u8, 2, 3];
    let cursor = Cursor { rest: &bytes };
    assert_eq!(runtime.block_on(ui_tests::assert_send(take(cursor, 2))), 3);
    let mut scratch = Vec::new();
    assert_eq!(runtime.block_on(longest("ab", "abc", &mut scratch)), 3);
    assert_eq!(scratch, [2, 3]);
    assert_eq!(runtime.block_on(ui_tests::assert_send(show(4, 'x'))), "4x");
    // Three `recurse` frames on the stack at the innermost one.
    assert_eq!(runtime.block_on(recurse(2)), 3);
    let counter = runtime.block_on(Counter { hits: 1 }.bump(2));
    assert_eq!(runtime.block_on(counter.hits("")), 3);
}
