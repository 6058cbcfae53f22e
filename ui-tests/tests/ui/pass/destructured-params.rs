// Destructured parameters are recorded by their pattern, with no value.

struct Point {
    x: i32,
    y: i32,
}

#[webstack::instrument]
fn sum((a, b): (u32, u32), Point { x, y }: Point, [first, ..]: [u8; 3], _: u8) -> i64 {
    let frame = ui_tests::frame("sum");
    let names: Vec<(&str, &str)> = frame.args.iter().map(|a| (a.name, a.ty)).collect();
    assert_eq!(
        names,
        [
            ("(a, b)", "(u32, u32)"),
            ("Point { x, y }", "Point"),
            ("[first, ..]", "[u8; 3]"),
            ("_", "u8"),
        ]
    );
    assert!(frame.args.iter().all(|a| !a.value.is_pointer()));
    i64::from(a + b) + i64::from(x + y) + i64::from(first)
}

#[webstack::instrument]
async fn sum_async((a, b): (u32, u32), Point { x, .. }: Point) -> i64 {
    i64::from(a + b) + i64::from(x)
}

fn main() {
    assert_eq!(sum((1, 2), Point { x: 3, y: 4 }, [5, 6, 7], 0), 15);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert_eq!(runtime.block_on(sum_async((1, 2), Point { x: 3, y: 4 })), 6);
}
