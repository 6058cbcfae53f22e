//! Unwinding the handlers' stack copies, in the collector, outside any
//! signal handler: DWARF call-frame information by default, frame pointers
//! on request.
//!
//! # DWARF (the default)
//!
//! [`framehop`] reads the `.eh_frame_hdr` and `.eh_frame` sections of the
//! object holding each address (the tables the compiler emits for panics,
//! present in every Rust and C object, debug and release, with or without
//! frame pointers), starting from the registers the handler saved and
//! reading the stack only from the copy. Where an address has no unwind
//! information (code generated at run time, assembly without CFI) it falls
//! back to the frame-pointer chain. The objects are listed with
//! `dl_iterate_phdr` and mapped read-only from their files (file-backed
//! pages that the symboliser's mappings share through the page cache; the
//! vDSO is read in memory), again only when the C library's load or unload
//! counters changed. A copy that ends before the stack does (the copy
//! bound) ends the walk where the unwinder asks for memory beyond it: the
//! thread is marked as deeper than the copy.
//!
//! # Frame pointers
//!
//! [`Method::FramePointers`] follows the chain of frame records in the
//! copy: each record must lie above the previous one, be aligned and lie
//! wholly in the copy. It sees every function only in code built with frame
//! pointers (`-C force-frame-pointers=yes`; without them a function hides
//! its caller), and is kept for comparison and for processes whose code
//! has frame pointers and no unwind tables.

use std::ops::Deref;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use framehop::{ExplicitModuleSectionInfo, MayAllocateDuringUnwind, Module, Unwinder as _};
use object::{Object as _, ObjectSection as _};

use super::copy::{FP, PC, REGS, SP};
use super::mapped::Mapping;
use super::{objects, Method, MAX_NATIVE_FRAMES};

/// The method chosen by [`set_method`]: DWARF or frame pointers.
static CHOSEN: AtomicU8 = AtomicU8::new(DWARF);

const DWARF: u8 = 0;
const FRAME_POINTERS: u8 = 1;

pub(super) fn set_method(method: Method) {
    let code = match method {
        Method::FramePointers => FRAME_POINTERS,
        _ => DWARF,
    };
    CHOSEN.store(code, Ordering::Relaxed);
}

pub(super) fn effective_method() -> Method {
    match CHOSEN.load(Ordering::Relaxed) {
        FRAME_POINTERS => Method::FramePointers,
        _ => Method::Dwarf,
    }
}

/// Bytes of one object's sections: a slice of a file mapping, kept mapped
/// by the `Arc`, or of the vDSO's image, mapped for the process's life.
#[derive(Clone)]
struct Bytes {
    _file: Option<Arc<Mapping>>,
    bytes: &'static [u8],
}

impl Deref for Bytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.bytes
    }
}

type Dwarf = framehop::UnwinderNative<Bytes, MayAllocateDuringUnwind>;
type Cache = framehop::CacheNative<MayAllocateDuringUnwind>;

/// How a walk ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Ending {
    /// At the outermost frame, or where the unwind information ran out.
    Whole,
    /// Where the unwinder needed stack above the copy, which the copy bound
    /// cut: the outermost frames are missing.
    Deep,
    /// At [`MAX_NATIVE_FRAMES`].
    TooManyFrames,
}

/// One module given to the DWARF unwinder.
struct Known {
    path: Option<PathBuf>,
    bias: usize,
    start: u64,
}

/// The unwinder and the objects it knows; kept across captures under the
/// capture lock.
pub(super) struct Unwinder {
    dwarf: Dwarf,
    cache: Box<Cache>,
    known: Vec<Known>,
    /// The C library's load and unload counters when the objects were last
    /// listed; `None` before the first listing.
    generation: Option<Option<(u64, u64)>>,
}

impl Unwinder {
    pub(super) fn new() -> Unwinder {
        Unwinder {
            dwarf: Dwarf::new(),
            cache: Box::new(Cache::new()),
            known: Vec::new(),
            generation: None,
        }
    }

    /// Lists the objects again if any was loaded or unloaded since the last
    /// listing (always, if the C library keeps no counters).
    pub(super) fn refresh(&mut self) {
        let now = objects::generation();
        if now.is_some() && self.generation == Some(now) {
            return;
        }
        self.generation = Some(now);
        let fresh = objects::list();
        let gone: Vec<u64> = self
            .known
            .iter()
            .filter(|k| !fresh.iter().any(|o| o.path == k.path && o.bias == k.bias))
            .map(|k| k.start)
            .collect();
        for start in gone {
            self.dwarf.remove_module(start);
            self.known.retain(|k| k.start != start);
        }
        for object in &fresh {
            if self
                .known
                .iter()
                .any(|k| k.path == object.path && k.bias == object.bias)
            {
                continue;
            }
            if let Some(module) = module(object) {
                let start = module.avma_range().start;
                self.dwarf.add_module(module);
                self.known.push(Known {
                    path: object.path.clone(),
                    bias: object.bias,
                    start,
                });
            }
        }
    }

    /// Unwinds one copy: `regs` as [`super::copy`] saved them, `stack` the
    /// bytes copied from the stack pointer up, `cut` whether the stack goes
    /// on above them. Pushes the interrupted instruction, then the return
    /// addresses, onto `out`.
    pub(super) fn unwind(
        &mut self,
        method: Method,
        regs: &[usize; REGS],
        stack: &[u8],
        cut: bool,
        out: &mut Vec<usize>,
    ) -> Ending {
        out.clear();
        if method == Method::FramePointers {
            return frame_pointer_walk(regs, stack, cut, out);
        }
        let sp = regs[SP] as u64;
        let mut beyond = false;
        let mut read = |address: u64| -> Result<u64, ()> {
            let word = address
                .checked_sub(sp)
                .and_then(|offset| usize::try_from(offset).ok())
                .and_then(|at| stack.get(at..at.checked_add(8)?));
            match word {
                Some(word) => {
                    let mut bytes = [0u8; 8];
                    bytes.copy_from_slice(word);
                    Ok(u64::from_ne_bytes(bytes))
                }
                None => {
                    beyond |= address >= sp;
                    Err(())
                }
            }
        };
        let mut frames = self.dwarf.iter_frames(
            regs[PC] as u64,
            initial(regs, &self.dwarf),
            &mut self.cache,
            &mut read,
        );
        let mut ending = Ending::Whole;
        // An error ends the walk as the end of the stack does: what was
        // found stands.
        while let Ok(Some(frame)) = frames.next() {
            if out.len() == MAX_NATIVE_FRAMES {
                ending = Ending::TooManyFrames;
                break;
            }
            out.push(frame.address() as usize);
        }
        if beyond && cut && ending == Ending::Whole {
            ending = Ending::Deep;
        }
        ending
    }
}

#[cfg(target_arch = "x86_64")]
fn initial(regs: &[usize; REGS], _dwarf: &Dwarf) -> framehop::UnwindRegsNative {
    framehop::UnwindRegsNative::new(regs[PC] as u64, regs[SP] as u64, regs[FP] as u64)
}

#[cfg(target_arch = "aarch64")]
fn initial(regs: &[usize; REGS], dwarf: &Dwarf) -> framehop::UnwindRegsNative {
    // Return addresses signed with pointer authentication (`pac-ret`) carry
    // a hash in the bits above the highest code address.
    let mask =
        framehop::aarch64::PtrAuthMask::from_max_known_address(dwarf.max_known_code_address());
    framehop::UnwindRegsNative::new_with_ptr_auth_mask(
        mask,
        regs[super::copy::LR] as u64,
        regs[SP] as u64,
        regs[FP] as u64,
    )
}

/// The module for `object`: its unwind sections and code, read from a
/// read-only mapping of its file (the vDSO from memory).
fn module(object: &objects::Loaded) -> Option<Module<Bytes>> {
    let (file, data): (Option<Arc<Mapping>>, &'static [u8]) = match &object.path {
        Some(path) => {
            let (map, _) = Mapping::open(path)?;
            let map = Arc::new(map);
            // SAFETY: every slice of `data` kept is wrapped in a `Bytes`
            // that holds this `Arc`, so the mapping outlives it; the slices
            // used below only while parsing are dropped before `map` is.
            let data = unsafe { map.bytes() };
            (Some(map), data)
        }
        None => {
            // The kernel maps the vDSO's whole image in whole pages; its
            // section headers lie past its one segment, in the last page.
            let (start, end) = object.image;
            let end = end.checked_next_multiple_of(4096)?;
            // SAFETY: the pages holding the vDSO's segment, from its ELF
            // header on, are mapped readable by the kernel for the life of
            // the process and never written.
            (None, unsafe {
                std::slice::from_raw_parts(start as *const u8, end.checked_sub(start)?)
            })
        }
    };
    let elf = object::File::parse(data).ok()?;
    let section = |name: &str| {
        let section = elf.section_by_name(name)?;
        let bytes = section.data().ok().filter(|b| !b.is_empty())?;
        let svma = section.address()..section.address() + section.size();
        Some((
            svma,
            Bytes {
                _file: file.clone(),
                bytes,
            },
        ))
    };
    let (text_svma, text) = section(".text").unzip();
    let (eh_frame_svma, eh_frame) = section(".eh_frame").unzip();
    let (eh_frame_hdr_svma, eh_frame_hdr) = section(".eh_frame_hdr").unzip();
    let got_svma = elf
        .section_by_name(".got")
        .map(|s| s.address()..s.address() + s.size());
    let start = object.code.iter().map(|c| c.0).min()? as u64;
    let end = object.code.iter().map(|c| c.1).max()? as u64;
    let name = object
        .path
        .as_ref()
        .map_or_else(|| "[vdso]".to_owned(), |p| p.display().to_string());
    Some(Module::new(
        name,
        start..end,
        object.bias as u64,
        ExplicitModuleSectionInfo {
            base_svma: 0,
            text_svma,
            text,
            got_svma,
            eh_frame_svma,
            eh_frame,
            eh_frame_hdr_svma,
            eh_frame_hdr,
            stubs_svma: None,
            stub_helper_svma: None,
            unwind_info: None,
            debug_frame: None,
            text_segment_svma: None,
            text_segment: None,
        },
    ))
}

/// Follows the chain of frame records in the copy from the saved frame
/// pointer. Each record must lie above the previous one, be aligned and lie
/// wholly in the copy.
fn frame_pointer_walk(
    regs: &[usize; REGS],
    stack: &[u8],
    cut: bool,
    out: &mut Vec<usize>,
) -> Ending {
    const WORD: usize = std::mem::size_of::<usize>();
    let sp = regs[SP];
    let end = sp.saturating_add(stack.len());
    let word = |address: usize| -> usize {
        let at = address - sp;
        let mut bytes = [0u8; WORD];
        bytes.copy_from_slice(&stack[at..at + WORD]);
        usize::from_ne_bytes(bytes)
    };
    out.clear();
    out.push(regs[PC]);
    let mut fp = regs[FP];
    loop {
        if fp < sp || fp % WORD != 0 {
            return Ending::Whole;
        }
        if fp.saturating_add(2 * WORD) > end {
            return if cut { Ending::Deep } else { Ending::Whole };
        }
        let (next, ret) = (word(fp), word(fp + WORD));
        if ret == 0 {
            return Ending::Whole;
        }
        if out.len() == MAX_NATIVE_FRAMES {
            return Ending::TooManyFrames;
        }
        out.push(ret);
        if next <= fp {
            return Ending::Whole;
        }
        fp = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regs(pc: usize, sp: usize, fp: usize) -> [usize; REGS] {
        let mut regs = [0; REGS];
        regs[PC] = pc;
        regs[SP] = sp;
        regs[FP] = fp;
        regs
    }

    /// A chain of frame records in a copy: records at words 4, 12, 20, 36.
    fn chain() -> (Vec<u8>, usize) {
        let sp = 0x7000_0000usize;
        let word = std::mem::size_of::<usize>();
        let mut words = vec![0usize; 48];
        let records = [4, 12, 20, 36];
        for (i, &at) in records.iter().enumerate() {
            words[at] = records.get(i + 1).map_or(0, |&w| sp + w * word);
            words[at + 1] = 0x1000 + i;
        }
        (words.iter().flat_map(|w| w.to_ne_bytes()).collect(), sp)
    }

    #[test]
    fn the_frame_pointer_walk_follows_the_chain_in_the_copy() {
        let (stack, sp) = chain();
        let regs = regs(0x42, sp, sp + 4 * 8);
        let mut out = Vec::new();
        assert_eq!(
            frame_pointer_walk(&regs, &stack, false, &mut out),
            Ending::Whole
        );
        assert_eq!(out, [0x42, 0x1000, 0x1001, 0x1002, 0x1003]);
    }

    #[test]
    fn a_chain_leaving_a_cut_copy_is_deep() {
        let (stack, sp) = chain();
        let regs = regs(0x42, sp, sp + 4 * 8);
        let mut out = Vec::new();
        // The copy ends inside the record at word 20.
        let short = &stack[..21 * 8];
        assert_eq!(
            frame_pointer_walk(&regs, short, true, &mut out),
            Ending::Deep
        );
        assert_eq!(out, [0x42, 0x1000, 0x1001]);
        assert_eq!(
            frame_pointer_walk(&regs, short, false, &mut out),
            Ending::Whole
        );
    }

    #[test]
    fn the_unwinder_knows_the_program_the_c_library_and_the_vdso() {
        let mut unwinder = Unwinder::new();
        unwinder.refresh();
        let known = |what: &str| {
            unwinder.known.iter().any(|k| match &k.path {
                Some(path) => path.to_string_lossy().contains(what),
                None => what == "[vdso]",
            })
        };
        assert!(known("/proc/self/exe"));
        assert!(known("libc.so"));
        assert!(known("[vdso]"));
        let before = unwinder.known.len();
        unwinder.refresh();
        assert_eq!(unwinder.known.len(), before);
    }

    #[test]
    fn a_frame_pointer_below_the_stack_pointer_ends_the_walk() {
        let (stack, sp) = chain();
        let regs = regs(0x42, sp, sp - 16);
        let mut out = Vec::new();
        assert_eq!(
            frame_pointer_walk(&regs, &stack, true, &mut out),
            Ending::Whole
        );
        assert_eq!(out, [0x42]);
    }
}
