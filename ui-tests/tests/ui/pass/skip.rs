// `skip(...)` leaves the named parameters out (`self` included);
// `skip_all` records none.

struct Vault {
    secret: String,
}

impl Vault {
    #[webstack::instrument(skip(self, password))]
    fn open(&self, user: &str, password: &str) -> bool {
        let frame = ui_tests::frame("open");
        assert!(
            frame.function.ends_with("::Vault::open"),
            "{}",
            frame.function
        );
        assert_eq!(
            ui_tests::args(&frame),
            [("user", "&str", "\"bob\"".to_owned())]
        );
        self.secret == password
    }

    #[webstack::instrument(skip_all)]
    async fn rotate(&mut self, next: String) {
        assert!(ui_tests::frame("rotate").args.is_empty());
        self.secret = next;
    }
}

fn main() {
    let mut vault = Vault {
        secret: "s3cret".to_owned(),
    };
    assert!(vault.open("bob", "s3cret"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(vault.rotate("other".to_owned()));
    assert!(!vault.open("bob", "s3cret"));
}
