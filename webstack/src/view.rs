//! What one page shows and how: the [`View`], the one type that holds the
//! page's settings (`augment`, `maxmem`, `similarity`, `format`, `fold`),
//! carries their defaults, parses itself from a query string
//! ([`View::from_query`]) and prints itself into the page's links
//! ([`View::query`]).
//!
//! Every way to get a page takes one: the served page parses it from the
//! request ([`crate::serve`]), [`dump`](crate::dump) and the panic and
//! signal dumps take it in [`DumpOptions`](crate::DumpOptions), and
//! [`render`](crate::render::render) renders in its format and fold.
//!
//! A new page parameter is one field here, its default, one [`Key`] with
//! its name and rule, one arm of the parser and one of [`View::query`].

use std::fmt;
use std::str::FromStr;

use crate::group::{ParseSimilarityError, Similarity};
use crate::snapshot::{Options, DEFAULT_MAXMEM, MIN_MAXMEM};

/// The page's settings, with the defaults of a request that names none.
///
/// ```
/// use webstack::render::Format;
/// use webstack::{Similarity, View};
///
/// let view = View::from_query("augment=0&format=text&maxmem=0")?;
/// assert_eq!(view, View::default().augment(false).format(Format::Text).maxmem(1 << 20));
/// assert_eq!(view.query(), "?augment=0&maxmem=1048576&similarity=anypointer&format=text");
///
/// let error = View::from_query("similarity=close").unwrap_err();
/// assert_eq!(
///     error.to_string(),
///     "similarity must be one of: exactflags, exactlines, anypointer, anyvalue"
/// );
/// # Ok::<(), webstack::QueryError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct View {
    /// `augment`: also capture native stacks of every thread, merged with
    /// the instrumented frames, with kernel states and source lines (Linux;
    /// see [`crate::native`]). Default: `true`.
    pub augment: bool,
    /// `maxmem`: bytes one snapshot may use ([`Options::maxmem`]). Default:
    /// [`DEFAULT_MAXMEM`] (64 MiB); values below [`MIN_MAXMEM`] (1 MiB) are
    /// raised to it.
    pub maxmem: usize,
    /// `similarity`: how alike routines must be to share a bucket. Default:
    /// [`Similarity::AnyPointer`].
    pub similarity: Similarity,
    /// `format`: the form of the page. Default: [`Format::Html`].
    pub format: Format,
    /// `fold`: in HTML and text, fold recursion (three or more levels of
    /// one function in a row, see [`render`](crate::render#recursion)) and
    /// two or more std, runtime and webstack frames in a row into one line
    /// (text) or a closed section (HTML); off shows every frame. JSON always
    /// has every frame. Default: `true`.
    pub fold: bool,
}

impl Default for View {
    fn default() -> Self {
        View {
            augment: true,
            maxmem: DEFAULT_MAXMEM,
            similarity: Similarity::default(),
            format: Format::default(),
            fold: true,
        }
    }
}

impl View {
    /// Sets [`View::augment`].
    pub fn augment(mut self, augment: bool) -> Self {
        self.augment = augment;
        self
    }

    /// Sets [`View::maxmem`].
    pub fn maxmem(mut self, bytes: usize) -> Self {
        self.maxmem = bytes;
        self
    }

    /// Sets [`View::similarity`].
    pub fn similarity(mut self, similarity: Similarity) -> Self {
        self.similarity = similarity;
        self
    }

    /// Sets [`View::format`].
    pub fn format(mut self, format: Format) -> Self {
        self.format = format;
        self
    }

    /// Sets [`View::fold`].
    pub fn fold(mut self, fold: bool) -> Self {
        self.fold = fold;
        self
    }

    /// The view a raw (still percent-encoded) query string asks for, the
    /// [default](View::default) where it names nothing.
    ///
    /// # Errors
    /// A one-line message naming the offending parameter and what it
    /// accepts: an unknown, repeated or empty parameter, a bad escape, or a
    /// value outside the parameter's rule.
    pub fn from_query(query: &str) -> Result<View, QueryError> {
        View::default().with_query(query)
    }

    /// This view with what `query` names changed, as
    /// [`from_query`](View::from_query) reads it (a service's defaults are
    /// such a base).
    ///
    /// # Errors
    /// As [`from_query`](View::from_query).
    pub fn with_query(self, query: &str) -> Result<View, QueryError> {
        match parse(query, self)? {
            Asked::View(view) => Ok(view),
            #[cfg(feature = "pprof")]
            Asked::Pprof(_) => Err(QueryError(Key::Format.rule())),
        }
    }

    /// The query string that asks for this view: `?augment=…&maxmem=…&
    /// similarity=…`, then `format` unless it is HTML and `fold` unless it
    /// is on. The page's links are these, relative to the page itself, so
    /// they hold behind a proxy that mounts it under another path.
    pub fn query(&self) -> String {
        let mut query = format!(
            "?augment={}&maxmem={}&similarity={}",
            u8::from(self.augment),
            self.maxmem,
            self.similarity.as_str()
        );
        if self.format != Format::Html {
            query.push_str("&format=");
            query.push_str(self.format.as_str());
        }
        if !self.fold {
            query.push_str("&fold=0");
        }
        query
    }

    /// How to capture the snapshot of this view: its `augment` and
    /// `maxmem`.
    pub fn options(&self) -> Options {
        Options::default().augment(self.augment).maxmem(self.maxmem)
    }
}

/// Output format of a [`View`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Format {
    /// A self-contained HTML page. The default.
    #[default]
    Html,
    /// JSON, see [`json`](crate::render::json).
    Json,
    /// Plain text, see [`text`](crate::render::text).
    Text,
}

impl Format {
    /// Every format.
    pub const ALL: [Format; 3] = [Format::Html, Format::Json, Format::Text];

    /// The lowercase name used in query strings: `html`, `json` or `text`.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Html => "html",
            Format::Json => "json",
            Format::Text => "text",
        }
    }

    /// The HTTP `Content-Type` of this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Html => "text/html; charset=utf-8",
            Format::Json => "application/json",
            Format::Text => "text/plain; charset=utf-8",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing a [`Format`] from anything but one of its lowercase
/// names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParseFormatError;

impl fmt::Display for ParseFormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("format must be one of: html, json, text")
    }
}

impl std::error::Error for ParseFormatError {}

impl FromStr for Format {
    type Err = ParseFormatError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Format::ALL
            .into_iter()
            .find(|format| format.as_str() == s)
            .ok_or(ParseFormatError)
    }
}

/// A query string a [`View`] cannot be read from: one line naming the
/// parameter and what it accepts (the served page answers it with `400`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryError(String);

impl QueryError {
    /// The one-line message.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for QueryError {}

/// What a page query asks for: a view, or (`format=pprof`, which is not a
/// [`Format`]: its output is binary) Go's goroutine profile, of the
/// snapshot the view's `augment` and `maxmem` describe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Asked {
    View(View),
    #[cfg(feature = "pprof")]
    Pprof(View),
}

/// Named by the errors about a parameter's name. It lists the parameters
/// of the first release, which clients match on, and so leaves out `fold`
/// (display only; a wrong value of it is answered with its own rule).
const ALLOWED: &str = "augment, maxmem, similarity, format";

/// One parameter of the query.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Key {
    Augment,
    Maxmem,
    Similarity,
    Format,
    Fold,
}

impl Key {
    const ALL: [Key; 5] = [
        Key::Augment,
        Key::Maxmem,
        Key::Similarity,
        Key::Format,
        Key::Fold,
    ];

    fn name(self) -> &'static str {
        match self {
            Key::Augment => "augment",
            Key::Maxmem => "maxmem",
            Key::Similarity => "similarity",
            Key::Format => "format",
            Key::Fold => "fold",
        }
    }

    /// The one-line rule shown when the parameter's value is wrong.
    fn rule(self) -> String {
        match self {
            Key::Augment => "augment must be 0 or 1".to_owned(),
            Key::Maxmem => format!(
                "maxmem must be a number of bytes from 0 to {}; values below {MIN_MAXMEM} are raised to it",
                usize::MAX
            ),
            Key::Similarity => ParseSimilarityError.to_string(),
            Key::Format => ParseFormatError.to_string(),
            Key::Fold => "fold must be 0 or 1".to_owned(),
        }
    }
}

/// `0` or `1`.
fn flag(value: &str) -> Option<bool> {
    match value {
        "0" => Some(false),
        "1" => Some(true),
        _ => None,
    }
}

/// Parses a raw (still percent-encoded) page query over `base`; `maxmem`
/// is raised to [`MIN_MAXMEM`], the given one and `base`'s alike.
pub(crate) fn parse(query: &str, base: View) -> Result<Asked, QueryError> {
    let mut view = View {
        maxmem: base.maxmem.max(MIN_MAXMEM),
        ..base
    };
    #[cfg(feature = "pprof")]
    let mut pprof = false;
    let error = |message: String| Err(QueryError(message));
    let mut seen = [false; Key::ALL.len()];
    for piece in query.split('&').filter(|_| !query.is_empty()) {
        if piece.is_empty() {
            return error(format!("empty parameter in the query; allowed: {ALLOWED}"));
        }
        let (raw_key, raw_value) = piece.split_once('=').unwrap_or((piece, ""));
        let Some(name) = decode(raw_key) else {
            return error(format!("malformed parameter name; allowed: {ALLOWED}"));
        };
        let Some(index) = Key::ALL.iter().position(|k| k.name() == name) else {
            return error(format!(
                "unknown parameter {:?}; allowed: {ALLOWED}",
                shorten(&name)
            ));
        };
        let key = Key::ALL[index];
        if std::mem::replace(&mut seen[index], true) {
            return error(format!(
                "{} given more than once; {}",
                key.name(),
                key.rule()
            ));
        }
        let rule = || QueryError(key.rule());
        let value = decode(raw_value).ok_or_else(rule)?;
        match key {
            Key::Augment => view.augment = flag(&value).ok_or_else(rule)?,
            Key::Fold => view.fold = flag(&value).ok_or_else(rule)?,
            Key::Maxmem => {
                let bytes = (!value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| value.parse::<usize>().ok())
                    .flatten()
                    .ok_or_else(rule)?;
                view.maxmem = bytes.max(MIN_MAXMEM);
            }
            Key::Similarity => view.similarity = value.parse().map_err(|_| rule())?,
            #[cfg(feature = "pprof")]
            Key::Format if value == "pprof" => pprof = true,
            Key::Format => view.format = value.parse().map_err(|_| rule())?,
        }
    }
    #[cfg(feature = "pprof")]
    if pprof {
        return Ok(Asked::Pprof(view));
    }
    Ok(Asked::View(view))
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` a
/// byte. `None` for a broken escape or bytes that are not UTF-8.
pub(crate) fn decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hi = (hex[0] as char).to_digit(16)?;
                let lo = (hex[1] as char).to_digit(16)?;
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Keeps an echoed unknown name short.
pub(crate) fn shorten(name: &str) -> String {
    const MAX: usize = 40;
    match name.char_indices().nth(MAX) {
        Some((end, _)) => format!("{}…", &name[..end]),
        None => name.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(query: &str) -> View {
        View::from_query(query).unwrap()
    }

    fn err(query: &str) -> String {
        View::from_query(query).unwrap_err().0
    }

    #[test]
    fn formats_parse() {
        assert_eq!("json".parse(), Ok(Format::Json));
        assert_eq!("JSON".parse::<Format>(), Err(ParseFormatError));
        assert_eq!(
            ParseFormatError.to_string(),
            "format must be one of: html, json, text"
        );
    }

    #[test]
    fn decodes() {
        assert_eq!(decode("a%20b+c").as_deref(), Some("a b c"));
        assert_eq!(decode("%41%6a").as_deref(), Some("Aj"));
        assert_eq!(decode("%e2%82%AC").as_deref(), Some("€"));
        assert_eq!(decode("%"), None);
        assert_eq!(decode("%4"), None);
        assert_eq!(decode("%zz"), None);
        assert_eq!(decode("%ff"), None);
        assert_eq!(decode("%c3"), None);
    }

    #[test]
    fn applies_defaults_and_raises_maxmem() {
        assert_eq!(ok(""), View::default());
        assert_eq!(ok("maxmem=0").maxmem, MIN_MAXMEM);
        assert_eq!(ok("maxmem=1048577").maxmem, 1_048_577);
        assert_eq!(ok("maxmem=%31%30%34%38%35%37%37").maxmem, 1_048_577);
        assert_eq!(ok(&format!("maxmem={}", usize::MAX)).maxmem, usize::MAX);
        let small = View::default().maxmem(5).with_query("").unwrap();
        assert_eq!(small.maxmem, MIN_MAXMEM);
        let base = View::default().augment(false).format(Format::Json);
        assert_eq!(base.with_query("fold=0").unwrap(), base.fold(false));
    }

    #[test]
    fn fold_is_a_flag() {
        assert!(ok("").fold);
        assert!(!ok("fold=0").fold);
        assert!(ok("fold=1&format=text").fold);
        assert_eq!(err("fold=yes"), "fold must be 0 or 1");
        assert_eq!(
            err("fold=0&fold=0"),
            "fold given more than once; fold must be 0 or 1"
        );
    }

    #[test]
    fn pprof_is_a_page_answer_not_a_view() {
        #[cfg(feature = "pprof")]
        assert_eq!(
            parse("format=pprof&augment=0", View::default()),
            Ok(Asked::Pprof(View::default().augment(false)))
        );
        assert_eq!(
            err("format=pprof"),
            "format must be one of: html, json, text"
        );
    }

    /// A view printed into a link reads back as itself, whatever its values.
    #[test]
    fn a_query_reads_back_as_its_view() {
        for augment in [false, true] {
            for fold in [false, true] {
                for similarity in Similarity::ALL {
                    for format in Format::ALL {
                        let view = View::default()
                            .augment(augment)
                            .fold(fold)
                            .similarity(similarity)
                            .format(format)
                            .maxmem(3 << 20);
                        let query = view.query();
                        assert_eq!(ok(query.strip_prefix('?').unwrap()), view, "{query}");
                    }
                }
            }
        }
    }

    // Each message, case by case, through the answer a client gets:
    // `tests/serve.rs`, `malformed_parameters_answer_400_naming_the_parameter`.

    /// Every error names a parameter (or says the name is bad) and lists
    /// what is allowed.
    fn well_formed_error(message: &str) -> bool {
        let named = Key::ALL.iter().any(|k| message.starts_with(k.name()));
        let about_name = [
            "unknown parameter ",
            "empty parameter",
            "malformed parameter name",
        ]
        .iter()
        .any(|p| message.starts_with(p))
            && message.ends_with(ALLOWED);
        (named || about_name) && !message.contains('\n')
    }

    proptest::proptest! {
        // Thousands of cases each: parsing is microseconds.
        #![proptest_config(proptest::test_runner::Config::with_cases(4000))]

        #[test]
        fn any_input_parses_or_names_the_problem(query in "\\PC{0,80}") {
            if let Err(message) = View::from_query(&query) {
                proptest::prop_assert!(well_formed_error(&message.0), "{query:?}: {message}");
            }
        }

        /// Arbitrary bytes, as a client would send them: printable ASCII as
        /// is, everything else (non-UTF-8 included) percent-encoded.
        #[test]
        fn arbitrary_bytes_parse_or_name_the_problem(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..120)
        ) {
            let query: String = bytes
                .iter()
                .map(|&b| {
                    if b.is_ascii_graphic() {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect();
            if let Err(message) = View::from_query(&query) {
                proptest::prop_assert!(well_formed_error(&message.0), "{query:?}: {message}");
            }
        }

        #[test]
        fn near_valid_queries(
            pairs in proptest::collection::vec(
                (
                    "augment|maxmem|similarity|format|fold|%61ugment|foo|",
                    "0|1|2|-1|\\+1|%31|%2B1|1e3|0x10|anyvalue|ANYVALUE|json|html|text|\
                     1048575|99999999999999999999999|18446744073709551616|%ff|%|%zz|%C3%A9|",
                ),
                0..6,
            )
        ) {
            let query = pairs
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("&");
            match View::from_query(&query) {
                Ok(view) => proptest::prop_assert!(view.maxmem >= MIN_MAXMEM),
                Err(message) => {
                    proptest::prop_assert!(well_formed_error(&message.0), "{query:?}: {message}")
                }
            }
        }
    }
}
