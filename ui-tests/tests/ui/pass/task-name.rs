// `name = "..."` names the task whose root is the instrumented future; the
// default name is the function's.

#[webstack::instrument(name = "connection")]
async fn serve(port: u16) {
    tokio::task::yield_now().await;
    let task = ui_tests::task("serve");
    assert_eq!(task.name, "connection");
    assert_eq!(ui_tests::frame("serve").args[0].value.to_string(), "8080");
}

#[webstack::instrument]
async fn unnamed() {
    assert_eq!(ui_tests::task("unnamed").name, "unnamed");
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(serve(8080));
    runtime.block_on(unnamed());
}
