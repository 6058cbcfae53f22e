// In a generic function, a `T` without a `Capture` bound is recorded as
// passed by value (no address), a `&T` as the address and concrete type of
// its referent; with the bound, as its value.

use webstack::{Capture, Value};

struct Opaque;

#[webstack::instrument]
fn hold<T>(value: T) -> T {
    let frame = ui_tests::frame("hold");
    let recorded = &frame.args[0];
    assert_eq!((recorded.name, recorded.ty), ("value", "T"));
    assert_eq!(recorded.value, Value::by_value());
    value
}

#[webstack::instrument]
fn hold_ref<T>(value: &T, label: &str) {
    let frame = ui_tests::frame("hold_ref");
    let recorded = &frame.args[0];
    assert_eq!((recorded.name, recorded.ty), ("value", "&T"));
    assert_eq!(recorded.value.address(), Some(value as *const T as u64));
    assert_eq!(recorded.value.pointee_type(), Some(label));
}

#[webstack::instrument]
fn show<T: Capture>(value: T) -> T {
    let frame = ui_tests::frame("show");
    assert_eq!(frame.args[0].value.to_string(), "5");
    value
}

fn main() {
    hold(Opaque);
    hold(5u32);
    hold_ref(&Opaque, std::any::type_name::<Opaque>());
    show(5u8);
}
