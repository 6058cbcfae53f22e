// `Owner::addr` returns a word that a snapshot calls as a function: a user
// impl could make it call any address, so only webstack may implement it.

use webstack::__private::Owner;

#[derive(Clone, Copy)]
struct Evil;

impl Owner for Evil {
    fn addr(self) -> usize {
        0xdead_beef
    }
}

fn main() {}
