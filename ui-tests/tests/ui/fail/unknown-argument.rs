#[webstack::instrument(level = "info")]
fn handle() {}

// The function is still emitted beside the error, so this resolves.
const _: fn() = handle;

fn main() {}
