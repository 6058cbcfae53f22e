#[derive(webstack::Capture)]
#[capture]
struct UserId(u64);

#[derive(webstack::Capture)]
enum ConnState {
    #[capture]
    Draining(u32),
    Idle,
}

fn main() {}
