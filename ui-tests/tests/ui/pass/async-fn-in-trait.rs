// `async fn` in traits: instrumented default methods (named after the
// implementing type) and instrumented methods in trait impls.

use std::future::Future;

trait Store {
    #[webstack::instrument]
    async fn load(&self, key: u32) -> u32 {
        let frame = ui_tests::frame("load");
        assert!(
            frame.function.ends_with("::Memory::load"),
            "{}",
            frame.function
        );
        self.fetch(key).await + 1
    }

    async fn fetch(&self, key: u32) -> u32;

    fn count(&self) -> impl Future<Output = usize> + Send;
}

struct Memory;

impl Store for Memory {
    #[webstack::instrument]
    async fn fetch(&self, key: u32) -> u32 {
        let frame = ui_tests::frame("fetch");
        assert!(
            frame.function.ends_with("::Memory::fetch"),
            "{}",
            frame.function
        );
        assert_eq!(frame.args[1].value.to_string(), "41");
        key
    }

    #[webstack::instrument]
    fn count(&self) -> impl Future<Output = usize> + Send {
        async { 1 }
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert_eq!(runtime.block_on(Memory.load(41)), 42);
    assert_eq!(runtime.block_on(Memory.count()), 1);
}
