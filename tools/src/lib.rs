//! `ordo-tools`: the `ordo` command-line program (see `shared/CLI.md`).
//!
//! Empty until the CLI issue lands.

#![forbid(unsafe_code)]
