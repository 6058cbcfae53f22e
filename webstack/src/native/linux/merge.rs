//! One stack per thread from its native frames and its shadow frames.

use std::borrow::Cow;

use super::Origin;
use crate::snapshot::Frame;

/// The path used to match a shadow frame to a native one: `<A as B>::f`
/// becomes `A::f`, generic arguments, closure and hash segments go.
pub(super) fn match_key(function: &str) -> String {
    let name = function.trim();
    if name.starts_with('<') {
        if let Some(close) = matching_angle(name, 0) {
            let inner = &name[1..close];
            let self_type = split_as(inner).unwrap_or(inner);
            let unqualified = format!("{self_type}{}", &name[close + 1..]);
            return finish_key(&strip_generics(&unqualified));
        }
    }
    finish_key(&strip_generics(name))
}

fn finish_key(name: &str) -> String {
    let mut segments: Vec<&str> = name
        .trim_start_matches('&')
        .split("::")
        .filter(|s| !s.is_empty() && !s.starts_with('{'))
        .collect();
    if let Some(last) = segments.last() {
        let is_hash = last.len() == 17
            && last.starts_with('h')
            && last[1..].bytes().all(|b| b.is_ascii_hexdigit());
        if is_hash {
            segments.pop();
        }
    }
    segments.join("::")
}

/// Index of the `>` closing the `<` at `open`.
fn matching_angle(s: &str, open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in s[open..].char_indices() {
        match c {
            '<' => depth += 1,
            '>' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(open + i);
                }
            }
            _ => {}
        }
    }
    None
}

/// `A` of `A as B` at nesting depth zero.
fn split_as(inner: &str) -> Option<&str> {
    let mut depth = 0i32;
    for (i, c) in inner.char_indices() {
        match c {
            '<' => depth += 1,
            '>' => depth -= 1,
            ' ' if depth == 0 && inner[i..].starts_with(" as ") => return Some(&inner[..i]),
            _ => {}
        }
    }
    None
}

fn strip_generics(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut depth = 0usize;
    for c in name.chars() {
        match c {
            '<' => depth += 1,
            '>' => depth = depth.saturating_sub(1),
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

fn keys_match(shadow: &str, native: &str) -> bool {
    if shadow.is_empty() || native.is_empty() {
        return false;
    }
    shadow == native
        || (native.len() > shadow.len()
            && native.ends_with(shadow)
            && native[..native.len() - shadow.len()].ends_with("::"))
        || (shadow.len() > native.len()
            && shadow.ends_with(native)
            && shadow[..shadow.len() - native.len()].ends_with("::")
            && native.contains("::"))
}

/// [`match_key`]s of the shadow frames' functions, each worked out once a
/// snapshot: a snapshot's threads share a few instrumented functions, and
/// the key allocates.
#[derive(Default)]
pub(super) struct Keys(std::collections::HashMap<(usize, usize), String>);

impl Keys {
    #[expect(
        clippy::ptr_arg,
        reason = "the variant tells a name that lives as long as the program"
    )]
    fn of(&mut self, function: &Cow<'static, str>) -> Cow<'_, str> {
        match function {
            // A name the macro recorded: it lives as long as the program,
            // so its address names it.
            Cow::Borrowed(name) => Cow::Borrowed(
                self.0
                    .entry((name.as_ptr() as usize, name.len()))
                    .or_insert_with(|| match_key(name)),
            ),
            Cow::Owned(name) => Cow::Owned(match_key(name)),
        }
    }
}

/// One native frame after symbolisation (an inlined call is its own frame).
#[derive(Clone, Debug)]
pub(super) struct NativeFrame {
    pub(super) function: Option<&'static str>,
    /// [`match_key`] of the function.
    pub(super) key: &'static str,
    pub(super) file: Option<&'static str>,
    pub(super) line: u32,
    pub(super) origin: Origin,
    pub(super) address: u64,
}

impl NativeFrame {
    /// Appends the frames at `lookup` (innermost inlined call first) to
    /// `out`, each with `address`; one unnamed frame when nothing is known
    /// there.
    pub(super) fn symbolized(lookup: usize, address: usize, out: &mut Vec<NativeFrame>) {
        let symbols = super::symbols::symbolize(lookup);
        if symbols.is_empty() {
            out.push(NativeFrame {
                function: None,
                key: "",
                file: None,
                line: 0,
                origin: Origin::Unknown,
                address: address as u64,
            });
        }
        out.extend(symbols.iter().map(|s| NativeFrame {
            function: s.function,
            key: s.key,
            file: s.file,
            line: s.line,
            origin: s.origin,
            address: address as u64,
        }));
    }

    fn to_frame(&self) -> Frame {
        let function = match self.function {
            Some(function) => Cow::Borrowed(function),
            None => Cow::Owned(format!("{:#x}", self.address)),
        };
        let file = Cow::Borrowed(self.file.unwrap_or(""));
        let mut frame = Frame::classified(function, file, self.line, self.origin);
        frame.address = Some(self.address);
        frame
    }
}

/// Merges a thread's shadow frames into its native frames, both innermost
/// first. A shadow frame takes the place of the first native frame (past
/// the previous match) whose function it names, keeping its arguments and
/// taking the native file, line and address. Shadow frames that match no
/// native frame (inlined away, or not symbolised) are kept in order, just
/// outside the native frames that precede the next match.
pub(super) fn merge(shadow: Vec<Frame>, native: &[NativeFrame], keys: &mut Keys) -> Vec<Frame> {
    let mut out = Vec::with_capacity(native.len() + shadow.len());
    let mut cursor = 0;
    let mut matched_any = false;
    let mut pending: Vec<Frame> = Vec::new();
    for frame in shadow {
        let key = keys.of(&frame.function);
        let found = native[cursor..]
            .iter()
            .position(|native| keys_match(&key, native.key))
            .map(|offset| cursor + offset);
        let Some(index) = found else {
            pending.push(frame);
            continue;
        };
        out.extend(native[cursor..index].iter().map(NativeFrame::to_frame));
        out.append(&mut pending);
        let native_frame = &native[index];
        let mut merged = frame;
        if let Some(file) = native_frame.file {
            merged.file = Cow::Borrowed(file);
            merged.line = native_frame.line;
        }
        merged.address = Some(native_frame.address);
        if native_frame.origin != Origin::Unknown {
            merged.origin = native_frame.origin;
        }
        out.push(merged);
        cursor = index + 1;
        matched_any = true;
    }
    if !pending.is_empty() && !matched_any {
        // Nothing matched: put the shadow frames just outside the innermost
        // run of library and system frames (the blocking call).
        let inner_end = native[cursor..]
            .iter()
            .position(|n| matches!(n.origin, Origin::App | Origin::Dependency | Origin::Runtime))
            .map_or(native.len(), |offset| cursor + offset);
        out.extend(native[cursor..inner_end].iter().map(NativeFrame::to_frame));
        cursor = inner_end;
    }
    out.append(&mut pending);
    out.extend(native[cursor..].iter().map(NativeFrame::to_frame));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn match_keys() {
        assert_eq!(match_key("app::handle::{{closure}}"), "app::handle");
        assert_eq!(
            match_key("app::handle::{closure#0}::{closure#0}"),
            "app::handle"
        );
        assert_eq!(
            match_key("<app::Foo<u32> as app::Tr>::run"),
            "app::Foo::run"
        );
        assert_eq!(
            match_key("app::Foo<alloc::string::String>::run"),
            "app::Foo::run"
        );
        assert_eq!(match_key("app::run::h0123456789abcdef"), "app::run");
        assert!(keys_match("app::Foo::run", "app::Foo::run"));
        assert!(!keys_match("app::run", "app::rerun"));
    }

    fn shadow(function: &'static str) -> Frame {
        Frame::new(function, "src/lib.rs", 1).instrumented(crate::snapshot::Args::new())
    }

    fn native(function: &'static str, address: u64) -> NativeFrame {
        NativeFrame {
            function: Some(function),
            key: Box::leak(match_key(function).into_boxed_str()),
            file: Some("/src/app/src/lib.rs"),
            line: 10,
            origin: Origin::of(function),
            address,
        }
    }

    fn merge_(shadow: Vec<Frame>, native: &[NativeFrame]) -> Vec<Frame> {
        merge(shadow, native, &mut Keys::default())
    }

    fn shown(frames: &[Frame]) -> Vec<(String, bool)> {
        frames
            .iter()
            .map(|f| (f.function.to_string(), f.instrumented))
            .collect()
    }

    #[test]
    fn merge_keeps_order_and_inlined_away_frames() {
        let merged = merge_(
            vec![shadow("app::a"), shadow("app::b"), shadow("app::c")],
            &[
                native("std::sys::futex::futex_wait", 1),
                native("app::a", 2),
                native("app::helper", 3),
                native("app::c::{{closure}}", 4),
                native("main", 5),
            ],
        );
        let expected = [
            ("std::sys::futex::futex_wait", false),
            ("app::a", true),
            ("app::helper", false),
            ("app::b", true),
            ("app::c", true),
            ("main", false),
        ];
        let expected: Vec<(String, bool)> =
            expected.iter().map(|(f, i)| (f.to_string(), *i)).collect();
        assert_eq!(shown(&merged), expected);
        assert_eq!(merged[1].address, Some(2));
        assert_eq!(merged[1].line, 10);
        assert_eq!(merged[3].address, None);
    }

    #[test]
    fn merge_without_any_match_puts_shadow_frames_outside_the_blocking_call() {
        let merged = merge_(
            vec![shadow("app::p"), shadow("app::q")],
            &[
                native("syscall", 1),
                native("std::sync::condvar::Condvar::wait", 2),
                native("app::unrelated", 3),
                native("main", 4),
            ],
        );
        let names: Vec<String> = shown(&merged).into_iter().map(|(f, _)| f).collect();
        assert_eq!(
            names,
            [
                "syscall",
                "std::sync::condvar::Condvar::wait",
                "app::p",
                "app::q",
                "app::unrelated",
                "main"
            ]
        );
    }
}
