//! Views of parts of a file: an address range reserved once, where the
//! units of a `.debug_info` are mapped from the file at their offsets, or
//! decompressed sections written.

use std::ffi::c_void;

/// An address range reserved without swap backing (`MAP_NORESERVE`) in
/// which parts of a file are mapped, or decompressed bytes written (with
/// `origin` 0); `shift` aligns it so that view offset `x` and file offset
/// `origin + x` share their offset within a page.
pub(super) struct Scratch {
    address: *mut c_void,
    pub(super) len: usize,
    shift: usize,
    view: usize,
}

// SAFETY: the mapping is owned by this value alone; it is written only
// while being built, through `&mut self`, and read-only afterwards.
unsafe impl Send for Scratch {}
// SAFETY: as above.
unsafe impl Sync for Scratch {}

pub(super) fn page_size() -> usize {
    // SAFETY: `sysconf` has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size)
        .ok()
        .filter(|&s| s > 0)
        .unwrap_or(4096)
}

impl Scratch {
    /// Reserves room for a view of `view` bytes of a file section that
    /// starts at file offset `origin`.
    pub(super) fn new(view: usize, origin: u64) -> Option<Scratch> {
        let page = page_size();
        let shift = (origin % page as u64) as usize;
        let len = (shift + view).div_ceil(page) * page;
        if view == 0 {
            return None;
        }
        // SAFETY: a fresh anonymous mapping at an address the kernel
        // chooses; the result is checked below.
        let address = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        (address != libc::MAP_FAILED).then_some(Scratch {
            address,
            len,
            shift,
            view,
        })
    }

    /// Maps view bytes `start..end` (and the rest of their pages) from
    /// `file` at offset `origin + start`.
    pub(super) fn map(
        &mut self,
        file: &std::fs::File,
        origin: u64,
        start: usize,
        end: usize,
    ) -> Option<()> {
        use std::os::fd::AsRawFd;
        let page = page_size();
        let first = (self.shift + start) / page * page;
        let last = ((self.shift + end).div_ceil(page) * page).min(self.len);
        let offset = origin + start as u64 - (self.shift + start - first) as u64;
        // SAFETY: `first..last` lies within the reservation owned by
        // `self` (nothing else uses it), page aligned; MAP_FIXED replaces
        // those pages only. The result is checked.
        let mapped = unsafe {
            libc::mmap(
                self.address.cast::<u8>().add(first).cast(),
                last - first,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_FIXED,
                file.as_raw_fd(),
                libc::off_t::try_from(offset).ok()?,
            )
        };
        (mapped != libc::MAP_FAILED).then_some(())
    }

    pub(super) fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: `shift + view <= len` bytes of a readable and writable
        // mapping owned by `self`, borrowed mutably through `self`.
        unsafe {
            std::slice::from_raw_parts_mut(self.address.cast::<u8>().add(self.shift), self.view)
        }
    }

    /// The view, with a lifetime the caller keeps.
    ///
    /// # Safety
    /// The slice and everything borrowed from it must be dropped before
    /// `self` (see [`Parsed`](super::object::Parsed), which drops the
    /// context borrowing it first, and [`Loaded`](super::object::Loaded),
    /// which drops its sections before the decompressed ones).
    pub(super) unsafe fn bytes(&self) -> &'static [u8] {
        // SAFETY: a readable mapping that lives until `self` is dropped,
        // after every borrow (the caller's promise).
        unsafe { std::slice::from_raw_parts(self.address.cast::<u8>().add(self.shift), self.view) }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // SAFETY: a mapping this value created, no longer borrowed.
        unsafe { libc::munmap(self.address, self.len) };
    }
}
