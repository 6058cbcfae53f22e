// The count `FrameArgs::store` returns is OR-ed next to the metadata address
// in a frame's header: a larger one would corrupt that address, so only
// webstack may implement it.

use webstack::__private::FrameArgs;

struct Evil;

impl FrameArgs for Evil {
    fn store(&self, _slots: &[[std::sync::atomic::AtomicU64; 6]; 8]) -> usize {
        64
    }
}

fn main() {}
