//! Static descriptions of instrumented functions, emitted by the macros.

use crate::sealed;

/// What `#[webstack::instrument]` knows about a function at compile time.
/// One `static` per instrumented function; frames point at it.
///
/// Aligned to 64 bytes: a frame slot keeps flags in the low bits of its
/// address.
#[doc(hidden)]
#[derive(Debug)]
#[repr(align(64))]
pub struct FrameMeta {
    /// The function's name as written (`handle`).
    pub name: &'static str,
    /// `module_path!()` joined with the name (`app::server::handle`).
    pub function: &'static str,
    /// The task name: `name = "..."` or the function name.
    pub task_name: &'static str,
    /// `file!()` of the definition.
    pub file: &'static str,
    /// Line of the `fn` keyword.
    pub line: u32,
    /// The recorded parameters, in order (skipped ones are absent).
    pub args: &'static [ArgMeta],
}

/// A recorded parameter: its name (or pattern) and declared type.
#[doc(hidden)]
#[derive(Debug)]
pub struct ArgMeta {
    /// The parameter's name, or its pattern when it destructures.
    pub name: &'static str,
    /// The declared type as written, e.g. `&Mutex<Queue>`.
    pub ty: &'static str,
}

impl FrameMeta {
    /// Rebuilds the reference from the address stored in a frame slot.
    ///
    /// # Safety
    /// `addr` must have been produced from a `&'static FrameMeta`.
    pub(crate) unsafe fn from_addr(addr: usize) -> &'static FrameMeta {
        // SAFETY: guaranteed by the caller.
        unsafe { &*(addr as *const FrameMeta) }
    }

    pub(crate) fn addr(&'static self) -> usize {
        self as *const FrameMeta as usize
    }
}

/// Names a function's [`FrameMeta`]. The macros implement it for a
/// zero-sized type declared beside each function's `static`, so an async
/// frame's future carries no word for it and each poll stores the address as
/// a constant.
#[doc(hidden)]
pub trait StaticMeta {
    /// The line an idle frame of the function shows when it is suspended at
    /// an `.await` the macro could not rewrite: the line of the one macro
    /// call in its body that may await (`select!`, `join!`, ...), or 0 (the
    /// definition line) when there are none or several.
    const AWAIT_FALLBACK: u32 = 0;

    /// The function's metadata.
    fn meta(&self) -> &'static FrameMeta;
}

/// Names `Self` in the frames of a method, or nothing for a free function.
/// Both forms are zero-sized, so an async frame's future carries no word for
/// it.
///
/// Sealed: a snapshot calls the word [`addr`](Owner::addr) returns as a
/// `fn() -> &'static str`, so only the two impls here ([`NoOwner`] and
/// [`OwnerOf`]) may exist.
#[doc(hidden)]
pub trait Owner: Copy + sealed::Owner {
    /// The address of a `fn() -> &'static str` naming the type, or 0.
    fn addr(self) -> usize;
}

/// The owner of a free function's frames: none.
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub struct NoOwner;

impl sealed::Owner for NoOwner {}

impl Owner for NoOwner {
    #[inline(always)]
    fn addr(self) -> usize {
        0
    }
}

/// The owner of a method's frames: the `Self` type `T`.
#[doc(hidden)]
pub struct OwnerOf<T: ?Sized>(pub(crate) std::marker::PhantomData<fn() -> *const T>);

impl<T: ?Sized> Clone for OwnerOf<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: ?Sized> Copy for OwnerOf<T> {}

impl<T: ?Sized> std::fmt::Debug for OwnerOf<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(std::any::type_name::<T>())
    }
}

impl<T: ?Sized> sealed::Owner for OwnerOf<T> {}

impl<T: ?Sized> Owner for OwnerOf<T> {
    #[inline(always)]
    fn addr(self) -> usize {
        let name: fn() -> &'static str = std::any::type_name::<T>;
        name as usize
    }
}
