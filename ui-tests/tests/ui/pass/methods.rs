// Methods taking `self`, `&self`, `&mut self` and `self: Box<Self>` record
// `Type::method` as their function and `self` as their first argument (the
// address of the receiver, or `<by value>` for `self`).

use webstack::Frame;

struct Counter {
    n: u32,
}

fn assert_method(frame: &Frame, method: &str, self_ty: &str) {
    assert!(
        frame.function.ends_with(&format!("::Counter::{method}")),
        "{}",
        frame.function
    );
    let this = &frame.args[0];
    assert_eq!((this.name, this.ty), ("self", self_ty));
    if self_ty == "Self" {
        // Taken by value: no address that would identify it.
        assert_eq!(this.value, webstack::Value::by_value());
        return;
    }
    assert!(this.value.is_pointer(), "{}", this.value);
    assert!(
        this.value
            .pointee_type()
            .is_some_and(|t| t.ends_with("Counter")),
        "{:?}",
        this.value.pointee_type()
    );
}

impl Counter {
    #[webstack::instrument]
    fn get(&self) -> u32 {
        assert_method(&ui_tests::frame("get"), "get", "&Self");
        self.n
    }

    #[webstack::instrument]
    fn bump(&mut self, by: u32) {
        let frame = ui_tests::frame("bump");
        assert_method(&frame, "bump", "&mut Self");
        assert_eq!(frame.args[1].value.to_string(), "5");
        self.n += by;
    }

    #[webstack::instrument]
    fn into_inner(self) -> u32 {
        assert_method(&ui_tests::frame("into_inner"), "into_inner", "Self");
        self.n
    }

    #[webstack::instrument]
    fn boxed(self: Box<Self>) -> u32 {
        let frame = ui_tests::frame("boxed");
        assert!(frame.function.ends_with("::Counter::boxed"));
        assert_eq!(
            (frame.args[0].name, frame.args[0].ty),
            ("self", "Box<Self>")
        );
        let at = &*self as *const Self as u64;
        assert_eq!(frame.args[0].value.address(), Some(at));
        self.n
    }

    #[webstack::instrument]
    fn new(n: u32) -> Self {
        // No `self`, but the signature names `Self`: still `Counter::new`.
        let frame = ui_tests::frame("new");
        assert!(
            frame.function.ends_with("::Counter::new"),
            "{}",
            frame.function
        );
        Counter { n }
    }
}

fn main() {
    let mut counter = Counter::new(1);
    counter.bump(5);
    assert_eq!(counter.get(), 6);
    assert_eq!(Box::new(Counter { n: 2 }).boxed(), 2);
    assert_eq!(counter.into_inner(), 6);
}
