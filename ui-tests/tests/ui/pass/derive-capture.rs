// `#[derive(webstack::Capture)]` on the shapes it accepts: unit, tuple and
// named variants, marked and unmarked fields, newtypes, unit and empty
// structs, an empty enum, generics (bounded only when the marked field names
// them), lifetimes, raw identifiers, a recursive type, and references.

use webstack::Capture;

// Fields not recorded are never read.
#[allow(dead_code)]
#[derive(webstack::Capture)]
pub enum Conn<T, U> {
    Idle,
    Open(#[capture] T, U),
    Closing { reason: U, #[capture] code: u16 },
    Unmarked(U),
}

#[derive(webstack::Capture)]
pub struct Wrapper<'a, T: ?Sized>(pub &'a T);

#[derive(webstack::Capture)]
pub struct Marker;

#[derive(webstack::Capture)]
pub struct Empty {}

#[derive(webstack::Capture)]
pub enum Never {}

// Fields not recorded are never read.
#[allow(dead_code)]
#[derive(webstack::Capture)]
pub struct Keyword {
    #[capture]
    pub r#ref: u8,
    pub other: u8,
}

// Fields not recorded are never read.
#[allow(dead_code)]
#[derive(webstack::Capture)]
pub enum List {
    Cons(#[capture] u32, Box<List>),
    Nested(#[capture] Box<List>),
    Nil,
}

#[derive(webstack::Capture)]
pub struct Where<T>
where
    T: Clone,
{
    pub inner: Option<T>,
}

/// Not `Capture`: a type parameter the marked field does not name is not
/// bounded.
pub struct Opaque;

#[webstack::instrument]
fn uses(conn: &Conn<u64, Opaque>, wrapper: Wrapper<'_, str>, list: &mut List) -> Vec<String> {
    ui_tests::args(&ui_tests::frame("uses"))
        .into_iter()
        .map(|(_, _, value)| value)
        .collect()
}

fn main() {
    let conn: Conn<u64, Opaque> = Conn::Open(9, Opaque);
    let mut list = List::Nested(Box::new(List::Cons(1, Box::new(List::Nil))));
    assert_eq!(
        uses(&conn, Wrapper("hi"), &mut list),
        [
            "Conn::Open(9, ..)",
            "Wrapper(\"hi\")",
            "List::Nested(List::Cons(1, ..))",
        ]
    );
    let closing: Conn<u8, Opaque> = Conn::Closing { reason: Opaque, code: 1000 };
    assert_eq!(closing.capture().to_string(), "Conn::Closing { code: 1000, .. }");
    let unmarked: Conn<u8, u8> = Conn::Unmarked(1);
    assert_eq!(unmarked.capture().to_string(), "Conn::Unmarked");
    assert_eq!(Conn::<u8, Opaque>::Idle.capture().to_string(), "Conn::Idle");
    assert_eq!(Marker.capture().to_string(), "Marker");
    assert_eq!(Empty {}.capture().to_string(), "Empty");
    assert_eq!(Keyword { r#ref: 1, other: 2 }.capture().to_string(), "Keyword { ref: 1, .. }");
    assert_eq!(Where { inner: Some(3u8) }.capture().to_string(), "Where { inner: Some(3) }");
    let _ = |never: &Never| never.capture();
}
