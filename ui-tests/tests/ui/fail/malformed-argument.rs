#[webstack::instrument(skip)]
fn skip_without_list() {}

#[webstack::instrument(name)]
fn name_without_value() {}

#[webstack::instrument(name = handle)]
fn name_not_a_string() {}

#[webstack::instrument("handle")]
fn bare_literal() {}

fn main() {}
