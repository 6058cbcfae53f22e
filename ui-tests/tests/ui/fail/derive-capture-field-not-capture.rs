struct Socket;

#[derive(webstack::Capture)]
struct Conn {
    #[capture]
    socket: Socket,
    id: u64,
}

#[derive(webstack::Capture)]
enum State {
    Open(#[capture] std::fs::File),
}

fn main() {}
