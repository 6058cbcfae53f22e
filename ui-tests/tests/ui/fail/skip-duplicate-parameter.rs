#[webstack::instrument(skip(password, password))]
fn login(user: &str, password: &str) -> bool {
    user == password
}

fn main() {}
