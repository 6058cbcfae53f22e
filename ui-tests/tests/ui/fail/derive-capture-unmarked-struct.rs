#[derive(webstack::Capture)]
struct Order {
    id: u64,
    user: u64,
}

fn main() {}
