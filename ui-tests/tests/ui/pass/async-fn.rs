// An `async fn` records its frame while it is polled, nested under the
// instrumented `async fn` that awaits it; its future stays `Send`.

#[webstack::instrument]
async fn fetch(id: u64, path: String) -> usize {
    tokio::task::yield_now().await;
    leaf(path.len()).await
}

#[webstack::instrument]
async fn leaf(len: usize) -> usize {
    let leaf = ui_tests::frame("leaf");
    assert_eq!(ui_tests::args(&leaf), [("len", "usize", "2".to_owned())]);
    let fetch = ui_tests::frame("fetch");
    assert_eq!(
        ui_tests::args(&fetch),
        [
            ("id", "u64", "7".to_owned()),
            ("path", "String", "\"/a\"".to_owned())
        ]
    );
    len
}

#[webstack::instrument]
async fn nothing() {}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let n = runtime.block_on(ui_tests::assert_send(fetch(7, "/a".to_owned())));
    assert_eq!(n, 2);
    runtime.block_on(nothing());
}
