//! See README.md: this crate is being built.
