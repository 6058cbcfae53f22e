//! The snapshot page's query string, parsed by hand so that every malformed
//! input gets a one-line 400 answer naming the parameter, never a panic.

use crate::group::{ParseSimilarityError, Similarity};
use crate::render::Format;
use crate::snapshot::{DEFAULT_MAXMEM, MIN_MAXMEM};

/// Named by the 400 answers to an unknown or malformed parameter name. It
/// lists the parameters of the first release, which clients match on, and
/// so leaves out `fold` (display only; a wrong value of it is answered
/// with its own rule).
const ALLOWED: &str = "augment, maxmem, similarity, format";

/// What a request asks for, after defaults and bounds are applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Params {
    pub(crate) augment: bool,
    pub(crate) maxmem: usize,
    pub(crate) similarity: Similarity,
    pub(crate) format: Format,
    /// Fold runs of std and runtime frames (HTML and text).
    pub(crate) fold: bool,
    /// What the answer is: the page in `format`, or a form of Go's
    /// goroutine profile.
    pub(crate) output: Output,
}

/// What a request is answered with. `format=pprof` is not a
/// [`Format`]: a `Format` renders to text, and its list is fixed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Output {
    /// The page, rendered in [`Params::format`].
    Page,
    /// Go's goroutine profile: gzip-compressed pprof protobuf (`debug=0`).
    #[cfg(feature = "pprof")]
    Pprof,
    /// Go's goroutine profile as counts text (`debug=1`).
    #[cfg(feature = "pprof")]
    Counts,
}

/// Values used when a request does not name a parameter, and the bounds on
/// `maxmem`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Defaults {
    pub(crate) params: Params,
    /// At least [`MIN_MAXMEM`].
    pub(crate) maxmem_cap: usize,
    /// The `maxmem` of every request, whatever it asks, when set.
    pub(crate) maxmem_forced: Option<usize>,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            params: Params {
                augment: true,
                maxmem: DEFAULT_MAXMEM,
                similarity: Similarity::default(),
                format: Format::default(),
                fold: true,
                output: Output::Page,
            },
            maxmem_cap: usize::MAX,
            maxmem_forced: None,
        }
    }
}

impl Defaults {
    /// The default parameters with the `maxmem` bounds applied.
    pub(crate) fn effective(&self) -> Params {
        Params {
            maxmem: self.bound_maxmem(self.params.maxmem),
            ..self.params
        }
    }

    fn bound_maxmem(&self, bytes: usize) -> usize {
        match self.maxmem_forced {
            Some(forced) => forced.max(MIN_MAXMEM),
            None => bytes.max(MIN_MAXMEM).min(self.maxmem_cap.max(MIN_MAXMEM)),
        }
    }
}

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
            Key::Format => crate::render::ParseFormatError.to_string(),
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

/// Parses a raw (still percent-encoded) query string.
///
/// # Errors
/// A one-line message naming the offending parameter and what it accepts.
pub(crate) fn parse(query: &str, defaults: &Defaults) -> Result<Params, String> {
    let mut params = defaults.effective();
    if query.is_empty() {
        return Ok(params);
    }
    let mut seen = [false; Key::ALL.len()];
    for piece in query.split('&') {
        if piece.is_empty() {
            return Err(format!("empty parameter in the query; allowed: {ALLOWED}"));
        }
        let (raw_key, raw_value) = piece.split_once('=').unwrap_or((piece, ""));
        let Some(name) = decode(raw_key) else {
            return Err(format!("malformed parameter name; allowed: {ALLOWED}"));
        };
        let Some(index) = Key::ALL.iter().position(|k| k.name() == name) else {
            return Err(format!(
                "unknown parameter {:?}; allowed: {ALLOWED}",
                shorten(&name)
            ));
        };
        let key = Key::ALL[index];
        if std::mem::replace(&mut seen[index], true) {
            return Err(format!(
                "{} given more than once; {}",
                key.name(),
                key.rule()
            ));
        }
        let value = decode(raw_value).ok_or_else(|| key.rule())?;
        match key {
            Key::Augment => params.augment = flag(&value).ok_or_else(|| key.rule())?,
            Key::Fold => params.fold = flag(&value).ok_or_else(|| key.rule())?,
            Key::Maxmem => {
                let bytes = (!value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| value.parse::<usize>().ok())
                    .flatten()
                    .ok_or_else(|| key.rule())?;
                params.maxmem = defaults.bound_maxmem(bytes);
            }
            Key::Similarity => params.similarity = value.parse().map_err(|_| key.rule())?,
            #[cfg(feature = "pprof")]
            Key::Format if value == "pprof" => params.output = Output::Pprof,
            Key::Format => params.format = value.parse().map_err(|_| key.rule())?,
        }
    }
    Ok(params)
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

    fn ok(query: &str) -> Params {
        parse(query, &Defaults::default()).unwrap()
    }

    fn err(query: &str) -> String {
        parse(query, &Defaults::default()).unwrap_err()
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
    fn applies_defaults_and_bounds() {
        assert_eq!(ok(""), Defaults::default().params);
        assert_eq!(ok("maxmem=0").maxmem, MIN_MAXMEM);
        assert_eq!(ok("maxmem=1048577").maxmem, 1_048_577);
        assert_eq!(ok("maxmem=%31%30%34%38%35%37%37").maxmem, 1_048_577);
        assert_eq!(ok(&format!("maxmem={}", usize::MAX)).maxmem, usize::MAX);
        let capped = Defaults {
            maxmem_cap: 2 << 20,
            ..Defaults::default()
        };
        assert_eq!(parse("", &capped).unwrap().maxmem, 2 << 20);
        assert_eq!(parse("maxmem=99999999", &capped).unwrap().maxmem, 2 << 20);
        assert_eq!(parse("maxmem=5", &capped).unwrap().maxmem, MIN_MAXMEM);
        let tiny_cap = Defaults {
            maxmem_cap: 10,
            ..Defaults::default()
        };
        assert_eq!(parse("", &tiny_cap).unwrap().maxmem, MIN_MAXMEM);
    }

    #[test]
    fn a_forced_maxmem_wins_over_the_request_default_and_cap() {
        let forced = Defaults {
            maxmem_forced: Some(32 << 20),
            maxmem_cap: 2 << 20,
            ..Defaults::default()
        };
        for query in [
            "",
            "maxmem=0",
            "maxmem=1048576",
            "maxmem=999999999999",
            "format=json",
        ] {
            assert_eq!(parse(query, &forced).unwrap().maxmem, 32 << 20, "{query}");
        }
        // The value is still checked, as every parameter is.
        assert!(parse("maxmem=lots", &forced)
            .unwrap_err()
            .starts_with("maxmem must be a number of bytes"));
        let tiny = Defaults {
            maxmem_forced: Some(10),
            ..Defaults::default()
        };
        assert_eq!(parse("maxmem=99999999", &tiny).unwrap().maxmem, MIN_MAXMEM);
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
            if let Err(message) = parse(&query, &Defaults::default()) {
                proptest::prop_assert!(well_formed_error(&message), "{query:?}: {message}");
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
            if let Err(message) = parse(&query, &Defaults::default()) {
                proptest::prop_assert!(well_formed_error(&message), "{query:?}: {message}");
            }
        }

        #[test]
        fn near_valid_queries(
            pairs in proptest::collection::vec(
                (
                    "augment|maxmem|similarity|format|%61ugment|foo|",
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
            match parse(&query, &Defaults::default()) {
                Ok(params) => proptest::prop_assert!(params.maxmem >= MIN_MAXMEM),
                Err(message) => {
                    proptest::prop_assert!(well_formed_error(&message), "{query:?}: {message}")
                }
            }
        }
    }
}
