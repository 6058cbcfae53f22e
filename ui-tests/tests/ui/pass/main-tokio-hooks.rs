// `tokio_hooks` builds the runtime itself: no `#[tokio::main]`.
#[webstack::main(tokio_hooks)]
async fn main() -> Result<(), String> {
    let spawned = tokio::spawn(async { 6 * 7 });
    let answer = spawned.await.map_err(|e| e.to_string())?;
    assert_eq!(answer, 42);
    Ok(())
}
