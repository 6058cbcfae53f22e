// `#[webstack::main]` below `#[tokio::main]`: `main` is instrumented as a
// sync function around the runtime, and can return a `Result`.

#[tokio::main(flavor = "current_thread")]
#[webstack::main]
async fn main() -> Result<(), std::num::ParseIntError> {
    let frame = ui_tests::frame("main");
    assert!(frame.function.ends_with("::main"), "{}", frame.function);
    let n: u32 = "5".parse()?;
    assert_eq!(n, 5);
    Ok(())
}
