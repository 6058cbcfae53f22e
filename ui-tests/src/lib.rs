//! trybuild cases for `#[webstack::instrument]` and `#[webstack::main]` live in `tests/`.
