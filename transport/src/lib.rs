//! `ordo-transport` moves frames between members over UDP: the frame codec with
//! authentication and optional encryption, batched datagram backends (std `sendmmsg` /
//! `recvmmsg` and io_uring), the log-stream sender and receiver (batching, loss recovery by
//! NAK, flow control by window), and the fault-injecting (`FaultyNet`) and in-memory
//! (`SimNet`) networks.
//!
//! It knows frames, peers and log positions; nothing about elections or state machines.

pub mod auth;
pub mod backend;
pub mod endpoint;
pub mod faults;
pub mod frame;
pub mod stream;

pub use auth::{ClientKey, FrameKey, KeyRing, Security};
pub use endpoint::{DropCounters, Endpoint};
pub use faults::{FaultConfig, FaultDice, FaultyNet, SimNet};
pub use frame::{Body, Frame, FrameCodec, FrameError, FrameHeader, FrameType, MTU_BYTES_DEFAULT, ResponseStatus};
pub use stream::{Chunk, LogSource, PeerStream, Received, StreamConfig, StreamReceiver};
