//! `ordo-tools`: the `ordo` command-line program (see `shared/CLI.md`): `init`, `node` and
//! `demo` so far; the rest of the contract lands with the CLI issue (#8).

#![forbid(unsafe_code)]

pub mod apps;
pub mod children;
pub mod demo;
pub mod init;

/// A command's failure: one sentence (what, where, what to do), printed by `main`.
#[derive(Debug)]
pub struct Failure(pub String);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(error: E) -> Self {
        Failure(error.to_string())
    }
}
