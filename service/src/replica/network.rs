//! What a replica sends through: frames queued to an address, sent in one batch on
//! `flush`. The real member's is a UDP [`Endpoint`]; the simulator's puts frames on its
//! simulated network, encoded by the same frame codec.

use ordo_core::Term;
use ordo_transport::{Body, Endpoint, FrameType};
use std::io;
use std::net::SocketAddr;

/// Where a peer or a client is: a socket address, or the simulator's node number.
pub trait Address: Copy + Eq + std::fmt::Debug + std::fmt::Display + Send + 'static {}

impl Address for SocketAddr {}
impl Address for u16 {}

/// The outgoing side of a replica's network.
pub trait Network<A: Address> {
    /// Queues a frame sealed under the member's own key (to another member).
    fn queue(&mut self, to: A, term: Term, body: &Body<'_>) -> io::Result<()>;
    /// Queues a frame sealed under key `key_id` (an answer to a client, under its key).
    fn queue_keyed(&mut self, to: A, key_id: u32, term: Term, body: &Body<'_>) -> io::Result<()>;
    /// The room for a body of this type in one datagram.
    fn capacity_bytes(&self, frame_type: FrameType) -> usize;
    /// Sends everything queued.
    fn flush(&mut self) -> io::Result<()>;
}

impl Network<SocketAddr> for Endpoint {
    fn queue(&mut self, to: SocketAddr, term: Term, body: &Body<'_>) -> io::Result<()> {
        Endpoint::queue(self, to, term, body)
    }
    fn queue_keyed(&mut self, to: SocketAddr, key_id: u32, term: Term, body: &Body<'_>) -> io::Result<()> {
        Endpoint::queue_keyed(self, to, key_id, term, body)
    }
    fn capacity_bytes(&self, frame_type: FrameType) -> usize {
        self.codec().capacity_bytes(frame_type)
    }
    fn flush(&mut self) -> io::Result<()> {
        Endpoint::flush(self).map(drop)
    }
}
