#[webstack::instrument(skip(pasword))]
fn login(user: &str, password: &str) -> bool {
    user == password
}

#[webstack::instrument(skip(self))]
fn free(a: u32) -> u32 {
    a
}

#[webstack::instrument(skip(a))]
fn destructured((a, b): (u32, u32)) -> u32 {
    a + b
}

fn main() {}
