#[webstack::instrument]
struct Server;

#[webstack::instrument]
impl Server {
    fn run(&self) {}
}

#[webstack::main]
static MAIN: u32 = 0;

// Each item is still emitted beside its error.
const _: &Server = &Server;
const _: &u32 = &MAIN;

fn main() {}
