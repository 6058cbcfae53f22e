#[webstack::main(panic_hook, panic_hook)]
fn main() {}
