//! The one memory budget of a snapshot (`maxmem`), charged by every stage
//! that adds to it: the shadow capture, the native pass and, in advance,
//! the grouping.
//!
//! Costs are estimates from the sizes of the model's types. A routine is
//! a fixed record plus its name, and its member entry in a bucket; a
//! distinct stack (a chain, shared by every routine that has it) is its
//! frames and the arguments that do not fit inside a frame, plus what
//! grouping may copy of it (a bucket with a bucket frame per frame and a
//! bucket argument per argument). So `maxmem` bounds a capture and its
//! grouping together; the group module checks that its types fit the room
//! counted here.

use super::model::{Arg, Args, Frame, Snapshot};
use super::table::{Record, CHAIN_BYTES};

/// Room counted per frame for the bucket frame grouping may make of it.
pub(crate) const GROUP_FRAME_BYTES: usize = std::mem::size_of::<Frame>();

/// Room counted per argument for the bucket argument grouping may make of it.
pub(crate) const GROUP_ARG_BYTES: usize = std::mem::size_of::<Arg>() + 8;

/// Room counted per routine for its member entry (an index) in a bucket.
pub(crate) const GROUP_MEMBER_BYTES: usize = std::mem::size_of::<u32>();

/// Room counted per chain for the bucket grouping may make of it.
pub(crate) const GROUP_BUCKET_BYTES: usize = 256;

/// What a routine costs beside its chain and its record's room (charged as
/// the records' buffer grows): its member entry in a bucket.
pub(crate) const ROUTINE_BYTES: usize = GROUP_MEMBER_BYTES;

/// The room of one record in the records' buffer.
pub(crate) const RECORD_ROOM: usize = std::mem::size_of::<Record>();

/// Bytes a snapshot may still use.
#[derive(Debug)]
pub(crate) struct Budget {
    max: usize,
    used: usize,
}

impl Budget {
    /// An empty budget of `max` bytes.
    pub(crate) fn new(max: usize) -> Self {
        Budget { max, used: 0 }
    }

    /// The budget left in `snapshot`, for a stage that adds to it; give it
    /// back with [`Budget::store`].
    pub(crate) fn of(snapshot: &Snapshot) -> Self {
        Budget {
            max: snapshot.maxmem,
            used: snapshot.bytes_used,
        }
    }

    /// Records what was used in `snapshot`.
    pub(crate) fn store(&self, snapshot: &mut Snapshot) {
        snapshot.bytes_used = self.used;
    }

    /// Takes `bytes` if they fit.
    pub(crate) fn take(&mut self, bytes: usize) -> bool {
        if self.used + bytes > self.max {
            return false;
        }
        self.used += bytes;
        true
    }

    /// Bytes left.
    pub(crate) fn room(&self) -> usize {
        self.max.saturating_sub(self.used)
    }

    /// Gives back `bytes` taken for something no longer held.
    pub(crate) fn give(&mut self, bytes: usize) {
        self.used = self.used.saturating_sub(bytes);
    }

    pub(crate) fn used(&self) -> usize {
        self.used
    }
}

/// What a routine costs with a name of `name_len` bytes and a chain of
/// its own, of one frame per item of `args_per_frame`, holding that many
/// arguments.
pub(crate) fn routine_cost(name_len: usize, args_per_frame: impl Iterator<Item = usize>) -> usize {
    RECORD_ROOM + ROUTINE_BYTES + name_len + chain_cost(args_per_frame)
}

/// What a chain costs, of one frame per item of `args_per_frame`.
pub(crate) fn chain_cost(args_per_frame: impl Iterator<Item = usize>) -> usize {
    CHAIN_BYTES + GROUP_BUCKET_BYTES + args_per_frame.map(frame_cost).sum::<usize>()
}

/// What `frames` cost, as [`chain_cost`] counts them.
pub(crate) fn frames_cost(frames: &[Frame]) -> usize {
    frames.iter().map(|f| frame_cost(f.args.len())).sum()
}

/// What a source line of `len` bytes costs: the frame's copy and the one
/// its bucket may keep.
pub(crate) fn source_cost(len: usize) -> usize {
    2 * len
}

fn frame_cost(args: usize) -> usize {
    std::mem::size_of::<Frame>()
        + Args::heap_bytes(args)
        + GROUP_FRAME_BYTES
        + args * GROUP_ARG_BYTES
}
