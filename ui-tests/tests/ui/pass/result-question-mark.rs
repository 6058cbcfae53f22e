// `?` keeps working in instrumented functions returning `Result`, including
// conversions through `From` (sync and async).

use std::error::Error;

#[webstack::instrument]
async fn parse_async(text: &str) -> Result<u32, Box<dyn Error + Send + Sync>> {
    let n: u32 = text.parse()?;
    Ok(n)
}

#[webstack::instrument]
fn parse_sync(text: &str) -> Result<u32, Box<dyn Error>> {
    let n = text.parse::<u32>()?;
    Ok(n)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert_eq!(runtime.block_on(parse_async("12")).unwrap(), 12);
    assert!(runtime.block_on(parse_async("x")).is_err());
    assert_eq!(parse_sync("3").unwrap(), 3);
    assert!(parse_sync("-").is_err());
}
