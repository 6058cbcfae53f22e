// A method of an `#[async_trait]` impl reaches `#[webstack::instrument]`
// already rewritten to return `Pin<Box<dyn Future + Send>>`: its frame is
// still recorded while the boxed future is polled, after an await, with the
// arguments as written, and the future stays `Send`.

use async_trait::async_trait;

#[async_trait]
trait Store {
    async fn get(&self, key: u32, label: &str) -> u32;
}

struct Mem;

#[async_trait]
impl Store for Mem {
    #[webstack::instrument]
    async fn get(&self, key: u32, label: &str) -> u32 {
        tokio::task::yield_now().await;
        let frame = ui_tests::frame("get");
        assert!(frame.function.ends_with("::Mem::get"), "{}", frame.function);
        let args = ui_tests::args(&frame);
        assert_eq!((args[0].0, args[0].1), ("self", "&Self"));
        assert_eq!(
            args[1..],
            [
                ("key", "u32", "7".to_owned()),
                ("label", "&str", "\"seven\"".to_owned())
            ]
        );
        if key == 0 {
            return 0;
        }
        key * 2 + label.len() as u32
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let store: Box<dyn Store + Send + Sync> = Box::new(Mem);
    let future = ui_tests::assert_send(store.get(7, "seven"));
    assert_eq!(runtime.block_on(future), 19);
}
