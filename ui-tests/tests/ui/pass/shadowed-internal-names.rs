// Parameters, locals and items named like the generated code's own names do
// not clash with it.

#[webstack::instrument]
fn clash(__webstack_args: u32, __webstack_frame: u32, __webstack_ret: u32, meta: u32) -> u32 {
    const __WEBSTACK_META: u32 = 100;
    let frame = ui_tests::frame("clash");
    let names: Vec<&str> = frame.args.iter().map(|a| a.name).collect();
    assert_eq!(
        names,
        [
            "__webstack_args",
            "__webstack_frame",
            "__webstack_ret",
            "meta"
        ]
    );
    assert_eq!(frame.args[0].value.to_string(), "1");
    __webstack_args + __webstack_frame + __webstack_ret + meta + __WEBSTACK_META
}

#[webstack::instrument]
async fn clash_async(__webstack_args: u32, __webstack_ret: u32, values: u32, owner: u32) -> u32 {
    let __webstack_frame = 1000;
    __webstack_args + __webstack_ret + values + owner + __webstack_frame
}

#[webstack::instrument]
fn sized<const META: usize, const __WEBSTACK_META: usize>(bytes: [u8; META]) -> usize {
    bytes.len() + __WEBSTACK_META
}

fn main() {
    assert_eq!(sized::<2, 1>([0, 0]), 3);
    assert_eq!(clash(1, 2, 3, 4), 110);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert_eq!(runtime.block_on(clash_async(1, 2, 3, 4)), 1010);
}
