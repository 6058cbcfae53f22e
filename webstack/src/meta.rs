//! Static descriptions of instrumented functions, emitted by the macros.

/// What `#[webstack::instrument]` knows about a function at compile time.
/// One `static` per instrumented function; frames point at it.
#[doc(hidden)]
#[derive(Debug)]
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
