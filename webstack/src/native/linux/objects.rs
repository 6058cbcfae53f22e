//! The objects loaded in the process (the program, shared libraries, the
//! vDSO), from `dl_iterate_phdr`: what the unwinder and the symboliser look
//! addresses up in.

use std::ffi::{c_int, c_void, CStr};
use std::path::PathBuf;

/// One loaded object.
pub(super) struct Loaded {
    /// Its file: `/proc/self/exe` for the program; `None` for the vDSO,
    /// which has no file and is read in memory.
    pub(super) path: Option<PathBuf>,
    /// What to add to an address of the file to get one in the process.
    pub(super) bias: usize,
    /// Absolute address ranges of its executable segments.
    pub(super) code: Vec<(usize, usize)>,
    /// Absolute address range of its lowest and highest loaded segments
    /// (for the vDSO: its whole image, ELF header first).
    pub(super) image: (usize, usize),
}

/// The head of glibc's `struct dl_phdr_info`, with the load and unload
/// counters that follow the program headers (glibc 2.4 and later; read only
/// when the size passed to the callback covers them).
#[repr(C)]
struct PhdrInfo {
    addr: usize,
    name: *const libc::c_char,
    phdr: *const libc::Elf64_Phdr,
    phnum: u16,
    adds: u64,
    subs: u64,
}

/// How many objects were loaded and unloaded since the process started:
/// equal counts mean an unchanged list. `None` if the C library does not
/// say.
pub(super) fn generation() -> Option<(u64, u64)> {
    unsafe extern "C" fn first(
        info: *mut libc::dl_phdr_info,
        size: libc::size_t,
        data: *mut c_void,
    ) -> c_int {
        if size >= std::mem::size_of::<PhdrInfo>() {
            // SAFETY: the C library passes `size` valid bytes at `info`, which
            // cover `PhdrInfo`, a prefix of its `dl_phdr_info`; `data` is the
            // `Option` passed below.
            unsafe {
                let info = &*info.cast::<PhdrInfo>();
                *data.cast::<Option<(u64, u64)>>() = Some((info.adds, info.subs));
            }
        }
        1 // the counters are the same in every call: stop
    }
    let mut counts: Option<(u64, u64)> = None;
    // SAFETY: `first` matches the callback type and only writes the `Option`
    // passed here, which outlives the call.
    unsafe { libc::dl_iterate_phdr(Some(first), (&raw mut counts).cast()) };
    counts
}

/// The loaded objects.
pub(super) fn list() -> Vec<Loaded> {
    unsafe extern "C" fn each(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut c_void,
    ) -> c_int {
        // SAFETY: `data` is the `Vec<Loaded>` passed below, used by this
        // thread only; `info` is valid during the callback.
        let (objects, info) = unsafe { (&mut *data.cast::<Vec<Loaded>>(), &*info) };
        let name = if info.dlpi_name.is_null() {
            &[][..]
        } else {
            // SAFETY: a non-null `dlpi_name` is a NUL-terminated string.
            unsafe { CStr::from_ptr(info.dlpi_name) }.to_bytes()
        };
        let bias = info.dlpi_addr as usize;
        let headers: &[libc::Elf64_Phdr] = if info.dlpi_phdr.is_null() {
            &[]
        } else {
            // SAFETY: `dlpi_phdr` points at `dlpi_phnum` program headers.
            unsafe { std::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)) }
        };
        let segment = |h: &libc::Elf64_Phdr| {
            let start = bias.wrapping_add(h.p_vaddr as usize);
            (start, start.wrapping_add(h.p_memsz as usize))
        };
        let loads = headers.iter().filter(|h| h.p_type == libc::PT_LOAD);
        let code: Vec<(usize, usize)> = loads
            .clone()
            .filter(|h| h.p_flags & libc::PF_X != 0)
            .map(segment)
            .collect();
        let image = loads
            .map(segment)
            .fold((usize::MAX, 0), |(low, high), (start, end)| {
                (low.min(start), high.max(end))
            });
        // SAFETY: `getauxval` has no preconditions.
        let vdso = unsafe { libc::getauxval(libc::AT_SYSINFO_EHDR) } as usize;
        let path = if vdso != 0 && image.0 == vdso {
            None
        } else if name.is_empty() {
            if objects.iter().any(|o| o.path.is_some()) {
                return 0; // only the first object without a name is the program
            }
            Some(PathBuf::from("/proc/self/exe"))
        } else {
            use std::os::unix::ffi::OsStrExt;
            Some(PathBuf::from(std::ffi::OsStr::from_bytes(name)))
        };
        if !code.is_empty() {
            objects.push(Loaded {
                path,
                bias,
                code,
                image,
            });
        }
        0
    }
    let mut objects: Vec<Loaded> = Vec::new();
    // SAFETY: `each` matches the callback type and only uses `data` as the
    // vector passed here, which outlives the call.
    unsafe { libc::dl_iterate_phdr(Some(each), (&raw mut objects).cast()) };
    objects
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_program_libc_and_the_vdso_are_listed() {
        let objects = list();
        let here = the_program_libc_and_the_vdso_are_listed as *const () as usize;
        let program = objects
            .iter()
            .find(|o| o.code.iter().any(|&(s, e)| (s..e).contains(&here)))
            .expect("this function's object");
        assert_eq!(program.path.as_deref(), Some("/proc/self/exe".as_ref()));
        let open = libc::open as *const () as usize;
        assert!(objects.iter().any(|o| o
            .path
            .as_ref()
            .is_some_and(|p| p.to_string_lossy().contains("libc"))
            && o.code.iter().any(|&(s, e)| (s..e).contains(&open))));
        assert!(objects.iter().any(|o| o.path.is_none()), "no vDSO listed");
        let first = generation().expect("glibc gives the counters");
        assert!(first.0 >= objects.len() as u64);
        assert_eq!(generation(), Some(first));
    }
}
