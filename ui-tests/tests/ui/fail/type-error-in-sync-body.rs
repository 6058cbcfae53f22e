#[webstack::instrument]
fn length(text: &str) -> u32 {
    text.len()
}

#[webstack::instrument]
fn unit_returns_value(a: u32) {
    a
}

fn main() {}
