//! The one-way flow, checked: no module imports from a later stage.
//!
//! Stages, in order: `record` (what an instrumented call writes) →
//! `snapshot` (capture into the model) → `native` (the optional pass adding
//! native frames) → `pipeline` (`Snapshot::capture`, running the two) →
//! `group` → `view` (the page's settings) → `render` → `page` (capture →
//! group → render, the one pipeline) → `serve` and `dump` → adapters
//! (`actix`, `axum`). Shared helpers below every stage (`clock`, `fork`,
//! `hash`, `lock`, `futex`, `sync`, `sealed`, `prefetch`) import nothing
//! from the stages: `fork` holds the capture gate and runs the fork
//! handlers each stage registers from its own module.
//!
//! Each source file's `crate::` paths outside comments are read, grouped
//! ones (`use crate::{a::b, c::{d, e}}`, over several lines too) member by
//! member, and the first segment of each must be a module: of the file's
//! own stage, an earlier one, or a shared helper. A crate-root item
//! (`crate::Snapshot`, `crate::uptime`) fails: the root's re-exports are the
//! public API, and a stage imports from the module that owns the item.
//!
//! Not stages, so not checked: the two entry points, `lib.rs` (the public
//! re-exports and the `__test_hooks` module for webstack's own tests, and
//! `init`, which starts every stage) and `private.rs` (`__private`, the
//! macros' door: the record side for `#[instrument]`, and what
//! `#[webstack::main]` starts: `init`, the dumps, the tokio hooks); and
//! the two test modules. `super::` paths are not read.

use std::path::{Path, PathBuf};

/// The stage of a top-level module: `Some(None)` for a shared helper, which
/// any stage may use; `None` for a name that is not a module known here (a
/// crate-root item, or a new module that needs its stage in this table).
fn stage_of(name: &str) -> Option<Option<u8>> {
    Some(Some(match name {
        "clock" | "fork" | "hash" | "lock" | "futex" | "sync" | "sealed" | "prefetch" => {
            return Some(None)
        }
        "record" => 0,
        "snapshot" => 1,
        "native" => 2,
        "pipeline" => 3,
        "group" => 4,
        // The page's settings: read by render, page, serve and dump.
        "view" => 5,
        "render" => 6,
        // The page pipeline: capture → group → render.
        "page" => 7,
        "serve" | "dump" => 8,
        "actix" | "axum" => 9,
        _ => return None,
    }))
}

/// The stage of a source file, from its path under `src/`: `Ok(None)` for
/// files left out of the check, `Ok(Some(None))` for shared helpers.
fn stage_of_file(relative: &Path) -> Result<Option<Option<u8>>, String> {
    let first = relative.components().next().unwrap();
    let name = first.as_os_str().to_str().unwrap().trim_end_matches(".rs");
    match name {
        "lib" | "private" | "layout_tests" | "loom_tests" => Ok(None),
        other => stage_of(other)
            .map(Some)
            .ok_or_else(|| format!("top-level module `{other}` has no stage in layout_tests.rs")),
    }
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The identifier starting at the beginning of `text` (empty if none).
fn ident(text: &str) -> &str {
    let end = text
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    &text[..end]
}

/// The first segment of every `crate::` path in the code (not comments),
/// with its line: one per member of a group (`crate::{a::b, c}` gives `a`
/// and `c`; a nested group counts for its parent's segment).
fn crate_paths(text: &str) -> Vec<(usize, String)> {
    let code: Vec<&str> = text
        .lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .collect();
    let code = code.join("\n");
    let line_at = |at: usize| code[..at].matches('\n').count() + 1;
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(offset) = code[from..].find("crate::") {
        let at = from + offset;
        from = at + "crate::".len();
        if code[..at]
            .chars()
            .last()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
        {
            continue;
        }
        if !code[from..].starts_with('{') {
            let name = ident(&code[from..]);
            if !name.is_empty() {
                found.push((line_at(from), name.to_owned()));
            }
            continue;
        }
        // A group: the first identifier of each member at depth 1.
        let mut depth = 0usize;
        let mut expect_member = false;
        for (i, c) in code[from..].char_indices() {
            match c {
                '{' => {
                    depth += 1;
                    expect_member = depth == 1;
                }
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                ',' => expect_member = depth == 1,
                c if c.is_whitespace() => {}
                _ if expect_member => {
                    expect_member = false;
                    let name = ident(&code[from + i..]);
                    if !name.is_empty() {
                        found.push((line_at(from + i), name.to_owned()));
                    }
                }
                _ => {}
            }
        }
    }
    found
}

#[test]
fn no_module_imports_from_a_later_stage() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut problems = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap();
        let own = match stage_of_file(relative) {
            Ok(Some(stage)) => stage,
            Ok(None) => continue,
            Err(e) => {
                problems.push(format!("{}: {e}", relative.display()));
                continue;
            }
        };
        let text = std::fs::read_to_string(file).unwrap();
        for (line, name) in crate_paths(&text) {
            let at = format!("{}:{line}", relative.display());
            match (own, stage_of(&name)) {
                (_, None) => problems.push(format!(
                    "{at}: `crate::{name}` is not a stage's module or a shared helper: \
                     import it from the module that owns it, not through the crate root"
                )),
                (None, Some(Some(_))) => {
                    problems.push(format!("{at}: a shared helper imports `crate::{name}`"))
                }
                (Some(own), Some(Some(stage))) if stage > own => problems.push(format!(
                    "{at}: stage {own} imports `crate::{name}` of later stage {stage}"
                )),
                _ => {}
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(files.len() > 30, "found only {} source files", files.len());
}

#[test]
fn the_check_sees_a_later_stage_import() {
    let text = "use crate::render::Format;\n// crate::serve in a comment\nlet x = a_crate::group;";
    let paths: Vec<String> = crate_paths(text).into_iter().map(|(_, p)| p).collect();
    assert_eq!(paths, ["render"]);
    assert_eq!(stage_of("render"), Some(Some(6)));
    assert!(stage_of("record").unwrap() < stage_of("render").unwrap());
}

#[test]
fn the_check_reads_grouped_imports() {
    let text = "use crate::{\n    group::{Buckets, Similarity},\n    render, // crate::serve\n    \
                snapshot::{self, model::{Frame}},\n};\nuse crate::{Options, native::x};";
    let expected = [
        (2, "group"),
        (3, "render"),
        (4, "snapshot"),
        (6, "Options"),
        (6, "native"),
    ];
    let expected: Vec<(usize, String)> = expected.map(|(l, p)| (l, p.to_owned())).into();
    assert_eq!(crate_paths(text), expected);
    // Crate-root items are not modules: a stage names the module owning them.
    assert_eq!(stage_of("Options"), None);
    assert_eq!(stage_of("uptime"), None);
    assert_eq!(stage_of("init"), None);
}
