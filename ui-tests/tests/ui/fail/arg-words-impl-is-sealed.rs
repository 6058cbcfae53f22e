// The words an `ArgWords` impl stores are read back as a `Value`, whose
// header can make another word be called as a type-name function: only
// webstack may implement it.

use webstack::__private::ArgWords;

#[derive(Clone, Copy)]
struct Evil;

impl ArgWords for Evil {
    fn store(&self, _slot: &[std::sync::atomic::AtomicU64; 6]) {}
}

fn main() {}
