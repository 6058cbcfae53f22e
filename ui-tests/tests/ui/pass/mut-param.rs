// `mut` parameters are recorded with their value at the call.

#[webstack::instrument]
fn count_down(mut n: u32) -> u32 {
    let mut steps = 0;
    while n > 0 {
        n -= 1;
        steps += 1;
    }
    assert_eq!(ui_tests::frame("count_down").args[0].value.to_string(), "3");
    steps
}

#[webstack::instrument]
async fn push(mut items: Vec<u8>, item: u8) -> Vec<u8> {
    items.push(item);
    items
}

fn main() {
    assert_eq!(count_down(3), 3);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert_eq!(runtime.block_on(push(vec![1], 2)), [1, 2]);
}
