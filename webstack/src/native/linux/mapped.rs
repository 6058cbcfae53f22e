//! Read-only mappings of whole files: how the unwinder and the symboliser
//! read the objects of the process without copying them to the heap. The
//! pages are file-backed (`RssFile`): the kernel drops them under pressure
//! and reads them again when needed, and two mappings of one file share
//! the page cache.

use std::ffi::c_void;

/// A read-only private mapping of a whole file, unmapped on drop.
pub(super) struct Mapping {
    address: *mut c_void,
    len: usize,
}

// SAFETY: the mapping is read-only and owned by this value alone; sharing or
// moving the pointer between threads reads immutable memory.
unsafe impl Send for Mapping {}
// SAFETY: as above.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps the file at `path`; also returns the open file.
    pub(super) fn open(path: &std::path::Path) -> Option<(Mapping, std::fs::File)> {
        use std::os::fd::AsRawFd;
        let file = std::fs::File::open(path).ok()?;
        let len = usize::try_from(file.metadata().ok()?.len()).ok()?;
        if len == 0 {
            return None;
        }
        // SAFETY: a fresh read-only private mapping of an open file at an
        // address the kernel chooses; the result is checked below.
        let address = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                0,
            )
        };
        if address == libc::MAP_FAILED {
            return None;
        }
        Some((Mapping { address, len }, file))
    }

    /// The mapped bytes, with a lifetime the caller keeps.
    ///
    /// # Safety
    /// The slice and everything borrowed from it must be dropped before
    /// `self`.
    pub(super) unsafe fn bytes(&self) -> &'static [u8] {
        // SAFETY: `address` is a readable mapping of `len` bytes that lives
        // until `self` is dropped, after every borrow (the caller's promise).
        // A file truncated meanwhile could fault on access: the program's
        // own loaded objects are not truncated while it runs.
        unsafe { std::slice::from_raw_parts(self.address.cast::<u8>(), self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `address` and `len` describe a mapping this value created
        // and nothing borrows any longer.
        unsafe { libc::munmap(self.address, self.len) };
    }
}
