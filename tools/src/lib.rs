//! `ordo-tools`: the `ordo` command-line program (see `shared/CLI.md`): `init`, `node`,
//! `demo`, `stat`, `log verify|dump`, `replay` and `sim` so far; the rest of the contract
//! (`cluster`, `client`, `describe`, `snapshot`, `events`, `bench`) lands with issue #8.

#![forbid(unsafe_code)]

pub mod apps;
pub mod bank;
pub mod bench;
pub mod children;
pub mod client;
pub mod demo;
pub mod init;
pub mod inspect;
pub mod netns;
pub mod target;

/// A command's failure: one sentence (what, where, what to do), printed by `main`.
#[derive(Debug)]
pub struct Failure(pub String);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(error: E) -> Self {
        Failure(error.to_string())
    }
}
