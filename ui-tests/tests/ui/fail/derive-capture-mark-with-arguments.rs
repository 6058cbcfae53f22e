#[derive(webstack::Capture)]
struct Order {
    #[capture(skip)]
    id: u64,
    user: u64,
}

#[derive(webstack::Capture)]
enum ConnState {
    Draining(#[capture = "count"] u32),
}

fn main() {}
