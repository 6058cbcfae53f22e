#[webstack::main(tokio_hooks)]
fn main() {}

mod with_runtime {
    #[webstack::main(tokio_hooks)]
    #[tokio::main]
    async fn main() {}
}
