#[webstack::instrument(name = "a", name = "b")]
fn named() {}

#[webstack::instrument(skip(a), skip(b))]
fn skipped(a: u32, b: u32) -> u32 {
    a + b
}

#[webstack::instrument(skip_all, skip_all)]
fn all() {}

fn main() {}
