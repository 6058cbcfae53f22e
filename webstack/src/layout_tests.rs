//! The one-way flow, checked: no module imports from a later stage.
//!
//! Stages, in order: `record` (what an instrumented call writes) →
//! `snapshot` (capture into the model) → `native` (the optional pass adding
//! native frames) → `pipeline` (`Snapshot::capture`, running the two) →
//! `group` → `render` → `serve` → adapters (`actix`, `axum`). Shared
//! helpers below every stage (`clock`, `hash`, `lock`, `futex`, `sync`,
//! `sealed`) import nothing from the stages. Two modules see every stage by their nature and
//! are left out: `fork` (the fork handlers take every lock the process may
//! hold) and `__private` (the macros' door, which re-exports the record
//! side). Each source file's `crate::` paths outside comments are read, and
//! each must name its own stage, an earlier one, or a shared helper.

use std::path::{Path, PathBuf};

/// The stage of a top-level module or crate-root item; `None` for shared
/// helpers, which any stage may use.
fn stage_of(name: &str) -> Result<Option<u8>, String> {
    Ok(Some(match name {
        "clock" | "hash" | "lock" | "futex" | "sync" | "sealed" | "fork" | "uptime" | "init"
        | "prefetch" => return Ok(None),
        // `__private` re-exports the record side for the macros.
        "record" | "__private" | "Capture" | "Value" | "Shape" | "Collection" | "MAX_ARGS"
        | "MAX_DEPTH" | "thread" | "task" | "tokio" => 0,
        "snapshot" | "Snapshot" | "Options" | "Routine" | "Frame" | "Arg" | "Args" | "Kind"
        | "State" | "Origin" | "CreatedBy" | "Process" | "LeftOut" | "DEFAULT_MAXMEM"
        | "MIN_MAXMEM" | "JSON_VERSION" => 1,
        "native" => 2,
        "pipeline" => 3,
        "group"
        | "Buckets"
        | "Bucket"
        | "BucketFrame"
        | "BucketArg"
        | "Member"
        | "Merged"
        | "Similarity"
        | "ParseSimilarityError" => 4,
        "render" => 5,
        "serve" | "dump" => 6,
        "actix" | "axum" => 7,
        other => return Err(format!("module or item `crate::{other}` has no stage")),
    }))
}

/// The stage of a source file, from its path under `src/`; `None` for
/// files exempt from the check.
fn stage_of_file(relative: &Path) -> Result<Option<u8>, String> {
    let first = relative.components().next().unwrap();
    let name = first.as_os_str().to_str().unwrap().trim_end_matches(".rs");
    match name {
        "lib" | "private" | "fork" | "layout_tests" | "loom_tests" => Ok(None),
        other => stage_of(other),
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

/// The first segment of every `crate::` path in the code (not comments).
fn crate_paths(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let before = rest[..at].chars().last();
            rest = &rest[at + "crate::".len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            if end > 0 {
                found.push((number + 1, rest[..end].to_owned()));
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
            match stage_of(&name) {
                Ok(Some(stage)) if stage > own => problems.push(format!(
                    "{}:{line}: stage {own} imports `crate::{name}` of later stage {stage}",
                    relative.display()
                )),
                Ok(_) => {}
                Err(e) => problems.push(format!("{}:{line}: {e}", relative.display())),
            }
        }
        // Shared helpers import no stage at all.
        if relative.to_str().is_some_and(|p| {
            [
                "clock.rs",
                "hash.rs",
                "lock.rs",
                "futex.rs",
                "sync.rs",
                "sealed.rs",
            ]
            .contains(&p)
        }) {
            for (line, name) in crate_paths(&text) {
                if matches!(stage_of(&name), Ok(Some(_))) {
                    problems.push(format!(
                        "{}:{line}: a shared helper imports `crate::{name}`",
                        relative.display()
                    ));
                }
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
    assert_eq!(stage_of("render"), Ok(Some(5)));
    assert!(stage_of("record").unwrap() < stage_of("render").unwrap());
}
