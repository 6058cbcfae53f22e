// Only the first eight recorded parameters are kept; skipped ones do not
// count.

#[webstack::instrument]
#[allow(clippy::too_many_arguments)]
fn ten(p0: u8, p1: u8, p2: u8, p3: u8, p4: u8, p5: u8, p6: u8, p7: u8, p8: u8, p9: u8) {
    let names: Vec<&str> = ui_tests::frame("ten").args.iter().map(|a| a.name).collect();
    assert_eq!(names, ["p0", "p1", "p2", "p3", "p4", "p5", "p6", "p7"]);
    let _ = (p0, p1, p2, p3, p4, p5, p6, p7, p8, p9);
}

#[webstack::instrument(skip(p0, p2))]
#[allow(clippy::too_many_arguments)]
fn ten_skipping(p0: u8, p1: u8, p2: u8, p3: u8, p4: u8, p5: u8, p6: u8, p7: u8, p8: u8, p9: u8) {
    let frame = ui_tests::frame("ten_skipping");
    let names: Vec<&str> = frame.args.iter().map(|a| a.name).collect();
    assert_eq!(names, ["p1", "p3", "p4", "p5", "p6", "p7", "p8", "p9"]);
    assert_eq!(frame.args[7].value.to_string(), "9");
    let _ = (p0, p1, p2, p3, p4, p5, p6, p7, p8, p9);
}

fn main() {
    ten(0, 1, 2, 3, 4, 5, 6, 7, 8, 9);
    ten_skipping(0, 1, 2, 3, 4, 5, 6, 7, 8, 9);
}
