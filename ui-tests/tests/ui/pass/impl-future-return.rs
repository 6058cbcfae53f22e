// A function returning `impl Future + Send` records its frame while the
// returned future is polled, and the future is still `Send`.

use std::future::Future;

#[webstack::instrument]
fn delayed(n: u32) -> impl Future<Output = u32> + Send {
    async move {
        tokio::task::yield_now().await;
        let frame = ui_tests::frame("delayed");
        assert_eq!(ui_tests::args(&frame), [("n", "u32", "21".to_owned())]);
        n * 2
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert_eq!(runtime.block_on(ui_tests::assert_send(delayed(21))), 42);
}
