// `#[webstack::main]` on a sync `main` records `main` as the root frame of
// the main thread.

#[webstack::main]
fn main() {
    let frame = ui_tests::frame("main");
    assert!(frame.function.ends_with("::main"), "{}", frame.function);
    assert!(frame.args.is_empty());
}
