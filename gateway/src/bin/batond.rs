//! `batond`: the IKEv2 gateway daemon.

fn main() {}
