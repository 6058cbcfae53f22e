//! The checks every served page must pass: HTML well formed and
//! script-free, JSON following the documented schema with consistent totals,
//! text starting with its header line.

/// Elements without an end tag in HTML.
const VOID: [&str; 6] = ["meta", "br", "img", "hr", "input", "link"];

/// Checks that `html` is a whole page (doctype to `</html>`), contains no
/// `<script` in any letter case, and that its tags nest: every start tag is
/// closed by the matching end tag, so program data that broke out of its
/// escaping (`<b>`, `</td>`) would be caught.
pub fn check_html(html: &str) -> Result<(), String> {
    if !html.starts_with("<!DOCTYPE html>") {
        return Err(format!("does not start with a doctype: {:?}", head(html)));
    }
    if !html.trim_end().ends_with("</html>") {
        return Err(format!("does not end with </html>: {:?}", tail(html)));
    }
    if html.to_ascii_lowercase().contains("<script") {
        return Err("contains <script".into());
    }
    if let Some(c) = html
        .chars()
        .find(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r'))
    {
        return Err(format!("contains the control character {c:?}"));
    }
    let mut open: Vec<&str> = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        rest = &rest[start + 1..];
        let end = rest
            .find('>')
            .ok_or_else(|| "unterminated tag".to_owned())?;
        let tag = &rest[..end];
        rest = &rest[end + 1..];
        if tag.starts_with('!') {
            continue;
        }
        if let Some(name) = tag.strip_prefix('/') {
            let name = name.trim();
            match open.pop() {
                Some(top) if top == name => {}
                top => return Err(format!("</{name}> closes {top:?}")),
            }
            continue;
        }
        let name = tag
            .split(|c: char| c.is_whitespace() || c == '/')
            .next()
            .unwrap_or_default();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(format!("malformed tag <{}>", head(tag)));
        }
        if name == "style" {
            let close = rest
                .find("</style>")
                .ok_or_else(|| "unclosed <style>".to_owned())?;
            rest = &rest[close + "</style>".len()..];
            continue;
        }
        if !VOID.contains(&name) && !tag.ends_with('/') {
            open.push(name);
        }
    }
    if !open.is_empty() {
        return Err(format!("unclosed tags: {open:?}"));
    }
    Ok(())
}

fn head(s: &str) -> &str {
    let end = s.char_indices().nth(80).map_or(s.len(), |(i, _)| i);
    &s[..end]
}

fn tail(s: &str) -> &str {
    let chars = s.chars().count();
    let start = s
        .char_indices()
        .nth(chars.saturating_sub(80))
        .map_or(0, |(i, _)| i);
    &s[start..]
}

/// What a JSON snapshot document says, once checked against the schema.
#[derive(Debug, Default)]
pub struct JsonSummary {
    pub threads: u64,
    pub tasks: u64,
    pub buckets: u64,
    pub left_out: u64,
    /// Every member name, with its bucket's kind (`thread` or `task`).
    pub names: Vec<(String, String)>,
}

impl JsonSummary {
    pub fn has_thread(&self, name: &str) -> bool {
        self.names.iter().any(|(k, n)| k == "thread" && n == name)
    }
}

fn field<'a>(v: &'a serde_json::Value, path: &str) -> Result<&'a serde_json::Value, String> {
    path.split('.').try_fold(v, |v, key| {
        v.get(key).ok_or_else(|| format!("missing field {path}"))
    })
}

fn uint(v: &serde_json::Value, path: &str) -> Result<u64, String> {
    field(v, path)?
        .as_u64()
        .ok_or_else(|| format!("{path} is not an unsigned integer"))
}

fn string<'a>(v: &'a serde_json::Value, path: &str) -> Result<&'a str, String> {
    field(v, path)?
        .as_str()
        .ok_or_else(|| format!("{path} is not a string"))
}

fn array<'a>(v: &'a serde_json::Value, path: &str) -> Result<&'a Vec<serde_json::Value>, String> {
    field(v, path)?
        .as_array()
        .ok_or_else(|| format!("{path} is not an array"))
}

/// Parses `body` and checks it against the schema documented in
/// `webstack::render::json` (version, similarity, totals, buckets with
/// count/kind/state/ids/names/frames), and that it is consistent: the bucket
/// counts add up to the captured threads and tasks, each bucket lists
/// `count` ids and names, and the left-out total is the sum of its parts.
pub fn check_json(body: &str) -> Result<JsonSummary, String> {
    let doc: serde_json::Value =
        serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))?;
    if uint(&doc, "version")? != u64::from(webstack::JSON_VERSION) {
        return Err("wrong version".into());
    }
    let similarity = string(&doc, "similarity")?;
    if !webstack::Similarity::ALL
        .iter()
        .any(|s| s.as_str() == similarity)
    {
        return Err(format!("unknown similarity {similarity:?}"));
    }
    let mut summary = JsonSummary {
        threads: uint(&doc, "totals.threads")?,
        tasks: uint(&doc, "totals.tasks")?,
        buckets: uint(&doc, "totals.buckets")?,
        left_out: uint(&doc, "totals.left_out")?,
        names: Vec::new(),
    };
    let parts = uint(&doc, "totals.left_out_threads")? + uint(&doc, "totals.left_out_tasks")?;
    if parts != summary.left_out {
        return Err(format!(
            "left_out {} but its parts add to {parts}",
            summary.left_out
        ));
    }
    let buckets = array(&doc, "buckets")?;
    if buckets.len() as u64 != summary.buckets {
        return Err(format!(
            "totals.buckets {} but {} buckets",
            summary.buckets,
            buckets.len()
        ));
    }
    let (mut threads, mut tasks) = (0, 0);
    for b in buckets {
        let count = uint(b, "count")?;
        let kind = string(b, "kind")?;
        string(b, "state")?;
        match kind {
            "thread" => threads += count,
            "task" => tasks += count,
            other => return Err(format!("unknown kind {other:?}")),
        }
        let ids = array(b, "ids")?;
        let names = array(b, "names")?;
        if ids.len() as u64 != count || names.len() as u64 != count {
            return Err(format!(
                "bucket of {count} lists {} ids and {} names",
                ids.len(),
                names.len()
            ));
        }
        if ids.iter().any(|id| id.as_u64().is_none()) {
            return Err("an id is not an integer".into());
        }
        for name in names {
            let name = name.as_str().ok_or("a name is not a string")?;
            summary.names.push((kind.to_owned(), name.to_owned()));
        }
        for frame in array(b, "frames")? {
            string(frame, "function")?;
            string(frame, "file")?;
            uint(frame, "line")?;
            for arg in array(frame, "args")? {
                string(arg, "name")?;
                string(arg, "type")?;
                string(arg, "value")?;
            }
        }
    }
    if (threads, tasks) != (summary.threads, summary.tasks) {
        return Err(format!(
            "buckets hold {threads} threads and {tasks} tasks, totals say {} and {}",
            summary.threads, summary.tasks
        ));
    }
    Ok(summary)
}

/// Checks the text form: non-empty, starting with its header line, whose
/// counts are numbers.
pub fn check_text(text: &str) -> Result<(), String> {
    let first = text.lines().next().unwrap_or_default();
    if !first.starts_with("webstack ") || !first.contains(" left out") {
        return Err(format!("unexpected first line {:?}", head(first)));
    }
    if let Some(c) = text
        .chars()
        .find(|c| c.is_control() && !matches!(c, '\n' | '\t'))
    {
        return Err(format!("contains the control character {c:?}"));
    }
    Ok(())
}
