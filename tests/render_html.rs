//! The HTML page: bucket blocks compared as whole strings, folding of
//! runtime frames, escaping of hostile names and values, the links that
//! switch similarity and augment, and a page from a real capture.

use pretty_assertions::assert_eq;
use support::model::{arg, elsewhere, frame, sample, secs, snapshot, task, thread};
use webstack::render::{render, Format};
use webstack::View;
use webstack::{Buckets, Options, Similarity, Snapshot, Value};

fn html(snap: &Snapshot, similarity: Similarity, view: &View) -> String {
    let buckets = Buckets::aggregate(snap, similarity);
    render(snap, &buckets, &view.format(Format::Html)).unwrap()
}

/// The `n`th bucket's `<section>`, from 1.
fn section(html: &str, n: usize) -> &str {
    let start = html
        .find(&format!("<section class=\"bucket\" id=\"b{n}\">"))
        .or_else(|| html.find(&format!("<section class=\"bucket serving\" id=\"b{n}\">")))
        .unwrap();
    let end = start + html[start..].find("</section>").unwrap() + "</section>".len();
    &html[start..end]
}

#[test]
fn merged_bucket_block() {
    let queue = 0u8;
    let page = html(&sample(&queue), Similarity::AnyValue, &View::default());
    assert_eq!(
        section(&page, 2),
        r#"<section class="bucket" id="b2">
<h2><span class="count">3</span> × task <span class="state">idle</span> <span class="dur">[2~5 s]</span></h2>
<p class="members"><span class="rname">conn</span> <span class="ids">5, 6, 7</span></p>
<p class="created">spawned by <span class="o-app name">app::main</span> at src&#x2F;main.rs:40</p>
<div class="scroll"><table>
<thead><tr><th>#</th><th>crate</th><th>file:line</th><th>function</th></tr></thead>
<tbody>
<tr class="o-app">
<td class="idx">0</td>
<td class="crate">app</td>
<td class="loc">src&#x2F;app.rs:17</td>
<td class="fn"><abbr class="mk" title="app">app</abbr> <span class="name">app::leaf</span>(<span class="args"><span class="arg">n: <span class="ty">u32</span> = <span class="v differs">*</span></span>, <span class="arg">rx: <span class="ty">&amp;Receiver&lt;()&gt;</span> = <span class="v">#1</span></span></span>)</td>
</tr>
<tr class="o-app">
<td class="idx">1</td>
<td class="crate">app</td>
<td class="loc">src&#x2F;app.rs:22</td>
<td class="fn"><abbr class="mk" title="app">app</abbr> <span class="name">app::root</span>(<span class="args"><span class="arg">name: <span class="ty">&amp;str</span> = <span class="v">&quot;alice&quot;</span></span></span>)</td>
</tr>
</tbody></table></div>
</section>"#
    );
}

#[test]
fn runtime_and_std_frames_are_folded() {
    let queue = 0u8;
    let page = html(&sample(&queue), Similarity::AnyValue, &View::default());
    let serving = section(&page, 1);
    assert!(serving.starts_with(r#"<section class="bucket serving" id="b1">"#));
    assert!(serving.contains(r#"<span class="note">serving this request</span>"#));
    let (shown, folded) = serving.split_once("<details>").unwrap();
    // The application's and dependencies' frames stay visible…
    assert!(shown.contains(r#"<span class="name">app::handler</span>"#));
    assert!(shown.contains(
        r#"<td class="crate"><a href="https:&#x2F;&#x2F;docs.rs&#x2F;serde_json">serde_json</a></td>"#
    ));
    assert!(shown.contains(r#"<abbr class="mk" title="dependency">dep</abbr>"#));
    // …runtime and std frames are behind one fold, linked to their docs.
    assert!(folded.starts_with("<summary>3 runtime and std frames</summary>"));
    assert!(folded.contains(r#"<abbr class="mk" title="runtime">rt</abbr> <span class="name">tokio::runtime::task::raw::poll</span>"#));
    assert!(
        folded.contains(r#"<a href="https:&#x2F;&#x2F;doc.rust-lang.org&#x2F;std&#x2F;">std</a>"#)
    );
    assert!(folded.contains(r#"<span class="addr">0x1234</span>"#));
    assert_eq!(serving.matches("<details>").count(), 1);
}

#[test]
fn hostile_names_and_values_are_escaped_and_bounded() {
    let evil = "<script>alert('x')</script>\"\u{7}";
    let long_name = format!("{evil}{}", "n".repeat(400));
    let mut t = thread(
        1,
        &long_name,
        5,
        secs(1),
        vec![frame(
            "app::<impl app::Foo<T>>::get",
            3,
            vec![arg("key", "&str", Value::str("<script>\"&'</script>"))],
        )],
    );
    t.state = webstack::State::Native("<img src=x onerror=alert(1)>".into());
    let snap = snapshot(vec![
        t,
        task(2, "<b>task</b>", secs(1), vec![frame("app::f", 1, vec![])]),
    ]);
    let page = html(&snap, Similarity::AnyPointer, &View::default());
    assert!(!page.contains("<script"), "{page}");
    assert!(!page.contains("<img"));
    assert!(!page.contains("<b>task"));
    assert!(!page.contains('\u{7}'));

    let name = format!(
        "&lt;script&gt;alert(&#x27;x&#x27;)&lt;&#x2F;script&gt;&quot;\\u{{7}}{}…",
        "n".repeat(200 - evil.chars().count())
    );
    assert!(
        page.contains(&format!(
            r#"<span class="rname">{name}</span> <span class="ids">1</span>"#
        )),
        "{page}"
    );
    assert!(page.contains(
        r#"= <span class="v">&quot;&lt;script&gt;\&quot;&amp;&#x27;&lt;&#x2F;script&gt;&quot;</span>"#
    ));
    assert!(page.contains(r#"<span class="name">app::&lt;impl app::Foo&lt;T&gt;&gt;::get</span>"#));
    assert!(page.contains(r#"<span class="state">&lt;img src=x onerror=alert(1)&gt;</span>"#));
    assert!(page.contains(r#"<a href="?augment=1&amp;maxmem=67108864&amp;similarity=exactflags">"#));
}

#[test]
fn links_switch_similarity_augment_and_format() {
    let queue = 0u8;
    let view = View::default()
        .augment(false)
        .maxmem(2 << 20)
        .similarity(Similarity::ExactLines)
        .fold(false);
    let page = html(&sample(&queue), Similarity::ExactLines, &view);
    let nav = &page[page.find("<nav>").unwrap()..page.find("</nav>").unwrap() + 6];
    // Relative to the page: they hold wherever a proxy mounts it.
    let q = |rest: &str| format!("?augment={rest}");
    assert_eq!(
        nav,
        format!(
            r#"<nav>
<span class="label">similarity:</span>
<a href="{}">exactflags</a>
<strong aria-current="page">exactlines</strong>
<a href="{}">anypointer</a>
<a href="{}">anyvalue</a>
· <a href="{}">with native stacks</a>
· <span class="label">as</span> <a href="{}">json</a> <a href="{}">text</a>
</nav>"#,
            q("0&amp;maxmem=2097152&amp;similarity=exactflags&amp;fold=0"),
            q("0&amp;maxmem=2097152&amp;similarity=anypointer&amp;fold=0"),
            q("0&amp;maxmem=2097152&amp;similarity=anyvalue&amp;fold=0"),
            q("1&amp;maxmem=2097152&amp;similarity=exactlines&amp;fold=0"),
            q("0&amp;maxmem=2097152&amp;similarity=exactlines&amp;format=json&amp;fold=0"),
            q("0&amp;maxmem=2097152&amp;similarity=exactlines&amp;format=text&amp;fold=0"),
        )
    );
    assert_eq!(
        view.similarity(Similarity::AnyValue)
            .format(Format::Json)
            .query(),
        "?augment=0&maxmem=2097152&similarity=anyvalue&format=json&fold=0"
    );
}

#[test]
fn self_contained_page_with_totals_legend_and_metadata() {
    let queue = 0u8;
    let mut snap = sample(&queue);
    snap.left_out.tasks = 4;
    let page = html(&snap, Similarity::AnyPointer, &View::default());
    assert!(page.starts_with("<!DOCTYPE html>\n<html lang=\"en\">"));
    assert!(
        page.contains(r#"<meta name="viewport" content="width=device-width, initial-scale=1">"#)
    );
    assert!(page.contains("<style>") && page.contains("@media (prefers-color-scheme: dark)"));
    // Only inline style: nothing for a `default-src 'none'` CSP to block.
    for banned in ["<script", "<link", "src=", "@import", "url("] {
        assert!(!page.contains(banned), "{banned}");
    }
    assert!(page.contains(
        "<p class=\"totals\"><b>2</b> threads, <b>3</b> tasks in <b>5</b> buckets\n\
         · captured in 1.234 ms\n\
         · 10.0 KiB of 64.0 MiB used · <strong class=\"warn\">4 left out by maxmem (0 threads, 4 tasks)</strong></p>"
    ));
    assert!(page.contains("<title>webstack: 2 threads, 3 tasks, 5 buckets</title>"));
    for origin in ["app", "dependency", "std", "runtime", "webstack", "unknown"] {
        assert!(
            page.contains(&format!("<li class=\"o-{origin}\">")),
            "{origin}"
        );
    }
    let meta = &page[page.find("<dl class=\"meta\">").unwrap()..];
    assert!(meta.contains(&format!("<dt>pid</dt><dd>{}</dd>", std::process::id())));
    assert!(meta.contains(&format!(
        "<dt>webstack</dt><dd>{}</dd>",
        env!("CARGO_PKG_VERSION")
    )));
    assert!(meta.contains("<dt>captured at</dt><dd>2025-11-25T17:41:51.123Z</dd>"));
    assert!(meta.contains("<dt>uptime</dt><dd>"));
    assert!(meta.contains("<dt>executable</dt><dd>"));
}

#[test]
fn long_member_lists_are_folded() {
    let snap = snapshot(
        (1..=1000)
            .map(|id| task(id, "conn", secs(1), vec![]))
            .collect(),
    );
    let page = html(&snap, Similarity::AnyPointer, &View::default());
    let ids: Vec<String> = (1..=64).map(|i| i.to_string()).collect();
    assert!(page.contains(&format!(
        r#"<span class="rname">conn</span> <span class="ids">{}</span> <span class="more">… and 936 more</span>"#,
        ids.join(", ")
    )));
}

#[webstack::instrument]
fn rh_render(label: &str) -> String {
    let snap = Snapshot::capture(&Options::default().augment(false));
    let buckets = Buckets::aggregate(&snap, Similarity::AnyPointer);
    render(&snap, &buckets, &View::default().format(Format::Html)).unwrap()
}

#[test]
fn real_capture_shows_the_serving_thread_first() {
    let page = rh_render("<script>x</script>");
    let first = section(&page, 1);
    assert!(
        first.starts_with(r#"<section class="bucket serving" id="b1">"#),
        "{first}"
    );
    assert!(first.contains(
        r#"<span class="name">render_html::rh_render</span>(<span class="args"><span class="arg">label: <span class="ty">&amp;str</span> = <span class="v">&quot;&lt;script&gt;x&lt;&#x2F;script&gt;&quot;</span></span></span>)"#
    ));
    assert!(!page.contains("<script"));
}

#[test]
fn at_most_a_thousand_buckets_are_shown() {
    let snap = snapshot(
        (1..=1200)
            .map(|id| {
                task(
                    id,
                    "conn",
                    secs(1),
                    vec![frame("app::f", 1, vec![arg("n", "u64", Value::u64(id))])],
                )
            })
            .collect(),
    );
    let page = html(&snap, Similarity::AnyPointer, &View::default());
    assert_eq!(page.matches("<section class=\"bucket\"").count(), 1000);
    assert!(page.contains(r#"<section class="bucket" id="b1000">"#));
    assert!(page.contains(
        "<p class=\"warn\">200 smaller buckets (200 threads and tasks) are not shown: choose a coarser similarity, \
         or read them all in the <a href=\"?augment=1&amp;maxmem=67108864&amp;similarity=anypointer&amp;format=text\">text</a> \
         or <a href=\"?augment=1&amp;maxmem=67108864&amp;similarity=anypointer&amp;format=json\">json</a> form.</p>"
    ));
    assert!(page.trim_end().ends_with("</html>"));
    // The text form lists them all.
    let buckets = Buckets::aggregate(&snap, Similarity::AnyPointer);
    let text = render(&snap, &buckets, &View::default().format(Format::Text)).unwrap();
    assert_eq!(text.matches("\n1: task idle").count(), 1200);
}

/// Render is a pure function of the snapshot: one taken elsewhere shows
/// that machine's process, not the one rendering it.
#[test]
fn a_snapshot_from_elsewhere_shows_its_own_process() {
    let queue = 0u8;
    let mut snap = sample(&queue);
    snap.process = elsewhere();
    let page = html(&snap, Similarity::AnyValue, &View::default());
    let meta = &page[page.find("<dl class=\"meta\">").unwrap()..];
    for (name, value) in [
        ("pid", "4242"),
        ("executable", "&#x2F;srv&#x2F;app&#x2F;bin&#x2F;app"),
        ("host", "web-1"),
        ("uptime", "3600.0 s"),
        ("webstack", "0.0.9"),
        ("platform", "linux aarch64"),
    ] {
        assert!(
            meta.contains(&format!("<dt>{name}</dt><dd>{value}</dd>")),
            "{name}: {meta}"
        );
    }
    assert!(!meta.contains(&format!("<dd>{}</dd>", std::process::id())));
}

/// A path shown shortened keeps the whole path in a tooltip; one shown as
/// it is gets none.
#[test]
fn shortened_paths_keep_the_full_path_in_a_title() {
    let queue = 0u8;
    let page = html(&sample(&queue), Similarity::AnyValue, &View::default());
    let unfolded = page.replace("\n", "");
    assert!(unfolded.contains(
        "<td class=\"loc\" title=\"&#x2F;rustc&#x2F;abc&#x2F;library&#x2F;std&#x2F;src&#x2F;thread&#x2F;local.rs\">std&#x2F;src&#x2F;thread&#x2F;local.rs:283</td>"
    ), "{page}");
    assert!(page.contains("<td class=\"loc\">src&#x2F;app.rs:12</td>"));
}

/// With augment=0 a thread that ran nothing instrumented has no frames: its
/// bucket says so and links to the same page with native stacks, instead
/// of an empty table.
#[test]
fn a_thread_without_frames_says_so_and_links_to_native_stacks() {
    let snap = snapshot(vec![thread(9, "actix-rt|system:0", 100, secs(5), vec![])]);
    let page = html(
        &snap,
        Similarity::AnyPointer,
        &View::default().augment(false),
    );
    let block = section(&page, 1);
    assert!(!block.contains("<table>"), "{block}");
    assert!(
        block.contains(
            "<p class=\"empty\">this thread has no instrumented frames: <a href=\"?augment=1&amp;maxmem=67108864&amp;similarity=anypointer\">show native stacks</a></p>"
        ),
        "{block}"
    );
}

/// Frame rows are rendered once per distinct row and copied into every
/// bucket that shows them, between pieces of the bucket template: a
/// hostile name or value, one that looks like the row separator or the
/// marker where rows go, is escaped in every place it appears, and every
/// bucket still gets exactly its own rows.
#[test]
fn shared_rows_stay_escaped_in_every_bucket() {
    const HOSTILE: &str = "<script>x</script></tr>\n<!--rows-->";
    let mut shared = frame(
        "app::<script>",
        7,
        vec![arg("tag", "<script>", Value::str("<b></tr>\n<!--rows-->"))],
    );
    shared.source = Some(HOSTILE.into());
    let routines = (1..=3)
        .map(|id| {
            thread(
                id,
                "<script>worker</script>",
                100 + id as i64,
                secs(1),
                vec![
                    frame(
                        "app::own",
                        id as u32,
                        vec![arg("id", "u64", Value::u64(id))],
                    ),
                    shared.clone(),
                ],
            )
        })
        .collect();
    let page = html(
        &snapshot(routines),
        Similarity::AnyPointer,
        &View::default(),
    );
    assert!(!page.contains("<script"), "{page}");
    assert!(!page.contains("<!--rows-->"), "{page}");
    let value = "&quot;&lt;b&gt;&lt;&#x2F;tr&gt;\\n&lt;!--rows--&gt;&quot;";
    let source = "&lt;script&gt;x&lt;&#x2F;script&gt;&lt;&#x2F;tr&gt;\n&lt;!--rows--&gt;";
    let mut own = Vec::new();
    for n in 1..=3 {
        let block = section(&page, n);
        assert_eq!(block.matches("<tr class=\"o-").count(), 2, "{block}");
        assert!(
            block.contains(&format!(
                "<span class=\"name\">app::&lt;script&gt;</span>(<span class=\"args\"><span class=\"arg\">tag: <span class=\"ty\">&lt;script&gt;</span> = <span class=\"v\">{value}</span></span></span>)<br><code class=\"src\">{source}</code></td>\n</tr>\n</tbody>"
            )),
            "{block}"
        );
        own.extend((1..=3).filter(|k| block.contains(&format!("= <span class=\"v\">{k}</span>"))));
    }
    own.sort_unstable();
    assert_eq!(own, [1, 2, 3], "each bucket shows its own first row");
}
