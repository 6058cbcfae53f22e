#[webstack::instrument]
async fn length(text: &str) -> u32 {
    text.len()
}

#[webstack::instrument]
async fn unit_returns_value(a: u32) {
    a
}

#[webstack::instrument]
async fn wrong_error(text: &str) -> Result<u32, String> {
    let n: u32 = text.parse()?;
    Ok(n)
}

fn main() {}
