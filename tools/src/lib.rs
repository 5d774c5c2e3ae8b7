//! `ordo-tools`: the `ordo` command-line program, every command of `shared/CLI.md`, and
//! `ordo bank`, the Jepsen-style bank test against real member processes.

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
