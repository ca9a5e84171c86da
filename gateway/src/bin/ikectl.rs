//! `ikectl`: the control CLI of `batond`.

fn main() {}
