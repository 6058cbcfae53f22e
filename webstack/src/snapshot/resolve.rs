//! What recorded words and symbol names mean to a person: function names
//! (`Type::method` for methods), tidied source paths, and the [`Origin`] of
//! a frame's code. Worked out once per function and cached, so a snapshot
//! pays for each function it sees once, not per frame.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::{LazyLock, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::model::{Arg, CreatedBy, Frame, Origin};
use crate::fork::{ForkHandlers, Held, Rank};
use crate::hash::FxBuild;
use crate::record::meta::FrameMeta;
use crate::record::stack::Site;
use crate::record::value::Value;

/// What a frame's metadata resolves to, worked out once per function and
/// `Self` type in a snapshot: the displayed path, the tidied file and the
/// origin (classifying a path is most of the cost of a frame otherwise).
pub(crate) struct FrameCache {
    /// The last resolution per hash of `(meta, owner)`, in front of
    /// `resolved`: a program's frames come from few functions, and the same
    /// few repeat in every task.
    recent: Box<[(usize, usize, Resolved); RECENT]>,
    resolved: HashMap<(usize, usize), Resolved, FxBuild>,
    /// Creation sites by the address and length of their function and file
    /// names: the same few sites create every task.
    sites: HashMap<SiteKey, (&'static str, Origin), FxBuild>,
}

type Resolved = (&'static str, &'static str, Origin);

type SiteKey = (usize, usize, usize, usize);

const RECENT: usize = 64;

impl Default for FrameCache {
    fn default() -> Self {
        FrameCache {
            recent: Box::new([(0, 0, ("", "", Origin::Unknown)); RECENT]),
            resolved: HashMap::default(),
            sites: HashMap::default(),
        }
    }
}

impl FrameCache {
    fn resolve(&mut self, meta: &'static FrameMeta, owner: usize) -> Resolved {
        let key = (meta.addr(), owner);
        let hash =
            (key.0 as u64 ^ (key.1 as u64).rotate_left(17)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let recent = &mut self.recent[(hash >> (u64::BITS - RECENT.trailing_zeros())) as usize];
        if (recent.0, recent.1) == key {
            return recent.2;
        }
        let resolved = *self.resolved.entry(key).or_insert_with(|| {
            let function = function_name(meta, owner);
            (function, tidy_path(meta.file), classify(function))
        });
        *recent = (key.0, key.1, resolved);
        resolved
    }

    /// The frame recorded with metadata word `meta`, owner word `owner`, task
    /// word `task` and arguments `values`.
    pub(crate) fn frame(
        &mut self,
        meta: usize,
        owner: usize,
        task: u64,
        values: &[Value],
    ) -> Frame {
        // SAFETY: frame words come from slots (or chains copied from slots)
        // whose meta word is only written from a `&'static FrameMeta`, read
        // after the slot's sequence check.
        let meta = unsafe { FrameMeta::from_addr(meta) };
        let (function, file, origin) = self.resolve(meta, owner);
        Frame::recorded(
            function,
            file,
            meta.line,
            origin,
            meta.args
                .iter()
                .zip(values)
                .map(|(arg, value)| Arg::new(arg.name, arg.ty, *value))
                .collect(),
            (task != 0).then_some(task),
        )
    }

    /// The creation site recorded as `site`, its path tidied.
    pub(crate) fn created_by(&mut self, site: Site) -> CreatedBy {
        let key = (
            site.function.as_ptr() as usize,
            site.function.len(),
            site.file.as_ptr() as usize,
            site.file.len(),
        );
        let (file, origin) = *self
            .sites
            .entry(key)
            .or_insert_with(|| (tidy_path(site.file), classify(site.function)));
        CreatedBy {
            function: site.function,
            file,
            line: site.line,
            origin,
        }
    }
}

/// `file!()` paths of targets that live outside their package directory read
/// `pkg/../examples/demo.rs`; shown as `examples/demo.rs`. Cleaned once per
/// path and kept.
fn tidy_path(path: &'static str) -> &'static str {
    if !path.contains("/../") {
        return path;
    }
    static PATHS: LazyLock<Mutex<HashMap<usize, &'static str>>> = LazyLock::new(Default::default);
    let mut paths = PATHS.lock().unwrap_or_else(|e| e.into_inner());
    paths
        .entry(path.as_ptr() as usize)
        .or_insert_with(|| Box::leak(tidy(path).into_owned().into_boxed_str()))
}

/// `path` with each `dir/..` pair removed, lexically: `pkg/../examples/x.rs`
/// is `examples/x.rs`.
pub(crate) fn tidy(path: &str) -> Cow<'_, str> {
    if !path.contains("/../") {
        return Cow::Borrowed(path);
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            ".." if parts.last().is_some_and(|p| !p.is_empty() && *p != "..") => {
                parts.pop();
            }
            _ => parts.push(part),
        }
    }
    Cow::Owned(parts.join("/"))
}

/// `Type::method` names for methods, built once per (type, method) and kept.
fn function_name(meta: &'static FrameMeta, owner: usize) -> &'static str {
    if owner == 0 {
        return meta.function;
    }
    static NAMES: LazyLock<Mutex<HashMap<(usize, usize), &'static str>>> =
        LazyLock::new(Default::default);
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    names.entry((meta.addr(), owner)).or_insert_with(|| {
        // SAFETY: a nonzero owner word is only written from `Owner::addr`,
        // a sealed trait whose one nonzero impl (`OwnerOf<T>`) returns
        // `std::any::type_name::<T> as fn() -> &'static str`.
        let type_name: fn() -> &'static str =
            unsafe { std::mem::transmute::<usize, fn() -> &'static str>(owner) };
        Box::leak(format!("{}::{}", type_name(), meta.name).into_boxed_str())
    })
}

const STD_CRATES: &[&str] = &[
    "std",
    "core",
    "alloc",
    "panic_unwind",
    "panic_abort",
    "std_detect",
    "compiler_builtins",
];

const RUNTIME_CRATES: &[&str] = &[
    "tokio",
    "mio",
    "actix_rt",
    "actix_server",
    "actix_http",
    "actix_web",
    "actix_service",
    "async_std",
    "async_executor",
    "async_io",
    "smol",
    "futures_executor",
    "rayon_core",
];

const WEBSTACK_CRATES: &[&str] = &["webstack", "webstack_macros"];

/// C-library and loader symbols that appear at the ends of thread stacks.
const C_RUNTIME_SYMBOLS: &[&str] = &[
    "main",
    "clone",
    "clone3",
    "start_thread",
    "syscall",
    "read",
    "write",
    "pread64",
    "pwrite64",
    "recv",
    "recvfrom",
    "send",
    "sendto",
    "accept",
    "accept4",
    "connect",
    "poll",
    "ppoll",
    "select",
    "epoll_wait",
    "epoll_pwait",
    "nanosleep",
    "clock_nanosleep",
    "sched_yield",
    "pause",
    "sigwait",
    "sigtimedwait",
    "waitpid",
    "wait4",
];

/// Crates seen with sources in a Cargo registry or git checkout. A `std`
/// lock, held across a fork (see [`crate::fork`]): [`classify`] reads it
/// outside captures too ([`Origin::of`]).
static DEPENDENCIES: LazyLock<RwLock<HashSet<String>>> = LazyLock::new(Default::default);

static DEPENDENCIES_HELD: Held<RwLockWriteGuard<'static, HashSet<String>>> = Held::new();

fn dependencies() -> RwLockReadGuard<'static, HashSet<String>> {
    register_fork();
    DEPENDENCIES.read().unwrap_or_else(PoisonError::into_inner)
}

fn dependencies_mut() -> RwLockWriteGuard<'static, HashSet<String>> {
    register_fork();
    DEPENDENCIES.write().unwrap_or_else(PoisonError::into_inner)
}

/// The snapshot's fork handlers ([`Rank::Resolve`]: last after the gate;
/// see [`crate::fork`]): the crate set's lock, and before the gate the
/// process facts a capture records (a `LazyLock`, see
/// [`init_process_facts`](super::capture::init_process_facts)).
static FORK: ForkHandlers = ForkHandlers {
    before_gate: Some(super::capture::init_process_facts),
    prepare: prepare_fork,
    after: after_fork,
};

/// Registers [`FORK`]; one atomic load after the first call.
///
/// Called by [`dependencies`] and [`dependencies_mut`], the only ways to the
/// crate set but `prepare_fork`'s, before they take its lock (or first
/// build it), and by `Process::current` before it reads the process facts:
/// so a fork finds neither in use without the handlers registered. Their
/// callers hold no lock that a *prepare* takes: they classify functions
/// within a capture (holding the gate, shared, at most) or in the native
/// pass's symbols (holding the symbols' own mutexes, which no *prepare*
/// takes).
#[inline]
pub(crate) fn register_fork() {
    crate::fork::register(Rank::Resolve, &FORK);
}

/// Takes the crate set's lock before a fork.
///
/// # Safety
/// Only as [`FORK`]'s *prepare* (see [`ForkHandlers`]).
unsafe fn prepare_fork() {
    // Not through `dependencies_mut`: a fork handler does not register.
    let dependencies = DEPENDENCIES.write().unwrap_or_else(PoisonError::into_inner);
    // SAFETY: in *prepare*, with the lock just taken.
    unsafe { DEPENDENCIES_HELD.put(dependencies) };
}

/// Releases the crate set's lock after a fork.
///
/// # Safety
/// Only as [`FORK`]'s *after* (see [`ForkHandlers`]).
unsafe fn after_fork(_child: bool) {
    // SAFETY: guaranteed by the caller.
    drop(unsafe { DEPENDENCIES_HELD.take() });
}

/// [`Origin::of`]: where a function's code comes from, judged from its path.
pub(crate) fn classify(function: &str) -> Origin {
    let Some(krate) = crate_of(function) else {
        return Origin::Unknown;
    };
    if !function.contains("::") {
        return if krate.starts_with('_') || C_RUNTIME_SYMBOLS.contains(&krate) {
            Origin::Std
        } else {
            Origin::Unknown
        };
    }
    if STD_CRATES.contains(&krate) {
        Origin::Std
    } else if WEBSTACK_CRATES.contains(&krate) {
        Origin::Webstack
    } else if RUNTIME_CRATES.contains(&krate) {
        Origin::Runtime
    } else if dependencies().contains(krate) {
        Origin::Dependency
    } else {
        Origin::App
    }
}

/// [`classify`], refined by the source file: the standard library's sources
/// (`/rustc/<hash>/library/…`) are std, a Cargo registry's are a dependency
/// (and the crate is remembered as one).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) fn classify_with_file(function: &str, file: Option<&str>) -> Origin {
    let origin = classify(function);
    let Some(file) = file else {
        return origin;
    };
    if origin == Origin::App || origin == Origin::Unknown {
        if file.starts_with("/rustc/") || file.contains("/lib/rustlib/src/rust/library/") {
            return Origin::Std;
        }
        if file.contains("/.cargo/registry/") || file.contains("/.cargo/git/checkouts/") {
            if let Some(krate) = crate_of(function) {
                if !dependencies().contains(krate) {
                    dependencies_mut().insert(krate.to_owned());
                }
            }
            return Origin::Dependency;
        }
    }
    origin
}

/// The first path segment: the crate of `a::b`, of `<a::T as b::Tr>::f`, of
/// `<&a::T>::f`; or the whole name of a C symbol.
pub(crate) fn crate_of(function: &str) -> Option<&str> {
    let mut rest = function.trim_start();
    loop {
        // `strip_prefix`, not `trim_start_matches(&str)`: the latter builds a
        // substring searcher per call, which made classifying every frame of
        // a snapshot cost more than reading it. No two prefixes overlap, so
        // stripping each at most once per round until nothing changes gives
        // the same result.
        let trimmed = ["mut ", "dyn ", "impl ", "*const ", "*mut "]
            .iter()
            .fold(rest.trim_start_matches(['<', '&', '(', '[']), |s, p| {
                s.strip_prefix(p).unwrap_or(s)
            });
        if trimmed.len() == rest.len() {
            break;
        }
        rest = trimmed;
    }
    let end = rest
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.' || c == '$'))
        .unwrap_or(rest.len());
    let krate = &rest[..end];
    (!krate.is_empty()).then_some(krate)
}

/// A path as a person reads it: a registry crate's from its
/// `name-version/` directory (`tokio-1.54.1/src/runtime/driver.rs`), the
/// standard library's from its crate (`std/src/thread/local.rs`), the
/// program's own relative to `root` (`examples/demo.rs`). Other paths are
/// returned whole. Always a suffix of `path`.
pub(crate) fn short_path<'a>(path: &'a str, root: Option<&str>) -> &'a str {
    const LIBRARY: [&str; 2] = ["/lib/rustlib/src/rust/library/", "/library/"];
    if let Some(rest) = after_marker(path, "/registry/src/") {
        // `index.crates.io-<hash>/tokio-1.54.1/src/…`: skip the index.
        return match rest.split_once('/') {
            Some((index, krate)) if is_index_dir(index) => krate,
            _ => rest,
        };
    }
    if let Some(rest) = after_marker(path, "/git/checkouts/") {
        // `<repo>-<hash>/<rev>/…`
        let mut parts = rest.splitn(3, '/');
        if let (Some(_), Some(_), Some(inner)) = (parts.next(), parts.next(), parts.next()) {
            return inner;
        }
    }
    if path.starts_with("/rustc/") {
        for marker in LIBRARY {
            if let Some(rest) = after_marker(path, marker) {
                return rest;
            }
        }
    }
    if let Some(rest) = after_marker(path, LIBRARY[0]) {
        return rest;
    }
    if let Some(rest) = root
        .filter(|root| !root.is_empty() && *root != "/")
        .and_then(|root| path.strip_prefix(root.trim_end_matches('/')))
        .and_then(|rest| rest.strip_prefix('/'))
    {
        return rest;
    }
    path
}

/// `index.crates.io-1949cf8c6b5b557f`, `github.com-1ecc6299db9ec823`: a
/// registry's directory, named for its host and a 16-digit hash.
fn is_index_dir(name: &str) -> bool {
    name.rsplit_once('-').is_some_and(|(host, hash)| {
        !host.is_empty() && hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

fn after_marker<'a>(path: &'a str, marker: &str) -> Option<&'a str> {
    path.find(marker).map(|at| &path[at + marker.len()..])
}

/// The crate a function path names, for a documentation link: its first
/// path segment when one follows (`None` for C symbols and `<&mut F as
/// Tr>::f`, whose first segment is a type parameter).
pub(crate) fn crate_name(function: &str) -> Option<&str> {
    let krate = crate_of(function)?;
    let at = krate.as_ptr() as usize - function.as_ptr() as usize;
    function[at + krate.len()..]
        .starts_with("::")
        .then_some(krate)
        .filter(|k| !k.contains(['.', '$']))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crate_names() {
        assert_eq!(crate_name("app::f"), Some("app"));
        assert_eq!(crate_name("<app::Foo as core::Future>::poll"), Some("app"));
        assert_eq!(crate_name("<&mut F as core::Future>::poll"), None);
        assert_eq!(crate_name("clone3"), None);
        assert_eq!(crate_name("tokio::runtime::park"), Some("tokio"));
        assert_eq!(crate_of("clone3"), Some("clone3"));
    }

    #[test]
    fn tidy_paths() {
        assert_eq!(
            tidy("/w/webstack/../examples/demo.rs"),
            "/w/examples/demo.rs"
        );
        assert_eq!(tidy("webstack/../examples/demo.rs"), "examples/demo.rs");
        assert_eq!(tidy("../x/../y.rs"), "../y.rs");
        assert_eq!(tidy("/../x.rs"), "/../x.rs");
        assert!(matches!(tidy("src/lib.rs"), Cow::Borrowed(_)));
    }

    #[test]
    fn short_paths() {
        let registry = "/home/u/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/tokio-1.54.1/src/runtime/driver.rs";
        assert_eq!(
            short_path(registry, None),
            "tokio-1.54.1/src/runtime/driver.rs"
        );
        let git = "/home/u/.cargo/git/checkouts/hyper-0123abcd/5e6f7a8/src/proto/h1.rs";
        assert_eq!(short_path(git, None), "src/proto/h1.rs");
        let std = "/rustc/90b35a6239c3d8bdabc530a6a0816f7ff89a0aaf/library/std/src/thread/local.rs";
        assert_eq!(short_path(std, None), "std/src/thread/local.rs");
        let rustup = "/home/u/.rustup/toolchains/stable-x86_64-unknown-linux-gnu/lib/rustlib/src/rust/library/core/src/ops/function.rs";
        assert_eq!(short_path(rustup, None), "core/src/ops/function.rs");
        assert_eq!(
            short_path("/work/main/examples/demo.rs", Some("/work/main")),
            "examples/demo.rs"
        );
        assert_eq!(
            short_path("/work/main/examples/demo.rs", Some("/work/main/")),
            "examples/demo.rs"
        );
        assert_eq!(
            short_path("/work/mainline/x.rs", Some("/work/main")),
            "/work/mainline/x.rs"
        );
        assert_eq!(short_path("/etc/x.rs", Some("/")), "/etc/x.rs");
        assert_eq!(
            short_path("examples/demo.rs", Some("/work/main")),
            "examples/demo.rs"
        );
        assert_eq!(short_path("", None), "");
    }

    #[test]
    fn classify_paths() {
        assert_eq!(
            classify("std::sys::pal::unix::futex::futex_wait"),
            Origin::Std
        );
        assert_eq!(
            classify("<core::pin::Pin<P> as core::future::future::Future>::poll"),
            Origin::Std
        );
        assert_eq!(
            classify("tokio::runtime::park::Inner::park"),
            Origin::Runtime
        );
        assert_eq!(
            classify("webstack::native::collect::augment"),
            Origin::Webstack
        );
        assert_eq!(classify("__futex_abstimed_wait_common"), Origin::Std);
        assert_eq!(classify("start_thread"), Origin::Std);
        assert_eq!(classify("myapp::handlers::get"), Origin::App);
        assert_eq!(classify(""), Origin::Unknown);
    }
}
