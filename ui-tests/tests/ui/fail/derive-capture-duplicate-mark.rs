#[derive(webstack::Capture)]
struct Order {
    #[capture]
    id: u64,
    #[capture]
    user: u64,
}

#[derive(webstack::Capture)]
enum ConnState {
    Draining(#[capture] u32, #[capture] u32),
}

fn main() {}
