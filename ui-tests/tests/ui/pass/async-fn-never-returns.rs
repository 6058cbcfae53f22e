// An `async fn` returning `!` compiles.

#[webstack::instrument]
async fn forever(tick: u64) -> ! {
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(tick)).await;
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    runtime.block_on(async {
        tokio::select! {
            _ = forever(1) => unreachable!(),
            _ = tokio::task::yield_now() => {}
        }
    });
}
