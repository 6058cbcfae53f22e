#[webstack::main(panic_hook, dump_on_signal)]
fn main() {}
