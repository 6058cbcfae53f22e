#[webstack::instrument]
const fn answer() -> u32 {
    42
}

// The function is still emitted, unchanged, beside the error.
const _: u32 = answer();

fn main() {}
