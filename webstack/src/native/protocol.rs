//! The request/answer protocol of one capture slot, as plain atomic
//! transitions, so that the signal handler and the collector share one
//! implementation and the loom model checks that very code.
//!
//! A slot's `phase` word holds a 30-bit sequence number and a 2-bit tag
//! (requested, claimed, done, abandoned); one `remaining` word, shared by
//! every slot, counts the requests sent and neither answered nor taken back.
//! The collector [`request`]s; the handler [`claim`]s, fills the slot, and
//! [`publish`]es (the last answer is told to wake the collector); after the
//! deadline the collector [`settle`]s each request: done, timed out (taken
//! back: a late handler finds nothing to claim), or claimed (still
//! running: wait for it or retire the slot).

use std::sync::atomic::Ordering;

const TAG_BITS: u32 = 2;
const REQUESTED: u32 = 0;
const CLAIMED: u32 = 1;
const DONE: u32 = 2;
const ABANDONED: u32 = 3;
/// Bits of the sequence number.
pub(crate) const SEQ_BITS: u32 = u32::BITS - TAG_BITS;
/// Mask of the sequence number.
pub(crate) const SEQ_MASK: u32 = u32::MAX >> TAG_BITS;

/// The phase of a slot that no request uses.
pub(crate) const IDLE: u32 = phase(0, ABANDONED);

const fn phase(seq: u32, tag: u32) -> u32 {
    ((seq & SEQ_MASK) << TAG_BITS) | tag
}

/// The 32-bit atomic the protocol runs on: std's, or loom's in the model.
pub(crate) trait Word {
    fn load(&self, order: Ordering) -> u32;
    fn store(&self, value: u32, order: Ordering);
    fn compare_exchange(
        &self,
        current: u32,
        new: u32,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u32, u32>;
    fn fetch_add(&self, value: u32, order: Ordering) -> u32;
    fn fetch_sub(&self, value: u32, order: Ordering) -> u32;
}

macro_rules! word {
    ($ty:ty) => {
        impl Word for $ty {
            fn load(&self, order: Ordering) -> u32 {
                <$ty>::load(self, order)
            }
            fn store(&self, value: u32, order: Ordering) {
                <$ty>::store(self, value, order)
            }
            fn compare_exchange(
                &self,
                current: u32,
                new: u32,
                success: Ordering,
                failure: Ordering,
            ) -> Result<u32, u32> {
                <$ty>::compare_exchange(self, current, new, success, failure)
            }
            fn fetch_add(&self, value: u32, order: Ordering) -> u32 {
                <$ty>::fetch_add(self, value, order)
            }
            fn fetch_sub(&self, value: u32, order: Ordering) -> u32 {
                <$ty>::fetch_sub(self, value, order)
            }
        }
    };
}

word!(std::sync::atomic::AtomicU32);
#[cfg(webstack_loom)]
word!(loom::sync::atomic::AtomicU32);

/// Collector, before queuing the signal: the slot is requested under
/// `seq`, and counted in `remaining`.
pub(crate) fn request(slot: &impl Word, remaining: &impl Word, seq: u32) {
    slot.store(phase(seq, REQUESTED), Ordering::Release);
    remaining.fetch_add(1, Ordering::AcqRel);
}

/// Collector, when the signal could not be queued: no handler will come.
pub(crate) fn unsend(slot: &impl Word, remaining: &impl Word, seq: u32) {
    slot.store(phase(seq, ABANDONED), Ordering::Release);
    remaining.fetch_sub(1, Ordering::AcqRel);
}

/// Handler: takes the slot if it is requested under `seq` (and not
/// abandoned, nor requested again under another number). Only then may it
/// write the slot.
pub(crate) fn claim(slot: &impl Word, seq: u32) -> bool {
    slot.compare_exchange(
        phase(seq, REQUESTED),
        phase(seq, CLAIMED),
        Ordering::Acquire,
        Ordering::Relaxed,
    )
    .is_ok()
}

/// Handler, after [`claim`] and filling the slot: publishes it. Returns
/// whether this was the last answer awaited (wake the collector).
pub(crate) fn publish(slot: &impl Word, remaining: &impl Word, seq: u32) -> bool {
    slot.store(phase(seq, DONE), Ordering::Release);
    remaining.fetch_sub(1, Ordering::AcqRel) == 1
}

/// Requests neither answered nor taken back; the collector sleeps until 0.
pub(crate) fn remaining(remaining: &impl Word) -> u32 {
    remaining.load(Ordering::Acquire)
}

/// What became of a request when the collector looked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Settled {
    /// Answered: the slot's contents are visible to the collector.
    Done,
    /// Not claimed: abandoned now and taken back from `remaining`; no
    /// handler will write the slot for this request.
    TimedOut,
    /// A handler claimed it and has not published yet.
    Claimed,
}

/// Collector, after the deadline: settles one request.
pub(crate) fn settle(slot: &impl Word, remaining: &impl Word, seq: u32) -> Settled {
    match slot.compare_exchange(
        phase(seq, REQUESTED),
        phase(seq, ABANDONED),
        Ordering::AcqRel,
        Ordering::Acquire,
    ) {
        Ok(_) => {
            remaining.fetch_sub(1, Ordering::AcqRel);
            Settled::TimedOut
        }
        Err(current) if current == phase(seq, DONE) => Settled::Done,
        Err(_) => Settled::Claimed,
    }
}

/// Collector, after the grace period: whether a claimed request was
/// published meanwhile.
pub(crate) fn is_done(slot: &impl Word, seq: u32) -> bool {
    slot.load(Ordering::Acquire) == phase(seq, DONE)
}
