//! `#[derive(webstack::Capture)]` on the users' own types: an enum, a struct
//! with a marked field, a newtype, generics and references, as the page
//! shows them (text, HTML, JSON) from a real capture; then how the
//! similarity levels and address labels treat a value inside a user's type.

use pretty_assertions::assert_eq;
use support::model::{arg, frame, secs, snapshot, task};
use support::normalise::normalise;
use webstack::render::{render, Format};
use webstack::View;
use webstack::{Buckets, Capture, Options, Similarity, Snapshot, Value};

#[derive(webstack::Capture)]
enum ConnState {
    Idle,
    Draining(#[capture] u32),
    Closed {
        #[capture]
        code: u16,
        #[allow(dead_code)]
        reason: String,
    },
    #[allow(dead_code)]
    Upgrading(String),
}

#[derive(webstack::Capture)]
struct Order {
    #[capture]
    id: u64,
    #[allow(dead_code)]
    lines: Vec<String>,
}

#[derive(webstack::Capture)]
struct UserId(u64);

#[derive(webstack::Capture)]
enum Tagged<T> {
    Some(#[capture] T),
    #[allow(dead_code)]
    Nothing,
}

#[derive(webstack::Capture)]
struct Route<'a> {
    #[allow(dead_code)]
    method: u8,
    #[capture]
    path: &'a str,
}

#[webstack::instrument]
fn serve(
    state: ConnState,
    order: &Order,
    user: UserId,
    retry: &mut ConnState,
    tag: Tagged<Option<u8>>,
    route: Route<'_>,
) -> Snapshot {
    let _ = (&state, order, &user, &retry, &tag, &route);
    Snapshot::capture(&Options::default().augment(false))
}

/// The bucket of this test's thread on the text page.
fn my_block(text: &str) -> String {
    let name = std::thread::current().name().unwrap().to_owned();
    text.split("\n\n")
        .find(|block| block.lines().next().is_some_and(|l| l.contains(&name)))
        .unwrap_or_else(|| panic!("no block for {name} in\n{text}"))
        .lines()
        .skip(1)
        .take(2)
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_page_shows_variants_and_marked_fields() {
    let order = Order {
        id: 42,
        lines: vec!["a".into()],
    };
    let mut retry = ConnState::Closed {
        code: 1006,
        reason: "gone".into(),
    };
    let route = Route {
        method: 1,
        path: "/orders/42",
    };
    let snapshot = serve(
        ConnState::Draining(3),
        &order,
        UserId(7),
        &mut retry,
        Tagged::Some(Some(5)),
        route,
    );
    let buckets = Buckets::aggregate(&snapshot, Similarity::AnyPointer);

    let text = render(&snapshot, &buckets, &View::default().format(Format::Text)).unwrap();
    assert_eq!(
        normalise(&my_block(&text)),
        "    derive_capture::serve(state: ConnState = ConnState::Draining(3), \
         order: &Order = Order { id: 42, .. }, user: UserId = UserId(7), \
         retry: &mut ConnState = ConnState::Closed { code: 1006, .. }, \
         tag: Tagged<Option<u8>> = Tagged::Some(Some(5)), \
         route: Route<'_> = Route { path: \"/orders/42\", .. })\n        \
         tests/derive_capture.rs:LINE"
    );

    let html = render(&snapshot, &buckets, &View::default().format(Format::Html)).unwrap();
    for shown in [
        "ConnState::Draining(3)",
        "Order { id: 42, .. }",
        "UserId(7)",
        "ConnState::Closed { code: 1006, .. }",
        "Tagged::Some(Some(5))",
        "Route { path: &quot;&#x2F;orders&#x2F;42&quot;, .. }",
    ] {
        assert!(html.contains(shown), "{shown} not in the HTML page");
    }

    let json = render(&snapshot, &buckets, &View::default().format(Format::Json)).unwrap();
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    let args = json["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|b| b["frames"].as_array().unwrap())
        .find(|f| f["function"] == "derive_capture::serve")
        .expect("serve's frame in the JSON page")["args"]
        .clone();
    let values: Vec<(&str, &str)> = args
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["name"].as_str().unwrap(), a["value"].as_str().unwrap()))
        .collect();
    assert_eq!(
        values,
        [
            ("state", "ConnState::Draining(3)"),
            ("order", "Order { id: 42, .. }"),
            ("user", "UserId(7)"),
            ("retry", "ConnState::Closed { code: 1006, .. }"),
            ("tag", "Tagged::Some(Some(5))"),
            ("route", "Route { path: \"/orders/42\", .. }"),
        ]
    );
}

#[test]
fn unit_variants_and_unmarked_fields_show_the_variant_alone() {
    assert_eq!(ConnState::Idle.capture().to_string(), "ConnState::Idle");
    assert_eq!(
        ConnState::Upgrading("h2".into()).capture().to_string(),
        "ConnState::Upgrading"
    );
    assert_eq!(
        Tagged::<u8>::Nothing.capture().to_string(),
        "Tagged::Nothing"
    );
    // The same shape is one static: equal values, one bucket.
    assert_eq!(ConnState::Idle.capture(), ConnState::Idle.capture());
    assert_ne!(
        ConnState::Draining(1).capture(),
        ConnState::Draining(2).capture()
    );
}

#[test]
fn a_long_string_inside_keeps_the_length_and_a_shorter_prefix() {
    #[derive(webstack::Capture)]
    struct Name(String);
    let long = "é".repeat(20); // 40 bytes: 32 kept bare, 24 inside one field
    assert_eq!(
        Name(long).capture().to_string(),
        format!("Name(\"{}…\" (len 40))", "é".repeat(12))
    );
    assert_eq!(
        Name("alice".into()).capture().to_string(),
        "Name(\"alice\")"
    );
}

/// A connection recorded by its address (a hand-written impl), so that the
/// types around it hold an address.
struct Conn(#[allow(dead_code)] u8);

impl Capture for Conn {
    fn capture(&self) -> Value {
        Value::pointer(self)
    }
}

#[derive(webstack::Capture)]
enum Slot<'a> {
    Reading(#[capture] &'a Conn),
    Writing(#[capture] &'a Conn),
}

fn waiting(id: u64, slot: Value) -> webstack::Routine {
    task(
        id,
        "conn",
        secs(2),
        vec![frame("app::wait", 7, vec![arg("slot", "Slot", slot)])],
    )
}

/// Buckets per level, strictest first.
fn counts(snapshot: &Snapshot) -> Vec<usize> {
    Similarity::ALL
        .iter()
        .map(|&s| Buckets::aggregate(snapshot, s).buckets.len())
        .collect()
}

#[test]
fn similarity_levels_see_the_value_inside_like_a_bare_one() {
    let (a, b) = (Conn(1), Conn(2));
    // Different numbers inside one variant: apart unless values are ignored.
    let numbers = snapshot(vec![
        waiting(1, ConnState::Draining(3).capture()),
        waiting(2, ConnState::Draining(4).capture()),
    ]);
    assert_eq!(counts(&numbers), [2, 2, 2, 1]);
    // Different addresses inside one variant: together from anypointer on.
    let addresses = snapshot(vec![
        waiting(1, Slot::Reading(&a).capture()),
        waiting(2, Slot::Reading(&b).capture()),
    ]);
    assert_eq!(counts(&addresses), [2, 2, 1, 1]);
    // The same address in two variants: the variants keep them apart.
    let variants = snapshot(vec![
        waiting(1, Slot::Reading(&a).capture()),
        waiting(2, Slot::Writing(&a).capture()),
    ]);
    assert_eq!(counts(&variants), [2, 2, 2, 1]);
    // Unit variants compare by name.
    let units = snapshot(vec![
        waiting(1, ConnState::Idle.capture()),
        waiting(2, ConnState::Idle.capture()),
        waiting(3, ConnState::Upgrading(String::new()).capture()),
    ]);
    assert_eq!(counts(&units), [2, 2, 2, 1]);
}

#[test]
fn an_address_inside_gets_its_label_and_merges_as_a_star() {
    let (a, b) = (Conn(1), Conn(2));
    let shared = snapshot(vec![
        waiting(1, Slot::Reading(&a).capture()),
        waiting(2, Slot::Writing(&a).capture()),
        waiting(3, Slot::Reading(&b).capture()),
    ]);
    let buckets = Buckets::aggregate(&shared, Similarity::AnyPointer);
    let text = render(&shared, &buckets, &View::default().format(Format::Text)).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("app::wait")).collect();
    assert_eq!(
        lines,
        [
            "    app::wait(slot: Slot = *)",
            "    app::wait(slot: Slot = Slot::Writing(#1))",
        ]
    );
    let json = render(&shared, &buckets, &View::default().format(Format::Json)).unwrap();
    let address = format!("{:#x}", &a as *const Conn as usize);
    assert!(json.contains(&format!(
        "\"value\":\"Slot::Writing(#1)\",\"address\":\"{address}\""
    )));
}
