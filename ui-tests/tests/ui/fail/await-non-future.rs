// Awaiting something that is not a future is reported on the user's
// expression and `.await`, as without the attribute, although the macro
// rewrites each `.await` to record its line (the second error names the
// wrapper, `AtLine`).

#[webstack::instrument]
async fn awaits_a_number(n: u32) -> u32 {
    n.await
}

fn main() {}
