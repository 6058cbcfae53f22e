//! One ELF/DWARF object as read for symbols: its symbol table, the index
//! of its compilation units, its compressed debug sections, and the units
//! parsed so far (see [How an address is resolved](super#how-an-address-is-resolved)).

use std::collections::HashMap;
use std::ffi::CStr;
use std::io::Read as _;

use gimli::Reader as _;
use object::{Object as _, ObjectSection as _, ObjectSymbol as _};

use super::super::mapped::Mapping;
use super::scratch::{page_size, Scratch};

/// A frame as read from the object, before interning.
pub(super) struct RawFrame {
    pub(super) function: Option<String>,
    pub(super) file: Option<String>,
    pub(super) line: u32,
}

type Reader = gimli::EndianSlice<'static, gimli::RunTimeEndian>;

/// A function start from the ELF symbol table: 16 bytes, the name read
/// from the mapped file when needed.
struct Symbol {
    address: u64,
    /// Size in bytes; 0 when unknown.
    size: u32,
    /// File offset of the NUL-terminated name.
    name: u32,
}

/// A compilation unit of the index.
struct UnitInfo {
    /// Its bytes in `.debug_info`.
    offset: usize,
    len: usize,
    /// Estimated heap bytes once parsed.
    cost: usize,
}

/// Addresses `begin..end` belong to unit `unit`.
struct UnitRange {
    begin: u64,
    end: u64,
    /// The largest `end` of this range and all before it.
    max_end: u64,
    unit: u32,
}

/// A parsed unit: an `addr2line` context over a view of that unit's
/// `.debug_info` and of the units it refers to, at their offsets in the
/// section (references between units are section offsets): a sparse
/// reservation where each unit's pages are mapped from the file (so they
/// stay file-backed), and whose gaps hold empty padding units (written
/// over the file's bytes: a private copy of one page each). Field order
/// matters: the context borrows the view.
pub(super) struct Parsed {
    context: addr2line::Context<Reader>,
    /// The units copied: the parsed one first.
    group: Vec<u32>,
    pub(super) cost: usize,
    /// When it was last used (see
    /// [`Objects::tick`](super::resolver::Objects::tick)).
    pub(super) used: u64,
    _copy: Scratch,
}

/// Units a parse may pull in through references before it gives up.
const MAX_GROUP: usize = 16;

/// What was read of one object. Field order matters: the borrows of the
/// mapping and of the decompressed sections (parsed units, sections) are
/// dropped before them.
pub(super) struct Loaded {
    /// Parsed units by index in `units`.
    pub(super) parsed: HashMap<u32, Parsed>,
    /// The DWARF sections, by id; empty without debug information.
    sections: Vec<(gimli::SectionId, Reader)>,
    /// The index: the address ranges of the units, sorted by start. They
    /// may overlap: a linker can point the debug information of a discarded
    /// duplicate (a generic function instantiated in several units) at the
    /// copy it kept.
    ranges: Vec<UnitRange>,
    units: Vec<UnitInfo>,
    symbols: Vec<Symbol>,
    /// The file, to map units from, and where its `.debug_info` is.
    file: std::fs::File,
    info: Info,
    /// The decompressed sections `sections` holds, charged to the budget.
    inflated: Vec<Scratch>,
    _map: Mapping,
}

/// Where the units of an object's `.debug_info` are read from.
#[derive(Clone, Copy)]
enum Info {
    /// At this offset of the file, uncompressed: units are mapped from it.
    Mapped(u64),
    /// A zlib stream in the mapping (`SHF_COMPRESSED`): units are
    /// decompressed again from its start each time some are parsed.
    Zlib(&'static [u8]),
}

/// Heap bytes a parsed unit is estimated to take per 8 bytes of its
/// `.debug_info` (abbreviations, functions and their inlined calls) and of
/// its line program (sequences of rows), besides the copy of its
/// `.debug_info` (measured on the demo and the test binaries).
const PARSED_PER_8_INFO_BYTES: usize = 4;
const PARSED_PER_8_LINE_BYTES: usize = 8;

impl Loaded {
    /// Reads the object at `path`, or, when it has neither debug
    /// information nor a symbol table (a stripped system library), its
    /// separate debug file under `/usr/lib/debug/.build-id/` if installed
    /// (same addresses; its symbol table names local functions such as
    /// `start_thread`). Its zlib-compressed debug sections are
    /// decompressed if those kept take at most `room` bytes (see
    /// [Memory](super#memory)); otherwise they are not read.
    pub(super) fn open(path: &std::path::Path, room: usize) -> Option<Loaded> {
        let (map, _) = Mapping::open(path)?;
        // SAFETY: `file` borrows the bytes and is dropped before `map`
        // below (or with it, on an early return, in declaration order:
        // `file` is declared after `map` and dropped first).
        let file = object::File::parse(unsafe { map.bytes() }).ok()?;
        let stripped = file.section_by_name(".debug_info").is_none()
            && file.section_by_name(".symtab").is_none();
        if stripped {
            if let Ok(Some(id)) = file.build_id() {
                if id.len() > 1 {
                    let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
                    let debug =
                        format!("/usr/lib/debug/.build-id/{}/{}.debug", &hex[..2], &hex[2..]);
                    if let Some(loaded) = Loaded::open_file(std::path::Path::new(&debug), room) {
                        if !loaded.symbols.is_empty() {
                            return Some(loaded);
                        }
                    }
                }
            }
        }
        drop(file);
        drop(map);
        Loaded::open_file(path, room)
    }

    fn open_file(path: &std::path::Path, room: usize) -> Option<Loaded> {
        let (map, opened) = Mapping::open(path)?;
        // SAFETY: what borrows `data` (the sections, a compressed
        // `.debug_info`, and the contexts parsed from them later) is stored
        // in the `Loaded` beside `map`, in fields that drop before `_map`; `file` and the rest are dropped
        // in this function, before `map` is moved into it.
        let data = unsafe { map.bytes() };
        let file = object::File::parse(data).ok()?;
        let function = |s: object::Symbol<'_, '_>| {
            if s.kind() != object::SymbolKind::Text || s.address() == 0 {
                return None;
            }
            let name = s.name_bytes().ok().filter(|name| !name.is_empty())?;
            Some(Symbol {
                address: s.address(),
                size: u32::try_from(s.size()).unwrap_or(0),
                name: u32::try_from((name.as_ptr() as usize).checked_sub(data.as_ptr() as usize)?)
                    .ok()?,
            })
        };
        let mut symbols: Vec<Symbol> = file.symbols().filter_map(function).collect();
        if symbols.is_empty() {
            symbols = file.dynamic_symbols().filter_map(function).collect();
        }
        symbols.sort_by_key(|s| (s.address, std::cmp::Reverse(s.size)));
        symbols.dedup_by_key(|s| s.address);
        symbols.shrink_to_fit();

        let endian = if file.is_little_endian() {
            gimli::RunTimeEndian::Little
        } else {
            gimli::RunTimeEndian::Big
        };
        let mut info = Info::Mapped(
            file.section_by_name(".debug_info")
                .and_then(|s| s.file_range())
                .map_or(0, |r| r.0),
        );
        let mut sections = Vec::new();
        let mut compressed = Vec::new();
        for section in file.sections() {
            let Ok(name) = section.name() else { continue };
            let Some(&id) = SECTION_IDS.iter().find(|id| id.name() == name) else {
                continue;
            };
            let Ok(range) = section.compressed_file_range() else {
                continue;
            };
            match range.format {
                object::CompressionFormat::None => {
                    if let Ok(bytes) = section.data() {
                        sections.push((id, gimli::EndianSlice::new(bytes, endian)));
                    }
                }
                object::CompressionFormat::Zlib if !NOT_READ.contains(&id) => {
                    let stream = usize::try_from(range.offset)
                        .ok()
                        .and_then(|start| data.get(start..)?.get(..range.compressed_size as usize))
                        .zip(usize::try_from(range.uncompressed_size).ok());
                    if let Some((stream, len)) = stream {
                        compressed.push((id, stream, len));
                    }
                }
                _ => {}
            }
        }
        let mut inflated = Vec::new();
        let kept = compressed
            .iter()
            .filter(|(id, _, _)| *id != gimli::SectionId::DebugInfo)
            .map(|&(_, _, len)| len)
            .sum::<usize>();
        if kept <= room {
            for (id, stream, len) in compressed {
                if id == gimli::SectionId::DebugInfo {
                    info = Info::Zlib(stream);
                    continue;
                }
                let Some(mut buffer) = Scratch::new(len, 0) else {
                    continue;
                };
                let mut decoder = flate2::bufread::ZlibDecoder::new(stream);
                if decoder.read_exact(buffer.bytes_mut()).is_err() {
                    continue;
                }
                // SAFETY: the reader is stored in `sections` (and the
                // contexts parsed later copy it), which drop before
                // `inflated`, where `buffer` goes next; moving the
                // `Scratch` does not move the mapping it owns.
                let bytes = unsafe { buffer.bytes() };
                sections.push((id, gimli::EndianSlice::new(bytes, endian)));
                inflated.push(buffer);
            }
        }
        let mut loaded = Loaded {
            parsed: HashMap::new(),
            sections,
            ranges: Vec::new(),
            units: Vec::new(),
            symbols,
            file: opened,
            info,
            inflated,
            _map: map,
        };
        loaded.index();
        Some(loaded)
    }

    /// Section `id`, empty (in the object's byte order) when absent: a
    /// compressed `.debug_info` is not among the sections.
    fn section(&self, id: gimli::SectionId) -> Reader {
        let endian = self
            .sections
            .first()
            .map_or(gimli::RunTimeEndian::Little, |s| s.1.endian());
        self.sections
            .iter()
            .find(|(found, _)| *found == id)
            .map_or(gimli::EndianSlice::new(&[], endian), |s| s.1)
    }

    /// The DWARF of the whole object, or with `.debug_info` replaced by
    /// `info` (a copy of some units at their offsets, or one unit).
    fn dwarf<'a>(
        &self,
        info: Option<&'a [u8]>,
    ) -> gimli::Dwarf<gimli::EndianSlice<'a, gimli::RunTimeEndian>> {
        let load = |id: gimli::SectionId| -> Result<gimli::EndianSlice<'a, _>, ()> {
            let section = self.section(id);
            Ok(match (id, info) {
                (gimli::SectionId::DebugInfo, Some(info)) => {
                    gimli::EndianSlice::new(info, section.endian())
                }
                // Without `.debug_aranges`, `addr2line` reads the ranges
                // of the units it is given.
                (gimli::SectionId::DebugAranges, Some(_)) => {
                    gimli::EndianSlice::new(&[], section.endian())
                }
                _ => section,
            })
        };
        gimli::Dwarf::load(load).unwrap_or_default()
    }

    /// A context over a copy of the units of `group` (see [`Parsed`]).
    fn parse(&self, group: Vec<u32>, used: u64) -> Option<Parsed> {
        let info = self.section(gimli::SectionId::DebugInfo);
        let endian = info.endian();
        let mut units: Vec<&UnitInfo> = group
            .iter()
            .filter_map(|&u| self.units.get(u as usize))
            .collect();
        units.sort_by_key(|u| u.offset);
        let end = units.last().map(|u| u.offset + u.len)?;
        let mut copy;
        match self.info {
            Info::Mapped(origin) => {
                copy = Scratch::new(end, origin)?;
                for unit in &units {
                    copy.map(&self.file, origin, unit.offset, unit.offset + unit.len)?;
                }
            }
            Info::Zlib(stream) => {
                copy = Scratch::new(end, 0)?;
                inflate_units(stream, &units, copy.bytes_mut())?;
            }
        }
        let bytes = copy.bytes_mut();
        // An empty abbreviation table: the 0 that ends the last table.
        let abbrev = self.section(gimli::SectionId::DebugAbbrev).slice();
        let empty_abbrev = match abbrev.last() {
            Some(0) => u32::try_from(abbrev.len() - 1).ok()?,
            _ => return None,
        };
        let mut cursor = 0;
        for unit in units {
            if unit.offset > cursor {
                pad(&mut bytes[cursor..unit.offset], empty_abbrev, endian)?;
            }
            cursor = unit.offset + unit.len;
        }
        // SAFETY: the context borrowing the view is stored in the same
        // `Parsed` as `copy`, in a field that drops before `_copy`.
        let info = unsafe { copy.bytes() };
        let context = addr2line::Context::from_dwarf(self.dwarf(Some(info))).ok()?;
        // What parsing the first unit keeps; of the others, their headers
        // and abbreviations (read for names only) and a padding page each;
        // and the copies of units decompressed, which are not file-backed.
        let inflated = matches!(self.info, Info::Zlib(_));
        let cost = group
            .iter()
            .filter_map(|&u| self.units.get(u as usize))
            .map(|u| u.len / 16 + page_size() + if inflated { u.len } else { 0 })
            .sum::<usize>()
            + self.units.get(group[0] as usize).map_or(0, |u| u.cost);
        Some(Parsed {
            context,
            group,
            cost,
            used,
            _copy: copy,
        })
    }

    /// Unit `index` and the units it refers to (`DW_FORM_ref_addr`: the
    /// abstract origins of functions inlined from other units), found by
    /// one pass over its entries. Only unit `index` when `.debug_info` is
    /// compressed (it is not kept): [`Loaded::resolve`] adds the others
    /// when the parse reports them missing.
    fn group_of(&self, index: u32) -> Vec<u32> {
        let mut group = vec![index];
        let Some(unit) = self.units.get(index as usize) else {
            return group;
        };
        let dwarf = self.dwarf(None);
        let Ok(header) = dwarf
            .debug_info
            .header_from_offset(gimli::DebugInfoOffset(unit.offset))
        else {
            return group;
        };
        let Ok(unit) = dwarf.unit(header) else {
            return group;
        };
        let Ok(mut entries) = unit.entries_raw(None) else {
            return group;
        };
        while !entries.is_empty() {
            let Ok(abbrev) = entries.read_abbreviation() else {
                break;
            };
            let Some(abbrev) = abbrev else { continue };
            for spec in abbrev.attributes() {
                let Ok(attr) = entries.read_attribute(*spec) else {
                    return group;
                };
                if let gimli::AttributeValue::DebugInfoRef(offset) = attr.value() {
                    if let Some(other) = self.unit_holding(offset.0) {
                        if !group.contains(&other) && group.len() < MAX_GROUP {
                            group.push(other);
                        }
                    }
                }
            }
        }
        group
    }

    /// The unit holding `.debug_info` offset `offset`.
    fn unit_holding(&self, offset: usize) -> Option<u32> {
        let after = self.units.partition_point(|u| u.offset <= offset);
        let index = after.checked_sub(1)?;
        let unit = &self.units[index];
        (offset < unit.offset + unit.len).then(|| u32::try_from(index).ok())?
    }

    /// Reads the address ranges of every unit: its header and first entry,
    /// nothing kept but the ranges. The unit headers' abbreviations and
    /// file tables are parsed one unit at a time and dropped.
    fn index(&mut self) {
        match self.info {
            Info::Mapped(_) => {
                let dwarf = self.dwarf(None);
                let mut headers = dwarf.units();
                while let Ok(Some(header)) = headers.next() {
                    let offset = header.offset().0;
                    if self.index_unit(&dwarf, header, offset).is_none() {
                        break;
                    }
                }
            }
            Info::Zlib(stream) => {
                // One unit at a time: only the largest is held at once.
                let endian = self.section(gimli::SectionId::DebugInfo).endian();
                let mut decoder = flate2::bufread::ZlibDecoder::new(stream);
                let mut unit = Vec::new();
                let mut offset = 0;
                while read_unit(&mut decoder, endian, &mut unit).is_some() {
                    let dwarf = self.dwarf(Some(&unit));
                    if let Ok(Some(header)) = dwarf.units().next() {
                        if self.index_unit(&dwarf, header, offset).is_none() {
                            break;
                        }
                    }
                    offset += unit.len();
                }
            }
        }
        self.ranges.sort_unstable_by_key(|r| (r.begin, r.end));
        let mut max_end = 0;
        for range in &mut self.ranges {
            max_end = max_end.max(range.end);
            range.max_end = max_end;
        }
        self.ranges.shrink_to_fit();
        self.units.shrink_to_fit();
    }

    /// Adds the unit of `header`, at `offset` in `.debug_info`, to the
    /// index; `None` when the index is full.
    fn index_unit(
        &mut self,
        dwarf: &gimli::Dwarf<gimli::EndianSlice<'_, gimli::RunTimeEndian>>,
        header: gimli::UnitHeader<gimli::EndianSlice<'_, gimli::RunTimeEndian>>,
        offset: usize,
    ) -> Option<()> {
        let len = header.length_including_self();
        let Ok(unit) = dwarf.unit(header) else {
            return Some(());
        };
        let index = u32::try_from(self.units.len()).ok()?;
        let line_len = unit
            .line_program
            .as_ref()
            .map_or(0, |p| p.header().unit_length());
        self.units.push(UnitInfo {
            offset,
            len,
            cost: (len / 8)
                .saturating_mul(PARSED_PER_8_INFO_BYTES)
                .saturating_add((line_len / 8).saturating_mul(PARSED_PER_8_LINE_BYTES)),
        });
        let Ok(mut ranges) = dwarf.unit_ranges(&unit) else {
            return Some(());
        };
        while let Ok(Some(range)) = ranges.next() {
            if range.begin >= range.end {
                continue;
            }
            match self.ranges.last_mut() {
                Some(last) if last.unit == index && last.end == range.begin => {
                    last.end = range.end;
                }
                _ => self.ranges.push(UnitRange {
                    begin: range.begin,
                    end: range.end,
                    max_end: 0,
                    unit: index,
                }),
            }
        }
        Some(())
    }

    /// Bytes of the index and symbol table, kept outside the budget.
    pub(super) fn fixed_bytes(&self) -> usize {
        std::mem::size_of_val(self.ranges.as_slice())
            + std::mem::size_of_val(self.units.as_slice())
            + std::mem::size_of_val(self.symbols.as_slice())
    }

    /// The units whose ranges hold `svma`, latest start first.
    fn units_at(&self, svma: u64) -> Vec<u32> {
        let mut units = Vec::new();
        let before = self.ranges.partition_point(|r| r.begin <= svma);
        for range in self.ranges[..before].iter().rev() {
            if range.max_end <= svma {
                break;
            }
            if svma < range.end && !units.contains(&range.unit) {
                units.push(range.unit);
            }
        }
        units
    }

    /// The symbol table's function around `svma`.
    fn symbol(&self, svma: u64) -> Option<&str> {
        let after = self.symbols.partition_point(|s| s.address <= svma);
        let symbol = self.symbols.get(after.checked_sub(1)?)?;
        if symbol.size != 0 && svma >= symbol.address + u64::from(symbol.size) {
            return None;
        }
        // SAFETY: the name is borrowed for as long as `self`, which owns
        // the mapping.
        let bytes = unsafe { self._map.bytes() }.get(symbol.name as usize..)?;
        let name = CStr::from_bytes_until_nul(bytes).ok()?;
        name.to_str().ok()
    }

    /// The frames at `svma` (a stated virtual address of this object),
    /// innermost first. Parses the unit holding it if needed.
    pub(super) fn resolve(&mut self, svma: u64, tick: u64, out: &mut Vec<RawFrame>) {
        for index in self.units_at(svma) {
            for _ in 0..MAX_GROUP {
                if !self.parsed.contains_key(&index) {
                    let Some(parsed) = self.parse(self.group_of(index), tick) else {
                        break;
                    };
                    self.parsed.insert(index, parsed);
                }
                let Some(parsed) = self.parsed.get_mut(&index) else {
                    break;
                };
                parsed.used = tick;
                out.clear();
                match frames(&parsed.context, svma, out) {
                    Err(gimli::Error::NoEntryAtGivenOffset(offset)) => {
                        // A reference into a unit not copied: copy it too.
                        let wanted = usize::try_from(offset).ok();
                        let Some(unit) = wanted.and_then(|o| self.unit_holding(o)) else {
                            break;
                        };
                        let Some(mut group) = self
                            .parsed
                            .remove(&index)
                            .map(|p| p.group.clone())
                            .filter(|g| !g.contains(&unit) && g.len() < MAX_GROUP)
                        else {
                            break;
                        };
                        group.push(unit);
                        if let Some(parsed) = self.parse(group, tick) {
                            self.parsed.insert(index, parsed);
                        }
                    }
                    _ => break,
                }
            }
            if !out.is_empty() {
                break;
            }
        }
        let outer = self.symbol(svma);
        match out.last_mut() {
            Some(last) if last.function.is_none() => {
                last.function = outer.map(demangle);
            }
            None => {
                if let Some(name) = outer {
                    out.push(RawFrame {
                        function: Some(demangle(name)),
                        file: None,
                        line: 0,
                    });
                }
            }
            _ => {}
        }
    }

    pub(super) fn parsed_bytes(&self) -> usize {
        self.parsed.values().map(|p| p.cost).sum()
    }

    /// Bytes of the decompressed sections kept.
    pub(super) fn inflated_bytes(&self) -> usize {
        self.inflated.iter().map(|s| s.len).sum()
    }
}

/// Sections of [`SECTION_IDS`] that nothing here reads, so not worth
/// decompressing: the units' own ranges replace `.debug_aranges`, and
/// location lists describe variables.
const NOT_READ: [gimli::SectionId; 3] = [
    gimli::SectionId::DebugAranges,
    gimli::SectionId::DebugLoc,
    gimli::SectionId::DebugLocLists,
];

/// Reads the next unit of a `.debug_info` stream into `unit`: its length
/// field, then as many bytes as that says. `None` at the end of the
/// stream, or when it ends early.
fn read_unit(
    stream: &mut impl std::io::Read,
    endian: gimli::RunTimeEndian,
    unit: &mut Vec<u8>,
) -> Option<()> {
    use gimli::Endianity as _;
    let mut length = [0; 4];
    stream.read_exact(&mut length).ok()?;
    let rest = match endian.read_u32(&length) {
        0xffff_ffff => {
            let mut length = [0; 8];
            stream.read_exact(&mut length).ok()?;
            unit.clear();
            unit.extend_from_slice(&[0xff; 4]);
            unit.extend_from_slice(&length);
            usize::try_from(endian.read_u64(&length)).ok()?
        }
        short if short >= 0xffff_fff0 => return None,
        short => {
            unit.clear();
            unit.extend_from_slice(&length);
            short as usize
        }
    };
    let start = unit.len();
    stream.take(rest as u64).read_to_end(unit).ok()?;
    (unit.len() - start == rest).then_some(())
}

/// Decompresses the zlib stream of a `.debug_info` up to the end of the
/// last of `units` (sorted by offset), writing each unit at its offset in
/// `view`, the rest nowhere.
fn inflate_units(stream: &[u8], units: &[&UnitInfo], view: &mut [u8]) -> Option<()> {
    let mut decoder = flate2::bufread::ZlibDecoder::new(stream);
    let mut at = 0;
    for unit in units {
        let skip = unit.offset.checked_sub(at)? as u64;
        let skipped = std::io::copy(&mut (&mut decoder).take(skip), &mut std::io::sink()).ok()?;
        (skipped == skip).then_some(())?;
        decoder
            .read_exact(view.get_mut(unit.offset..unit.offset + unit.len)?)
            .ok()?;
        at = unit.offset + unit.len;
    }
    Some(())
}

/// The sections `addr2line` reads.
const SECTION_IDS: [gimli::SectionId; 12] = [
    gimli::SectionId::DebugAbbrev,
    gimli::SectionId::DebugAddr,
    gimli::SectionId::DebugAranges,
    gimli::SectionId::DebugInfo,
    gimli::SectionId::DebugLine,
    gimli::SectionId::DebugLineStr,
    gimli::SectionId::DebugLoc,
    gimli::SectionId::DebugLocLists,
    gimli::SectionId::DebugRanges,
    gimli::SectionId::DebugRngLists,
    gimli::SectionId::DebugStr,
    gimli::SectionId::DebugStrOffsets,
];

/// Writes over `gap` a unit that readers skip without reading its entries:
/// a DWARF 5 type unit header (`addr2line` needs nothing from type units),
/// or for a gap too short for one, an empty DWARF 4 unit.
fn pad(gap: &mut [u8], empty_abbrev: u32, endian: gimli::RunTimeEndian) -> Option<()> {
    let u16_bytes = |v: u16| match endian {
        gimli::RunTimeEndian::Little => v.to_le_bytes(),
        gimli::RunTimeEndian::Big => v.to_be_bytes(),
    };
    let u32_bytes = |v: u32| match endian {
        gimli::RunTimeEndian::Little => v.to_le_bytes(),
        gimli::RunTimeEndian::Big => v.to_be_bytes(),
    };
    let length = u32::try_from(gap.len().checked_sub(4)?).ok()?;
    let address_size = std::mem::size_of::<usize>() as u8;
    if gap.len() > 24 {
        gap[0..4].copy_from_slice(&u32_bytes(length));
        gap[4..6].copy_from_slice(&u16_bytes(5));
        gap[6] = 0x02; // DW_UT_type
        gap[7] = address_size;
        gap[8..12].copy_from_slice(&u32_bytes(empty_abbrev));
        gap[12..20].fill(0); // type signature
        gap[20..24].copy_from_slice(&u32_bytes(24)); // type offset
        gap[24] = 0;
    } else if gap.len() >= 12 {
        gap[0..4].copy_from_slice(&u32_bytes(length));
        gap[4..6].copy_from_slice(&u16_bytes(4));
        gap[6..10].copy_from_slice(&u32_bytes(empty_abbrev));
        gap[10] = address_size;
        gap[11..].fill(0); // null entries
    } else {
        return None;
    }
    Some(())
}

/// The frames of one unit's context at `svma`, innermost first.
fn frames(
    context: &addr2line::Context<Reader>,
    svma: u64,
    out: &mut Vec<RawFrame>,
) -> Result<(), gimli::Error> {
    let mut frames = context.find_frames(svma).skip_all_loads()?;
    while let Some(frame) = frames.next()? {
        let function = frame
            .function
            .as_ref()
            .and_then(|f| f.raw_name().ok())
            .map(|name| demangle(&name));
        let (file, line) = frame.location.map_or((None, 0), |l| {
            (l.file.map(str::to_owned), l.line.unwrap_or(0))
        });
        out.push(RawFrame {
            function,
            file,
            line,
        });
    }
    Ok(())
}

/// A Rust name demangled without its hash; other names as they are.
fn demangle(name: &str) -> String {
    match rustc_demangle::try_demangle(name) {
        Ok(demangled) => format!("{demangled:#}"),
        Err(_) => name.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::budget;
    use super::super::resolver::Objects;
    use super::*;

    /// The C library's compressed debug sections (those of Debian's
    /// `libc6-dbg`) are read when they fit the room given, and not at all
    /// otherwise: its frames then have the symbol table's names only.
    #[test]
    fn compressed_debug_sections_are_read_only_within_their_room() {
        let read = libc::read as *const () as usize;
        let mut objects = Objects::new();
        objects.relist();
        let object = objects.list.iter().find(|o| o.contains(read)).unwrap();
        let svma = read.wrapping_sub(object.bias) as u64;
        let mut with = Loaded::open(&object.path, budget() / 4).unwrap();
        if with.inflated.is_empty() {
            eprintln!(
                "SKIP: {} has no compressed debug sections",
                object.path.display()
            );
            return;
        }
        assert!(with.inflated_bytes() <= budget() / 4);
        let mut out = Vec::new();
        with.resolve(svma, 1, &mut out);
        assert!(out.iter().any(|f| f.file.is_some() && f.line > 0));
        let mut without = Loaded::open(&object.path, 0).unwrap();
        assert!(without.inflated.is_empty() && without.units.is_empty());
        out.clear();
        without.resolve(svma, 1, &mut out);
        assert!(out.iter().all(|f| f.file.is_none() && f.function.is_some()));
    }
}

#[cfg(test)]
mod every_function {
    use super::super::budget;
    use super::*;

    /// Functions of this test binary, every 16th from its symbol table,
    /// resolve to a file and line whenever a unit's ranges hold them, even
    /// those whose names are in other units (`DW_FORM_ref_addr`).
    #[test]
    fn functions_with_debug_information_resolve_to_a_file() {
        let mut loaded = Loaded::open(std::path::Path::new("/proc/self/exe"), budget()).unwrap();
        let starts: Vec<u64> = loaded
            .symbols
            .iter()
            .step_by(16)
            .map(|s| s.address)
            .collect();
        let mut in_units = 0;
        let mut missing = Vec::new();
        for (tick, &start) in starts.iter().enumerate() {
            if loaded.units_at(start).is_empty() {
                continue;
            }
            in_units += 1;
            let mut out = Vec::new();
            loaded.resolve(start, tick as u64, &mut out);
            if out.iter().all(|f| f.file.is_none()) {
                missing.push((start, loaded.symbol(start).map(str::to_owned)));
            }
            // Keep memory low: this is not the budget under test.
            if loaded.parsed.len() > 8 {
                loaded.parsed.clear();
            }
        }
        assert!(in_units > 100, "{in_units} functions in units");
        assert!(
            missing.is_empty(),
            "{} of {in_units} without a file: {:?}",
            missing.len(),
            &missing[..missing.len().min(10)]
        );
    }
}
