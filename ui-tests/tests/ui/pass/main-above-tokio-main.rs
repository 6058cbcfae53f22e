// `#[webstack::main]` above `#[tokio::main]`: `main`'s body is an
// instrumented future, polled by the runtime.

#[webstack::main]
#[tokio::main]
async fn main() {
    tokio::task::yield_now().await;
    let frame = ui_tests::frame("main");
    assert!(frame.function.ends_with("::main"), "{}", frame.function);
}
