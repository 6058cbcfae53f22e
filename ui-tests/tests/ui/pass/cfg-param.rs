// A parameter under `#[cfg]` is not recorded, so the function compiles
// whether or not the parameter exists.

#[webstack::instrument]
fn configured(#[cfg(any())] hidden: u32, shown: u32) -> u32 {
    let names: Vec<&str> = ui_tests::frame("configured")
        .args
        .iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(names, ["shown"]);
    shown
}

fn main() {
    assert_eq!(configured(2), 2);
}
