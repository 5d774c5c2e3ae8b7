//! `ordo-service`: a cluster member. Today: the consensus module ([`consensus`]), written
//! sans-I/O — it reads the log through [`consensus::LogView`] and asks for every change
//! (append, truncate, sync, vote, send, commit) as an [`consensus::Effect`] that a driver
//! carries out — and the deterministic simulator ([`sim`]) that drives it over `SimNet` and an
//! in-memory log on a virtual clock. The real driver, the service container, the client
//! library and the runtime come with the member issue. It never depends on `ordo-apps`.

#![forbid(unsafe_code)]

pub mod client;
pub mod consensus;
pub mod container;
pub mod counters;
pub mod divergence;
pub mod echo;
pub mod effects;
pub mod event_feed;
pub mod events;
pub mod mem_log;
pub mod member;
pub mod metrics;
pub mod node;
pub mod records;
pub mod replay;
pub mod runtime;
pub mod service_agent;
pub mod serving;
pub mod sim;
pub mod snapshot;
