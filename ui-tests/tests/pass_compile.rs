//! The trybuild pass cases compiled as ordinary tests of this crate, so that
//! `cargo clippy -p ui-tests --all-targets -- -D warnings` lints the code the
//! macros generate inside user code, and each case's `main` runs again under
//! the normal test harness (in parallel with the others).

macro_rules! pass_cases {
    ($($module:ident => $path:literal,)*) => {$(
        mod $module {
            include!($path);

            #[test]
            fn runs() -> impl std::process::Termination {
                main()
            }
        }
    )*};
}

pass_cases! {
    async_fn_in_trait => "ui/pass/async-fn-in-trait.rs",
    async_fn_never_returns => "ui/pass/async-fn-never-returns.rs",
    async_fn => "ui/pass/async-fn.rs",
    async_fn_signatures => "ui/pass/async-fn-signatures.rs",
    async_method_borrowed_return => "ui/pass/async-method-borrowed-return.rs",
    async_trait_method => "ui/pass/async-trait-method.rs",
    await_forms => "ui/pass/await-forms.rs",
    cfg_param => "ui/pass/cfg-param.rs",
    derive_capture => "ui/pass/derive-capture.rs",
    destructured_params => "ui/pass/destructured-params.rs",
    free_function => "ui/pass/free-function.rs",
    generic_fn => "ui/pass/generic-fn.rs",
    generic_impl => "ui/pass/generic-impl.rs",
    impl_future_early_return => "ui/pass/impl-future-early-return.rs",
    impl_future_return => "ui/pass/impl-future-return.rs",
    main_above_tokio_main => "ui/pass/main-above-tokio-main.rs",
    main_below_tokio_main => "ui/pass/main-below-tokio-main.rs",
    main_sync => "ui/pass/main-sync.rs",
    main_tokio_hooks => "ui/pass/main-tokio-hooks.rs",
    main_with_dumps => "ui/pass/main-with-dumps.rs",
    methods => "ui/pass/methods.rs",
    more_than_eight_params => "ui/pass/more-than-eight-params.rs",
    mut_param => "ui/pass/mut-param.rs",
    recorded_type_text => "ui/pass/recorded-type-text.rs",
    result_question_mark => "ui/pass/result-question-mark.rs",
    shadowed_internal_names => "ui/pass/shadowed-internal-names.rs",
    skip => "ui/pass/skip.rs",
    task_name => "ui/pass/task-name.rs",
}
