trait Handler {
    #[webstack::instrument]
    fn handle(&self, id: u32);
}

fn main() {}
