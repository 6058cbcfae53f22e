#[webstack::instrument(skip(a), skip_all)]
fn skip_then_all(a: u32) -> u32 {
    a
}

#[webstack::instrument(skip_all, skip(a))]
fn all_then_skip(a: u32) -> u32 {
    a
}

fn main() {}
