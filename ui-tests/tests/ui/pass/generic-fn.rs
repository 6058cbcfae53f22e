// In a generic function, a `T` without a `Capture` bound is recorded as its
// address and type; with the bound, as its value.

use webstack::Capture;

struct Opaque;

#[webstack::instrument]
fn hold<T>(value: T, label: &str) -> T {
    let frame = ui_tests::frame("hold");
    let recorded = &frame.args[0];
    assert_eq!((recorded.name, recorded.ty), ("value", "T"));
    assert!(recorded.value.is_pointer(), "{}", recorded.value);
    assert_eq!(recorded.value.pointee_type(), Some(label));
    value
}

#[webstack::instrument]
fn show<T: Capture>(value: T) -> T {
    let frame = ui_tests::frame("show");
    assert_eq!(frame.args[0].value.to_string(), "5");
    value
}

fn main() {
    hold(Opaque, std::any::type_name::<Opaque>());
    hold(5u32, "u32");
    show(5u8);
}
