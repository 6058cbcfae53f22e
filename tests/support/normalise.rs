//! Normalisation of rendered output from real captures, so that it can be
//! compared as a whole.

/// Replaces what changes between runs in rendered text from a real capture:
/// line numbers after `file:`, hex addresses, durations in brackets.
pub fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if let Some(hex) = rest.strip_prefix("0x") {
            let n = hex.bytes().take_while(u8::is_ascii_hexdigit).count();
            if n > 0 {
                out.push_str("ADDR");
                rest = &hex[n..];
                continue;
            }
        }
        if c == ':' && rest[1..].starts_with(|d: char| d.is_ascii_digit()) {
            let n = rest[1..].bytes().take_while(u8::is_ascii_digit).count();
            out.push_str(":LINE");
            rest = &rest[1 + n..];
            continue;
        }
        if c == '[' {
            if let Some(end) = rest.find(']') {
                let inside = &rest[1..end];
                let is_duration =
                    inside.ends_with(" ms") || inside.ends_with(" s") || inside.ends_with(" min");
                if is_duration && !inside.contains('[') {
                    out.push_str("[DURATION]");
                    rest = &rest[end + 1..];
                    continue;
                }
            }
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}
