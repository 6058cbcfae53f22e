// An async method on `&self` can return a borrow of `self` (elided and named
// lifetimes).

struct User {
    name: String,
}

impl User {
    #[webstack::instrument]
    async fn name(&self) -> &str {
        let frame = ui_tests::frame("name");
        assert!(
            frame.function.ends_with("::User::name"),
            "{}",
            frame.function
        );
        &self.name
    }

    #[webstack::instrument]
    async fn longer<'a>(&'a self, other: &'a str) -> &'a str {
        if other.len() > self.name.len() {
            other
        } else {
            self.name().await
        }
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let user = User {
        name: "alice".to_owned(),
    };
    assert_eq!(runtime.block_on(user.name()), "alice");
    assert_eq!(runtime.block_on(user.longer("bob")), "alice");
}
