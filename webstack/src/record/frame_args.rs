//! The arguments of one frame as an instrumented call holds them: a tuple
//! whose members are full [`Value`]s or, for parameter types known to record
//! only a header and a payload (the list is `ViaNarrow` in `__private`), the
//! payload alone with the type's constant header ([`Fixed`]: integers,
//! floats, `bool`, `char`, `()`, lengths) or both words ([`Narrow`]:
//! `Option`s of these, whose header says `Some` or `None`).
//!
//! An async frame keeps its arguments inside its future for as long as the
//! call lasts, and a future is copied whole each time it moves: a `Value` is
//! six words, a `u64` argument needs one. Its slot write is two stores per
//! narrow argument, with no branch on the extra-word count. The slot layout
//! and what a snapshot reads are the same for every form.

use crate::record::value::{Value, VALUE_WORDS};
use crate::sealed;
use crate::sync::{AtomicU64, Ordering};

/// Most arguments recorded per frame; further ones are not recorded.
pub const MAX_ARGS: usize = 8;

/// The atomic words of one argument in a frame slot.
pub(crate) type ArgSlot = [AtomicU64; VALUE_WORDS];

/// One recorded argument, as stored in a frame slot.
///
/// Sealed: a snapshot reads the stored words back as a [`Value`], whose
/// header says which words are valid and whether one of them is a type-name
/// function to call; only [`Value`], [`Narrow`] and [`Fixed`] (whose headers
/// come from [`Value`]'s constructors) may store them.
pub trait ArgWords: Copy + sealed::ArgWords {
    /// Stores the argument's words into `slot` (relaxed; the slot's sequence
    /// lock orders them).
    fn store(&self, slot: &ArgSlot);
}

impl sealed::ArgWords for Value {}

impl ArgWords for Value {
    #[inline(always)]
    fn store(&self, slot: &ArgSlot) {
        let (header, payload, extra) = self.to_words();
        slot[0].store(header, Ordering::Relaxed);
        slot[1].store(payload, Ordering::Relaxed);
        for (word, value) in slot[2..].iter().zip(extra).take(self.extra_words()) {
            word.store(value, Ordering::Relaxed);
        }
    }
}

/// A value that needs no extra words: a header and a payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Narrow {
    header: u64,
    payload: u64,
}

impl Narrow {
    /// Keeps the header and payload of `value`. Only built for types whose
    /// [`Capture`](crate::Capture) impl never uses extra words; the header's
    /// word count is cleared regardless, so a reader never takes the stale
    /// extra words of a slot for this value's.
    #[inline(always)]
    pub(crate) fn new(value: Value) -> Self {
        let (header, payload, _) = value.to_words();
        Narrow {
            header: header & !Value::EXTRA_COUNT_MASK,
            payload,
        }
    }
}

#[cfg(test)]
impl From<Narrow> for Value {
    fn from(narrow: Narrow) -> Value {
        Value::from_words(
            narrow.header,
            narrow.payload,
            [0; crate::record::value::EXTRA_WORDS],
        )
    }
}

impl sealed::ArgWords for Narrow {}

impl ArgWords for Narrow {
    #[inline(always)]
    fn store(&self, slot: &ArgSlot) {
        slot[0].store(self.header, Ordering::Relaxed);
        slot[1].store(self.payload, Ordering::Relaxed);
    }
}

/// An argument whose header depends only on its type (an integer, a float,
/// `bool`, `char`, `()`, the length of a `Vec` or slice): only the payload is
/// kept, and the header is stored as the constant `HEADER`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fixed<const HEADER: u64>(u64);

impl<const HEADER: u64> Fixed<HEADER> {
    /// Keeps the payload of `value`, whose header must be `HEADER` (the
    /// `ViaNarrow` impls pair each type with its header; a unit test checks
    /// every pair).
    #[inline(always)]
    pub(crate) fn new(value: Value) -> Self {
        let (header, payload, _) = value.to_words();
        debug_assert_eq!(header, HEADER, "a Fixed argument's type has another header");
        Fixed(payload)
    }
}

#[cfg(test)]
impl<const HEADER: u64> From<Fixed<HEADER>> for Value {
    fn from(fixed: Fixed<HEADER>) -> Value {
        Value::from_words(HEADER, fixed.0, [0; crate::record::value::EXTRA_WORDS])
    }
}

impl<const HEADER: u64> sealed::ArgWords for Fixed<HEADER> {}

impl<const HEADER: u64> ArgWords for Fixed<HEADER> {
    #[inline(always)]
    fn store(&self, slot: &ArgSlot) {
        slot[0].store(HEADER, Ordering::Relaxed);
        slot[1].store(self.0, Ordering::Relaxed);
    }
}

/// All recorded arguments of a frame.
///
/// Sealed: the count [`store`](FrameArgs::store) returns is stored in the low
/// bits of the frame's header, beside the metadata address, so only the tuple
/// impls here (which return their length, at most [`MAX_ARGS`]) may exist.
pub trait FrameArgs: sealed::FrameArgs {
    /// Stores the arguments (at most [`MAX_ARGS`]) into `slots`; returns how
    /// many were stored.
    fn store(&self, slots: &[ArgSlot; MAX_ARGS]) -> usize;
}

macro_rules! tuple_args {
    ($($len:literal => ($($name:ident $index:tt),*);)*) => {$(
        impl<$($name: ArgWords),*> sealed::FrameArgs for ($($name,)*) {}

        impl<$($name: ArgWords),*> FrameArgs for ($($name,)*) {
            #[inline(always)]
            #[allow(unused_variables)]
            fn store(&self, slots: &[ArgSlot; MAX_ARGS]) -> usize {
                $(self.$index.store(&slots[$index]);)*
                $len
            }
        }
    )*};
}

tuple_args! {
    0 => ();
    1 => (A 0);
    2 => (A 0, B 1);
    3 => (A 0, B 1, C 2);
    4 => (A 0, B 1, C 2, D 3);
    5 => (A 0, B 1, C 2, D 3, E 4);
    6 => (A 0, B 1, C 2, D 3, E 4, F 5);
    7 => (A 0, B 1, C 2, D 3, E 4, F 5, G 6);
    8 => (A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7);
}

const _: () = assert!(MAX_ARGS == 8, "tuple_args! covers up to MAX_ARGS members");

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::probe::{
        Probe, ViaCapture as _, ViaNarrow as _, ViaPointee as _, ViaRef as _, ViaValue as _,
    };
    use crate::record::slot::Slot;
    use crate::record::value::Capture;

    /// What the macro emits for a parameter `$v`.
    macro_rules! record {
        ($v:expr) => {
            (&&&&&Probe(&$v)).__webstack_value()
        };
    }

    /// Whether a recorded argument is kept in fewer words than a `Value`.
    fn is_narrow<T: ArgWords>(_: &T) -> bool {
        std::mem::size_of::<T>() < std::mem::size_of::<Value>()
    }

    /// The value a snapshot reads back for one recorded argument, through a
    /// real slot whose words were first filled by a wide value.
    fn read_back<T: ArgWords>(arg: T) -> Value {
        let slot = Slot::new();
        let wide = Value::str("a string long enough for all words");
        slot.write(1 << 8, 0, 0, &(wide,));
        slot.write(2 << 8, 0, 0, &(arg,));
        let (words, _) = slot.read().unwrap();
        assert_eq!(words.nargs, 1);
        words.args[0]
    }

    #[test]
    fn each_narrow_type_reads_back_as_its_capture() {
        macro_rules! check {
            ($($v:expr),* $(,)?) => {$({
                let v = $v;
                let recorded = record!(v);
                assert!(is_narrow(&recorded), "{} is recorded wide", stringify!($v));
                assert_eq!(read_back(recorded), v.capture(), "{}", stringify!($v));
                assert_eq!(read_back(record!(&v)), v.capture(), "&{}", stringify!($v));
            })*};
        }
        check!(
            u8::MAX,
            u16::MAX,
            u32::MAX,
            u64::MAX,
            usize::MAX,
            i8::MIN,
            i16::MIN,
            i32::MIN,
            i64::MIN,
            isize::MIN,
            std::num::NonZeroU8::MAX,
            std::num::NonZeroU16::MAX,
            std::num::NonZeroU32::MAX,
            std::num::NonZeroU64::MAX,
            std::num::NonZeroUsize::MAX,
            std::num::NonZeroI8::MIN,
            std::num::NonZeroI16::MIN,
            std::num::NonZeroI32::MIN,
            std::num::NonZeroI64::MIN,
            std::num::NonZeroIsize::MIN,
            -1.5f32,
            f64::NAN,
            true,
            'x',
            (),
            vec![1u8, 2, 3],
            Some(7u8),
            None::<u16>,
            Some(u32::MAX),
            Some(u64::MAX),
            Some(usize::MAX),
            Some(-1i8),
            Some(-2i16),
            None::<i32>,
            Some(i64::MIN),
            Some(isize::MAX),
            Some(0.5f32),
            None::<f64>,
            Some(false),
            Some('y'),
            std::num::NonZeroU64::new(9),
            std::num::NonZeroUsize::new(3),
        );
        let slice: &[u32] = &[1, 2];
        assert_eq!(read_back(record!(slice)), slice.capture());
        let mut v = vec![1u8];
        let by_mut = &mut v;
        assert_eq!(
            read_back(record!(by_mut)),
            Value::len(crate::record::value::Collection::Vec, 1)
        );
    }

    #[test]
    fn strings_wide_integers_and_pointees_stay_wide() {
        let (text, big) = ("alice", u128::MAX);
        assert!(!is_narrow(&record!(text)));
        assert!(!is_narrow(&record!(big)));
        let lock = std::sync::Mutex::new(1);
        assert!(!is_narrow(&record!(&lock)));
    }

    /// A by-value argument without `Capture` keeps one word and reads back
    /// without an address; references and smart pointers record the address
    /// of what they point at, not of the argument.
    #[test]
    fn uncaptured_arguments_record_what_identifies_them() {
        let lock = std::sync::Mutex::new(1);
        let by_value = record!(lock);
        assert!(is_narrow(&by_value));
        assert_eq!(read_back(by_value), Value::by_value());
        let at = |p: *const std::sync::Mutex<i32>| Some(p as u64);
        let boxed = Box::new(std::sync::Mutex::new(2));
        let rc = std::rc::Rc::new(std::sync::Mutex::new(3));
        let arc = std::sync::Arc::new(std::sync::Mutex::new(4));
        let mut pinned = Box::pin(std::sync::Mutex::new(5));
        let raw = &lock as *const std::sync::Mutex<i32>;
        assert_eq!(read_back(record!(&lock)).address(), at(&lock));
        assert_eq!(read_back(record!(boxed)).address(), at(&*boxed));
        assert_eq!(read_back(record!(&boxed)).address(), at(&*boxed));
        assert_eq!(read_back(record!(rc)).address(), at(&*rc));
        assert_eq!(read_back(record!(arc)).address(), at(&*arc));
        assert_eq!(read_back(record!(&arc)).address(), at(&*arc));
        assert_eq!(read_back(record!(pinned)).address(), at(&*pinned));
        let pinned_mut = pinned.as_mut();
        let target = at(&*pinned_mut);
        assert_eq!(read_back(record!(pinned_mut)).address(), target);
        assert_eq!(read_back(record!(raw)).address(), at(raw));
        let arc_value = read_back(record!(arc));
        assert!(arc_value.pointee_type().unwrap().ends_with("Mutex<i32>"));
        // With `Capture`, the pointee's value wins over its address.
        assert_eq!(read_back(record!(std::sync::Arc::new(7u32))), Value::u64(7));
    }

    #[test]
    fn narrow_types_never_use_extra_words() {
        let values = [
            u8::MAX.capture(),
            u16::MAX.capture(),
            u32::MAX.capture(),
            u64::MAX.capture(),
            usize::MAX.capture(),
            i8::MIN.capture(),
            i16::MIN.capture(),
            i32::MIN.capture(),
            i64::MIN.capture(),
            isize::MIN.capture(),
            f32::MIN.capture(),
            f64::NAN.capture(),
            true.capture(),
            char::MAX.capture(),
            ().capture(),
            vec![0u8; 5].capture(),
            [1u8, 2][..].capture(),
            std::num::NonZeroU64::MAX.capture(),
            std::num::NonZeroI8::MIN.capture(),
            Some(u64::MAX).capture(),
            None::<i32>.capture(),
            Some(-1.5f32).capture(),
            Some('x').capture(),
            std::num::NonZeroUsize::new(3).capture(),
        ];
        for value in values {
            assert_eq!(value.extra_words(), 0, "{value}");
            assert_eq!(Value::from(Narrow::new(value)), value);
        }
    }

    #[test]
    fn a_narrow_argument_ignores_the_stale_words_of_a_wider_one() {
        let slot = Slot::new();
        let wide = Value::str("a string long enough for all words");
        slot.write(1 << 8, 0, 0, &(wide, wide));
        assert_eq!(slot.read().unwrap().0.args[..2], [wide, wide]);
        let narrow = (Narrow::new(Value::u64(5)), Narrow::new(Value::bool(true)));
        slot.write(2 << 8, 0, 0, &narrow);
        let (words, _) = slot.read().unwrap();
        assert_eq!(words.nargs, 2);
        assert_eq!(words.args[..2], [Value::u64(5), Value::bool(true)]);
    }
}
