//! Argument values recorded at call time: the small tagged [`Value`] and
//! its words.
//!
//! A [`Value`] is six machine words of plain data. Recording one never
//! allocates, never runs `Debug`, and never keeps a pointer that a reader would
//! follow, except to `'static` data (a type-name function, a [`Shape`]):
//! strings are copied (their first [`STR_BYTES`] bytes), collections record
//! their length, a reference or smart pointer to a type without a [`Capture`]
//! impl records the address and type name of what it points at, a user's type
//! with `#[derive(Capture)]` records its variant and the value of one field,
//! and any other value without one records nothing but that it was there.
//!
//! This file holds the encoding: the header's tags and wrappers, the
//! constructors, the words a frame slot stores ([`fixed_header`],
//! `to_words`, `from_words`) and [`Value::decode`], what the read side reads
//! a value as. Beside it:
//!
//! - [`shape`]: [`Shape`] and [`Collection`], the `'static` descriptions a
//!   value refers to.
//! - [`capture`]: the [`Capture`] trait and its impls for std types.
//!
//! Turning a value into text happens when a snapshot is rendered, on the
//! thread that asked for it: [`crate::snapshot::value_text`].

mod capture;
mod shape;

pub use capture::Capture;
pub(crate) use shape::ShapeField;
pub use shape::{Collection, Shape};

use std::time::Duration;

/// How many bytes of a string argument are recorded (cut back to a `char`
/// boundary). The full length is always recorded.
pub const STR_BYTES: usize = 32;

/// Number of extra words a [`Value`] carries beside its header and payload.
pub(crate) const EXTRA_WORDS: usize = 4;

/// Words a value occupies in a frame slot.
pub(crate) const VALUE_WORDS: usize = 2 + EXTRA_WORDS;

/// A recorded argument value: a small tagged copy, cheap to make and to move.
///
/// Build one in a [`Capture`] impl with the constructors ([`Value::u64`],
/// [`Value::str`], [`Value::len`], …). Its
/// [`Display`](std::fmt::Display) form is what the snapshot page shows.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Value {
    header: u64,
    payload: u64,
    extra: [u64; EXTRA_WORDS],
}

// Header layout: bits 0..8 tag, 8..16 number of wrappers, 16..24 wrapper kinds
// (2 bits each, innermost first), 24..32 sub-kind (collection kind, or bytes
// of a string kept), 32..40 number of extra words in use.
//
// A `WRAP_FIELD` wrapper (a user's type around the value, from
// `Value::field`) keeps the address of its `&'static Shape` in an extra word:
// the value's own extra words come first, then one word per field wrapper,
// innermost first, and the count covers them all. `TAG_NAME` (a variant or
// type name alone, from `Value::named`) keeps its `&'static Shape` in its
// first extra word. Only those two constructors write these words.
const TAG_UNIT: u64 = 0;
const TAG_NONE: u64 = 1;
const TAG_BOOL: u64 = 2;
const TAG_CHAR: u64 = 3;
const TAG_I64: u64 = 4;
const TAG_U64: u64 = 5;
const TAG_I128: u64 = 6;
const TAG_U128: u64 = 7;
const TAG_F32: u64 = 8;
const TAG_F64: u64 = 9;
const TAG_STR: u64 = 10;
const TAG_LEN: u64 = 11;
const TAG_DURATION: u64 = 12;
const TAG_POINTER: u64 = 13;
const TAG_OPAQUE: u64 = 14;
const TAG_BY_VALUE: u64 = 15;
const TAG_NAME: u64 = 16;

/// Headers of the values whose header depends only on their type, for
/// arguments recorded as a payload word alone
/// ([`Fixed`](crate::record::frame_args::Fixed)).
pub(crate) mod fixed_header {
    use super::{
        Collection, TAG_BOOL, TAG_BY_VALUE, TAG_CHAR, TAG_F32, TAG_F64, TAG_I64, TAG_LEN, TAG_U64,
        TAG_UNIT,
    };

    pub(crate) const UNIT: u64 = TAG_UNIT;
    pub(crate) const BOOL: u64 = TAG_BOOL;
    pub(crate) const CHAR: u64 = TAG_CHAR;
    pub(crate) const I64: u64 = TAG_I64;
    pub(crate) const U64: u64 = TAG_U64;
    pub(crate) const F32: u64 = TAG_F32;
    pub(crate) const F64: u64 = TAG_F64;
    pub(crate) const SLICE_LEN: u64 = TAG_LEN | (Collection::Slice.code() << 24);
    pub(crate) const VEC_LEN: u64 = TAG_LEN | (Collection::Vec.code() << 24);
    pub(crate) const BY_VALUE: u64 = TAG_BY_VALUE;
}

const WRAP_SOME: u64 = 0;
const WRAP_OK: u64 = 1;
const WRAP_ERR: u64 = 2;
const WRAP_FIELD: u64 = 3;
const MAX_WRAPPERS: u64 = 4;

/// Bytes `start..end` of `bytes` (one to eight of them) as a little-endian
/// word, zero above them.
#[inline(always)]
fn str_word(bytes: &[u8], start: usize, end: usize) -> u64 {
    let n = end - start;
    if end >= 8 {
        // The eight bytes ending at `end`, shifted down past those before
        // `start`.
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes[end - 8..end]);
        return u64::from_le_bytes(word) >> ((8 - n) * 8);
    }
    // A string shorter than eight bytes: two overlapping loads.
    let b = &bytes[..end];
    if n >= 4 {
        let lo = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as u64;
        let hi = u32::from_le_bytes([b[n - 4], b[n - 3], b[n - 2], b[n - 1]]) as u64;
        lo | (hi << ((n - 4) * 8))
    } else if n >= 2 {
        let lo = u16::from_le_bytes([b[0], b[1]]) as u64;
        let hi = u16::from_le_bytes([b[n - 2], b[n - 1]]) as u64;
        lo | (hi << ((n - 2) * 8))
    } else {
        u64::from(b[0])
    }
}

impl Value {
    /// Appends the words of the value in use (its header, which counts the
    /// extra words, its payload and those extra words), for a snapshot that
    /// keys the stacks it has seen by what was recorded: equal words, equal
    /// values.
    #[inline]
    pub(crate) fn push_words(&self, out: &mut Vec<u64>) {
        out.extend_from_slice(&[self.header, self.payload]);
        out.extend_from_slice(&self.extra[..self.extra_words()]);
    }

    #[inline(always)]
    const fn simple(tag: u64, payload: u64) -> Self {
        Value {
            header: tag,
            payload,
            extra: [0; EXTRA_WORDS],
        }
    }

    /// The unit value `()`.
    pub const fn unit() -> Self {
        Self::simple(TAG_UNIT, 0)
    }

    /// `None`.
    pub const fn none() -> Self {
        Self::simple(TAG_NONE, 0)
    }

    /// A `bool`.
    #[inline(always)]
    pub const fn bool(v: bool) -> Self {
        Self::simple(TAG_BOOL, v as u64)
    }

    /// A `char`.
    #[inline(always)]
    pub const fn char(v: char) -> Self {
        Self::simple(TAG_CHAR, v as u64)
    }

    /// A signed integer.
    #[inline(always)]
    pub const fn i64(v: i64) -> Self {
        Self::simple(TAG_I64, v as u64)
    }

    /// An unsigned integer.
    #[inline(always)]
    pub const fn u64(v: u64) -> Self {
        Self::simple(TAG_U64, v)
    }

    /// A signed 128-bit integer.
    #[inline(always)]
    pub const fn i128(v: i128) -> Self {
        let mut value = Self::simple(TAG_I128 | (1 << 32), v as u64);
        value.extra[0] = ((v as u128) >> 64) as u64;
        value
    }

    /// An unsigned 128-bit integer.
    #[inline(always)]
    pub const fn u128(v: u128) -> Self {
        let mut value = Self::simple(TAG_U128 | (1 << 32), v as u64);
        value.extra[0] = (v >> 64) as u64;
        value
    }

    /// An `f32`.
    #[inline(always)]
    pub fn f32(v: f32) -> Self {
        Self::simple(TAG_F32, v.to_bits() as u64)
    }

    /// An `f64`.
    #[inline(always)]
    pub fn f64(v: f64) -> Self {
        Self::simple(TAG_F64, v.to_bits())
    }

    /// A string: its length and its first [`STR_BYTES`] bytes, cut back to a
    /// `char` boundary.
    #[inline]
    pub fn str(v: &str) -> Self {
        let mut kept = v.len().min(STR_BYTES);
        while !v.is_char_boundary(kept) {
            kept -= 1;
        }
        // Words are built with whole-word loads: copying a partial chunk into
        // a byte buffer and reading it back as a word stalls on store
        // forwarding.
        let bytes = v.as_bytes();
        let mut extra = [0u64; EXTRA_WORDS];
        for (i, word) in extra.iter_mut().enumerate() {
            let start = i * 8;
            if start >= kept {
                break;
            }
            *word = str_word(bytes, start, (start + 8).min(kept));
        }
        let words = kept.div_ceil(8) as u64;
        Value {
            header: TAG_STR | ((kept as u64) << 24) | (words << 32),
            payload: v.len() as u64,
            extra,
        }
    }

    /// The length of a collection.
    #[inline(always)]
    pub fn len(kind: Collection, len: usize) -> Self {
        Self::simple(TAG_LEN | (kind.code() << 24), len as u64)
    }

    /// A `Duration`.
    #[inline(always)]
    pub const fn duration(v: Duration) -> Self {
        let mut value = Self::simple(TAG_DURATION | (1 << 32), v.as_secs());
        value.extra[0] = v.subsec_nanos() as u64;
        value
    }

    /// The address and type name of `v`: what is recorded for a reference or
    /// smart pointer to a type without a [`Capture`] impl. Addresses are
    /// compared, never dereferenced.
    #[inline(always)]
    pub fn pointer<T: ?Sized>(v: &T) -> Self {
        Self::address_of(v)
    }

    /// [`Value::pointer`] from a raw pointer, which is never dereferenced.
    #[inline(always)]
    pub(crate) fn address_of<T: ?Sized>(v: *const T) -> Self {
        let type_name: fn() -> &'static str = std::any::type_name::<T>;
        let mut value = Self::simple(TAG_POINTER | (1 << 32), v.cast::<()>() as usize as u64);
        value.extra[0] = type_name as usize as u64;
        value
    }

    /// A value of a type that cannot be shown (used when a `Capture` impl
    /// panicked, for example). Shown as `?`.
    pub const fn opaque() -> Self {
        Self::simple(TAG_OPAQUE, 0)
    }

    /// What is recorded for a parameter taken by value whose type has no
    /// [`Capture`] impl: that it was passed, and nothing else. Shown as
    /// `<by value>`. It carries no address, so it never gets a `#n` label, and
    /// two of them are equal: the argument of each call is its own object, and
    /// the address of the call's copy would not identify it (an async call
    /// moves it into its future, and the next call reuses the slot).
    pub const fn by_value() -> Self {
        Self::simple(TAG_BY_VALUE, 0)
    }

    /// A type or variant recorded by its name alone (a unit variant, or one
    /// whose fields are not recorded): shown as `ConnState::Idle`. The shape
    /// takes one extra word, as in [`Value::field`] around a one-word value,
    /// so that every variant of an enum whose recorded fields are integers
    /// stores the same words, with no branch on which variant it is.
    #[inline(always)]
    pub fn named(shape: &'static Shape) -> Self {
        let mut value = Self::simple(TAG_NAME | (1 << 32), 0);
        value.extra[0] = shape as *const Shape as usize as u64;
        value
    }

    /// `inner`, the value of one field of a user's type, inside that type:
    /// shown as `ConnState::Draining(3)` or `Order { id: 42 }`. Takes one
    /// extra word for the shape's address; `inner` keeps its kind (an address
    /// inside is still [`is_pointer`](Value::is_pointer)). Up to four
    /// wrappers (`Some`, `Ok`, `Err`, fields) nest; a further one is not
    /// recorded. A string inside keeps 8 bytes fewer per field around it
    /// when it used all [`STR_BYTES`].
    #[inline(always)]
    pub fn field(shape: &'static Shape, inner: Value) -> Self {
        inner.add_field(shape as *const Shape as usize as u64)
    }

    #[inline(always)]
    fn add_field(mut self, shape: u64) -> Self {
        let depth = (self.header >> 8) & 0xff;
        if depth >= MAX_WRAPPERS {
            return self;
        }
        let mut count = self.extra_words();
        if count >= EXTRA_WORDS {
            if !self.drop_string_word() {
                return self;
            }
            count -= 1;
        }
        self.extra[count] = shape;
        self.header &= !(0xff << 8) & !Self::EXTRA_COUNT_MASK;
        self.header |= ((depth + 1) << 8) | (WRAP_FIELD << (16 + 2 * depth));
        self.header |= (count as u64 + 1) << 32;
        self
    }

    /// Makes room for one more field wrapper in a string whose words fill
    /// every extra word: drops its last word, cutting the kept bytes back to
    /// a `char` boundary, and moves the shapes of the fields around it down.
    #[cold]
    fn drop_string_word(&mut self) -> bool {
        let count = self.extra_words();
        let Some(own) = count.checked_sub(self.field_levels()) else {
            return false;
        };
        if self.tag() != TAG_STR || own == 0 {
            return false;
        }
        let (bytes, old_kept) = self.str_bytes();
        let mut kept = old_kept.min((own - 1) * 8);
        while kept > 0 && kept < old_kept && bytes[kept] & 0xc0 == 0x80 {
            kept -= 1;
        }
        let mut words = [0u64; EXTRA_WORDS];
        for (i, word) in words.iter_mut().enumerate().take(kept.div_ceil(8)) {
            let mut chunk = [0u8; 8];
            let end = ((i + 1) * 8).min(kept);
            chunk[..end - i * 8].copy_from_slice(&bytes[i * 8..end]);
            *word = u64::from_le_bytes(chunk);
        }
        words[own - 1..count - 1].copy_from_slice(&self.extra[own..count]);
        self.extra = words;
        self.header &= !(0xff << 24) & !Self::EXTRA_COUNT_MASK;
        self.header |= ((kept as u64) << 24) | ((count as u64 - 1) << 32);
        true
    }

    /// Number of field wrappers (levels of kind `WRAP_FIELD`).
    fn field_levels(&self) -> usize {
        (0..self.depth())
            .filter(|level| self.wrapper(*level) == WRAP_FIELD)
            .count()
    }

    fn depth(&self) -> u64 {
        ((self.header >> 8) & 0xff).min(MAX_WRAPPERS)
    }

    /// The kind of wrapper `level` (0 innermost).
    fn wrapper(&self, level: u64) -> u64 {
        (self.header >> (16 + 2 * level)) & 0b11
    }

    /// The shapes of the field wrappers, by level (0 innermost); `None` for
    /// the other levels, and for a shape word a reader did not get.
    fn field_shapes(&self) -> [Option<&'static Shape>; MAX_WRAPPERS as usize] {
        let mut shapes = [None; MAX_WRAPPERS as usize];
        let count = self.extra_words();
        let Some(mut next) = count.checked_sub(self.field_levels()) else {
            return shapes;
        };
        for level in 0..self.depth() {
            if self.wrapper(level) == WRAP_FIELD {
                shapes[level as usize] = Self::shape_at(self.extra[next]);
                next += 1;
            }
        }
        shapes
    }

    /// The shape whose address `word` is, or `None` for 0.
    fn shape_at(word: u64) -> Option<&'static Shape> {
        if word == 0 {
            return None;
        }
        // SAFETY: `word` is a shape word: the first extra word of a
        // `TAG_NAME` value or that of a field wrapper, as `field_shapes` locates it
        // from the header. Only `Value::named` and `Value::field` (and
        // `drop_string_word`, which moves them) write such words, each from a
        // `&'static Shape`, together with the header bits that mark them
        // (the fields are private). A value read out of a frame slot keeps
        // them only if the slot's sequence number validated the whole value
        // (no torn mix of two writes), and `from_words` zeroes the extra
        // words its header does not count, so a word that did not come with
        // this header reads as 0. Shapes are never freed.
        Some(unsafe { &*(word as usize as *const Shape) })
    }

    #[inline(always)]
    fn wrap(mut self, kind: u64) -> Self {
        let depth = (self.header >> 8) & 0xff;
        if depth >= MAX_WRAPPERS {
            return self;
        }
        self.header = (self.header & !(0xff << 8)) | ((depth + 1) << 8);
        self.header |= kind << (16 + 2 * depth);
        self
    }

    /// `Some(inner)`.
    #[inline(always)]
    pub fn some(inner: Value) -> Self {
        inner.wrap(WRAP_SOME)
    }

    /// `Ok(inner)`.
    #[inline(always)]
    pub fn ok(inner: Value) -> Self {
        inner.wrap(WRAP_OK)
    }

    /// `Err(inner)`.
    #[inline(always)]
    pub fn err(inner: Value) -> Self {
        inner.wrap(WRAP_ERR)
    }

    fn tag(&self) -> u64 {
        self.header & 0xff
    }

    /// Whether this value is an address (of a parameter without a `Capture`
    /// impl), also inside `Some`, `Ok`, `Err` or a field of a user's type
    /// ([`Value::field`]). Addresses may differ inside one bucket at the
    /// `anypointer` similarity level, where what wraps them may not.
    pub fn is_pointer(&self) -> bool {
        self.tag() == TAG_POINTER
    }

    /// This value with its address and pointee type cleared, if it is an
    /// address: what the `anypointer` similarity level compares.
    pub(crate) fn without_address(mut self) -> Value {
        if self.is_pointer() {
            self.payload = 0;
            self.extra[0] = 0;
        }
        self
    }

    /// The address, if this value is one.
    pub fn address(&self) -> Option<u64> {
        self.is_pointer().then_some(self.payload)
    }

    /// The concrete type name recorded with an address.
    pub fn pointee_type(&self) -> Option<&'static str> {
        if !self.is_pointer() || self.extra[0] == 0 {
            return None;
        }
        // SAFETY: a pointer value's first extra word is only ever written by
        // `Value::pointer`, from a `fn() -> &'static str` (the fields are
        // private, and slots are filled only through the sealed `ArgWords`,
        // whose impls store words built by `Value`'s constructors), and values
        // are copied out of frame slots only after the slot's sequence number
        // validated the whole value (no torn word mixes).
        let f: fn() -> &'static str =
            unsafe { std::mem::transmute::<usize, fn() -> &'static str>(self.extra[0] as usize) };
        Some(f())
    }

    /// The header bits that count the extra words in use.
    pub(crate) const EXTRA_COUNT_MASK: u64 = 0xff << 32;

    /// Number of extra words this value uses.
    #[inline(always)]
    pub(crate) fn extra_words(&self) -> usize {
        ((self.header & Self::EXTRA_COUNT_MASK) >> 32).min(EXTRA_WORDS as u64) as usize
    }

    /// Writes this value into `out` (used by frame slots).
    #[inline(always)]
    pub(crate) fn to_words(self) -> (u64, u64, [u64; EXTRA_WORDS]) {
        (self.header, self.payload, self.extra)
    }

    /// Rebuilds a value from words read out of a frame slot. Extra words
    /// beyond the header's count are ignored (they may hold stale data).
    pub(crate) fn from_words(header: u64, payload: u64, extra: [u64; EXTRA_WORDS]) -> Self {
        let mut value = Value {
            header,
            payload,
            extra: [0; EXTRA_WORDS],
        };
        let n = value.extra_words();
        value.extra[..n].copy_from_slice(&extra[..n]);
        if value.tag() == TAG_POINTER && n == 0 {
            value.extra[0] = 0;
        }
        value
    }

    fn str_bytes(&self) -> ([u8; STR_BYTES], usize) {
        let mut bytes = [0u8; STR_BYTES];
        for (chunk, word) in bytes.chunks_exact_mut(8).zip(self.extra.iter()) {
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        let kept = (((self.header >> 24) & 0xff) as usize).min(STR_BYTES);
        (bytes, kept)
    }

    /// The collection kind, for a length value.
    pub fn collection(&self) -> Option<Collection> {
        (self.tag() == TAG_LEN).then(|| Collection::from_code((self.header >> 24) & 0xff))
    }

    /// What this value holds, read back from its words: the wrappers around
    /// it and the value inside them. What the read side turns into text.
    pub(crate) fn decode(&self) -> Decoded {
        Decoded {
            wrappers: self.decode_wrappers(),
            inner: self.decode_inner(),
        }
    }

    fn decode_wrappers(&self) -> Wrappers {
        let shapes = self.field_shapes();
        let mut levels = [Wrapper::Some; MAX_WRAPPERS as usize];
        let depth = self.depth();
        for level in 0..depth {
            levels[level as usize] = match self.wrapper(level) {
                WRAP_OK => Wrapper::Ok,
                WRAP_ERR => Wrapper::Err,
                WRAP_FIELD => Wrapper::Field(shapes[level as usize]),
                _ => Wrapper::Some,
            };
        }
        Wrappers {
            levels,
            depth: depth as usize,
        }
    }

    fn decode_inner(&self) -> Inner {
        match self.tag() {
            TAG_UNIT => Inner::Unit,
            TAG_NONE => Inner::None,
            TAG_BOOL => Inner::Bool(self.payload != 0),
            TAG_CHAR => match char::from_u32(self.payload as u32) {
                Some(c) => Inner::Char(c),
                None => Inner::Opaque,
            },
            TAG_I64 => Inner::I64(self.payload as i64),
            TAG_U64 => Inner::U64(self.payload),
            TAG_I128 => {
                Inner::I128((((self.extra[0] as u128) << 64) | self.payload as u128) as i128)
            }
            TAG_U128 => Inner::U128(((self.extra[0] as u128) << 64) | self.payload as u128),
            TAG_F32 => Inner::F32(f32::from_bits(self.payload as u32)),
            TAG_F64 => Inner::F64(f64::from_bits(self.payload)),
            TAG_STR => {
                let (bytes, kept) = self.str_bytes();
                Inner::Str {
                    bytes,
                    kept,
                    len: self.payload,
                }
            }
            TAG_LEN => Inner::Len(self.payload),
            TAG_DURATION => Inner::Duration(Duration::new(
                self.payload,
                self.extra[0].min(999_999_999) as u32,
            )),
            TAG_POINTER => Inner::Pointer(self.payload),
            TAG_BY_VALUE => Inner::ByValue,
            TAG_NAME => Inner::Name(Self::shape_at(self.extra[0])),
            _ => Inner::Opaque,
        }
    }
}

/// A [`Value`] read back from its words ([`Value::decode`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Decoded {
    /// What wraps the value.
    pub(crate) wrappers: Wrappers,
    /// The value inside the wrappers.
    pub(crate) inner: Inner,
}

/// The wrappers around a value (`Some`, `Ok`, `Err`, fields of a user's
/// type), at most four.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Wrappers {
    levels: [Wrapper; MAX_WRAPPERS as usize],
    depth: usize,
}

impl Wrappers {
    /// The wrappers, innermost first.
    pub(crate) fn innermost_first(&self) -> &[Wrapper] {
        &self.levels[..self.depth]
    }
}

/// One wrapper around a value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Wrapper {
    /// `Some(..)`.
    Some,
    /// `Ok(..)`.
    Ok,
    /// `Err(..)`.
    Err,
    /// A field of a user's type ([`Value::field`]); `None` when the reader
    /// did not get the shape's word.
    Field(Option<&'static Shape>),
}

/// The value inside its wrappers, by kind.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Inner {
    /// `()`.
    Unit,
    /// `None`.
    None,
    /// A `bool`.
    Bool(bool),
    /// A `char`.
    Char(char),
    /// A signed integer.
    I64(i64),
    /// An unsigned integer.
    U64(u64),
    /// A signed 128-bit integer.
    I128(i128),
    /// An unsigned 128-bit integer.
    U128(u128),
    /// An `f32`.
    F32(f32),
    /// An `f64`.
    F64(f64),
    /// A string: its first `kept` bytes are the first `kept` of `bytes`
    /// (the rest are zero); `len` is its full length.
    Str {
        bytes: [u8; STR_BYTES],
        kept: usize,
        len: u64,
    },
    /// The length of a collection (its kind: [`Value::collection`]).
    Len(u64),
    /// A `Duration`.
    Duration(Duration),
    /// An address ([`Value::pointer`]).
    Pointer(u64),
    /// A parameter taken by value without a `Capture` impl
    /// ([`Value::by_value`]).
    ByValue,
    /// A type or variant by its name alone ([`Value::named`]); `None` when
    /// the reader did not get the shape's word.
    Name(Option<&'static Shape>),
    /// A value that cannot be shown: [`Value::opaque`], a `char` that is not
    /// one, or a tag this code does not know.
    Opaque,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_string_length_keeps_exactly_its_prefix() {
        // Lengths around every word edge, ASCII and multi-byte text, and
        // bytes after the kept prefix that must not leak into it.
        let alphabet = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJ";
        for len in 0..=alphabet.len() {
            let text = &alphabet[..len];
            let value = Value::str(text);
            let (bytes, kept) = value.str_bytes();
            assert_eq!(kept, len.min(STR_BYTES), "len {len}");
            assert_eq!(&bytes[..kept], &text.as_bytes()[..kept], "len {len}");
            assert!(
                bytes[kept..].iter().all(|b| *b == 0),
                "len {len}: {bytes:?}"
            );
            assert_eq!(value, Value::str(text), "len {len}: deterministic");
        }
        for text in [
            "ü",
            "aü",
            "ab€",
            "€€€",
            "x€€€€€€€€€€y",
            "🦀🦀🦀🦀🦀🦀🦀🦀🦀",
        ] {
            let value = Value::str(text);
            let (bytes, kept) = value.str_bytes();
            assert!(text.is_char_boundary(kept));
            assert_eq!(&bytes[..kept], &text.as_bytes()[..kept], "{text}");
            assert!(bytes[kept..].iter().all(|b| *b == 0), "{text}");
        }
    }

    #[test]
    fn pointers_keep_type_and_address() {
        let x = std::sync::Mutex::new(5);
        let v = Value::pointer(&x);
        assert!(v.is_pointer());
        assert_eq!(v.address(), Some(&x as *const _ as u64));
        assert!(v.pointee_type().unwrap().contains("Mutex<i32>"));
        let (h, p, e) = v.to_words();
        assert_eq!(Value::from_words(h, p, e), v);
    }

    #[test]
    fn by_value_has_no_address() {
        let v = Value::by_value();
        assert!(!v.is_pointer());
        assert_eq!((v.address(), v.pointee_type()), (None, None));
        assert_eq!(v, Value::by_value());
        let (h, p, e) = v.to_words();
        assert_eq!(h, fixed_header::BY_VALUE);
        assert_eq!(Value::from_words(h, p, e), v);
    }

    static DRAINING: Shape = Shape::new("ConnState")
        .variant("Draining")
        .tuple_field(0, 1);
    static ORDER: Shape = Shape::new("Order").named_field("id", 2);
    static IDLE: Shape = Shape::new("ConnState").variant("Idle");

    fn round_trip(v: Value) -> Value {
        let (h, p, e) = v.to_words();
        Value::from_words(h, p, e)
    }

    #[test]
    fn a_full_string_gives_a_word_per_field_on_char_boundaries() {
        let text = format!("{}{}", "a".repeat(23), "é".repeat(10)); // 43 bytes
        let one = Value::field(&DRAINING, Value::str(&text));
        let two = Value::field(&ORDER, one);
        let (bytes, kept) = two.str_bytes();
        assert_eq!(kept, 16);
        assert!(bytes[kept..16].iter().all(|b| *b == 0));
        assert_eq!(two.extra_words(), EXTRA_WORDS);
        assert_eq!(round_trip(two), two);
    }

    #[test]
    fn decoding_reads_the_wrappers_innermost_first() {
        let v = Value::some(Value::field(&ORDER, Value::err(Value::u64(1))));
        let decoded = v.decode();
        assert_eq!(
            decoded.wrappers.innermost_first(),
            [Wrapper::Err, Wrapper::Field(Some(&ORDER)), Wrapper::Some]
        );
        assert_eq!(decoded.inner, Inner::U64(1));
        assert_eq!(round_trip(v).decode(), decoded);
        assert_eq!(Value::named(&IDLE).decode().inner, Inner::Name(Some(&IDLE)));
    }

    #[test]
    fn a_shape_word_without_its_count_decodes_as_missing() {
        // What a reader gets when the count of extra words was cleared (a
        // `Narrow`) or the words were not copied: the shape reads as missing.
        let (h, p, _) = Value::field(&DRAINING, Value::u64(3)).to_words();
        let missing = Value::from_words(h & !Value::EXTRA_COUNT_MASK, p, [0x10; EXTRA_WORDS]);
        assert_eq!(
            missing.decode().wrappers.innermost_first(),
            [Wrapper::Field(None)]
        );
        let (h, p, _) = Value::named(&IDLE).to_words();
        let missing = Value::from_words(h & !Value::EXTRA_COUNT_MASK, p, [0x10; EXTRA_WORDS]);
        assert_eq!(missing.decode().inner, Inner::Name(None));
    }

    #[test]
    fn anypointer_compares_what_wraps_an_address() {
        let (a, b) = (1u8, 2u8);
        let at = |v: &u8| Value::field(&DRAINING, Value::pointer(v));
        assert_eq!(at(&a).without_address(), at(&b).without_address());
        assert_ne!(
            at(&a).without_address(),
            Value::field(&ORDER, Value::pointer(&a)).without_address()
        );
        assert_ne!(
            Value::some(Value::pointer(&a)).without_address(),
            Value::err(Value::pointer(&a)).without_address()
        );
        assert_eq!(
            Value::pointer(&a).without_address(),
            Value::pointer(&0u16).without_address()
        );
    }

    #[test]
    fn stale_extra_words_are_ignored() {
        let v = 5u8.capture();
        let (h, p, _) = v.to_words();
        assert_eq!(Value::from_words(h, p, [9; EXTRA_WORDS]), v);
    }
}
