// Methods in `impl<T> Foo<T>` are named after the concrete type.

use std::fmt::Display;

struct Wrapper<T> {
    inner: T,
}

impl<T> Wrapper<T> {
    #[webstack::instrument]
    fn get(&self) -> &T {
        let frame = ui_tests::frame("get");
        assert!(
            frame
                .function
                .ends_with(&format!("::Wrapper<{}>::get", std::any::type_name::<T>())),
            "{}",
            frame.function
        );
        &self.inner
    }

    #[webstack::instrument]
    async fn replace(&mut self, inner: T) -> T {
        std::mem::replace(&mut self.inner, inner)
    }
}

impl<T: Display> Wrapper<T> {
    #[webstack::instrument]
    fn describe(&self, prefix: &str) -> String
    where
        T: Clone,
    {
        format!("{prefix}{}", self.inner)
    }
}

fn main() {
    let mut wrapper = Wrapper { inner: 3u8 };
    assert_eq!(*wrapper.get(), 3);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert_eq!(runtime.block_on(wrapper.replace(4)), 3);
    assert_eq!(wrapper.describe("n="), "n=4");
    assert_eq!(Wrapper { inner: "s" }.get().len(), 1);
}
