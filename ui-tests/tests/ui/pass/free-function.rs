// A free function records its path, file, the line of its `fn` keyword and
// its typed arguments.

const HANDLE_LINE: u32 = line!() + 3;

#[webstack::instrument]
fn handle(id: u32, user: &str) -> usize {
    let frame = ui_tests::frame("handle");
    assert!(frame.function.ends_with("::handle"), "{}", frame.function);
    assert_eq!(frame.file, file!());
    assert_eq!(frame.line, HANDLE_LINE);
    assert_eq!(
        ui_tests::args(&frame),
        [
            ("id", "u32", "7".to_owned()),
            ("user", "&str", "\"alice\"".to_owned())
        ]
    );
    user.len() + id as usize
}

const SPLIT_LINE: u32 = line!() + 6;

#[webstack::instrument]
#[inline(never)]
#[rustfmt::skip]
pub(crate)
fn split_over_lines(
    n: u8,
) -> u8 {
    assert_eq!(ui_tests::frame("split_over_lines").line, SPLIT_LINE);
    n
}

fn main() {
    assert_eq!(handle(7, "alice"), 12);
    assert_eq!(split_over_lines(3), 3);
}
