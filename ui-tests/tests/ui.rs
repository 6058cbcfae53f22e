//! Compile-time behaviour of `#[webstack::instrument]` and `#[webstack::main]`.
//! Refresh the `.stderr` files with `TRYBUILD=overwrite cargo test -p ui-tests`
//! (see the README), then read each one.

const PASS: &[&str] = &[
    "async-fn",
    "async-fn-in-trait",
    "async-fn-never-returns",
    "async-fn-signatures",
    "async-method-borrowed-return",
    "async-trait-method",
    "await-forms",
    "cfg-param",
    "derive-capture",
    "destructured-params",
    "free-function",
    "generic-fn",
    "generic-impl",
    "impl-future-early-return",
    "impl-future-return",
    "main-above-tokio-main",
    "main-below-tokio-main",
    "main-sync",
    "main-tokio-hooks",
    "main-with-dumps",
    "methods",
    "more-than-eight-params",
    "mut-param",
    "recorded-type-text",
    "result-question-mark",
    "shadowed-internal-names",
    "skip",
    "task-name",
];

const FAIL: &[&str] = &[
    "arg-words-impl-is-sealed",
    "await-non-future",
    "conflicting-skip-arguments",
    "const-fn",
    "derive-capture-duplicate-mark",
    "derive-capture-field-not-capture",
    "derive-capture-mark-with-arguments",
    "derive-capture-misplaced-mark",
    "derive-capture-union",
    "derive-capture-unmarked-struct",
    "duplicate-argument",
    "frame-args-impl-is-sealed",
    "function-without-body",
    "main-duplicate-argument",
    "main-tokio-hooks-misuse",
    "main-with-arguments",
    "malformed-argument",
    "must-use-async-fn",
    "not-a-function",
    "owner-impl-is-sealed",
    "skip-duplicate-parameter",
    "skip-unknown-parameter",
    "type-error-in-async-body",
    "type-error-in-sync-body",
    "unknown-argument",
    "unused-instrumented-fn",
];

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    for case in PASS {
        t.pass(format!("tests/ui/pass/{case}.rs"));
    }
    for case in FAIL {
        t.compile_fail(format!("tests/ui/fail/{case}.rs"));
    }
}

/// A case file that is not listed above would silently never run.
#[test]
fn every_case_is_listed() {
    for (dir, listed) in [("pass", PASS), ("fail", FAIL)] {
        let path = format!("{}/tests/ui/{dir}", env!("CARGO_MANIFEST_DIR"));
        let mut found: Vec<String> = std::fs::read_dir(&path)
            .unwrap_or_else(|e| panic!("{path}: {e}"))
            .filter_map(|entry| {
                let name = entry.ok()?.file_name().into_string().ok()?;
                name.strip_suffix(".rs").map(str::to_owned)
            })
            .collect();
        found.sort();
        assert_eq!(found, listed, "cases in tests/ui/{dir}");
    }
}
