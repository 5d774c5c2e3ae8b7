//! Datagram backends: batched UDP send and receive behind one small trait, so the layers
//! above (and `FaultyNet`) don't care which one runs.
//!
//! - [`StdUdp`]: a non-blocking `std::net::UdpSocket` driven with `sendmmsg` / `recvmmsg`:
//!   one syscall moves a whole batch.
//! - [`UringUdp`]: io_uring (the `io-uring` crate): receives are posted ahead on buffers the
//!   backend owns, a batch of sends is one `io_uring_enter`.
//!
//! Budget: a 1408-byte datagram holds ~10 entries of a 64 B command (128 B each with the
//! header); a batch of 32 datagrams is one syscall, so the per-entry syscall cost is ~1/300th
//! of a syscall at full batches.

mod sockaddr;
mod std_udp;
mod uring;

pub use std_udp::StdUdp;
pub use uring::UringUdp;

use std::io;
use std::net::SocketAddr;

/// Datagrams sent or received in one call, at most.
pub const BATCH_DATAGRAMS_MAX: usize = 64;

/// One datagram to send.
#[derive(Clone, Copy, Debug)]
pub struct Outgoing<'a> {
    pub to: SocketAddr,
    pub bytes: &'a [u8],
}

/// A batched, non-blocking datagram endpoint.
pub trait Datagrams: Send {
    /// Sends as many of `batch` (at most [`BATCH_DATAGRAMS_MAX`]) as the kernel takes in one
    /// submission; returns how many went. A datagram the kernel refuses is dropped, as UDP
    /// would (the stream above recovers it), not retried.
    fn send_batch(&mut self, batch: &[Outgoing<'_>]) -> io::Result<usize>;

    /// Receives what has arrived (up to [`BATCH_DATAGRAMS_MAX`]) without blocking, calling
    /// `on_datagram(source, bytes)` for each, with the bytes in the backend's own buffer
    /// (zero copy, mutable so a frame can be decrypted in place). A datagram longer than
    /// `mtu_bytes` arrives cut to `mtu_bytes + 1` bytes, so the decoder refuses it.
    fn recv_batch(&mut self, on_datagram: &mut dyn FnMut(SocketAddr, &mut [u8])) -> io::Result<usize>;

    /// Blocks until a datagram may be there or `timeout` passes (the "blocking" idle
    /// strategy: no CPU burnt while waiting, at the price of a wake-up).
    fn wait_readable(&mut self, timeout: std::time::Duration) -> io::Result<()>;

    fn local_addr(&self) -> SocketAddr;

    /// Which backend this is, for logs and benchmarks.
    fn name(&self) -> &'static str;
}

/// Which backend to open: the config's `transport.backend`.
pub use ordo_core::TransportBackend as BackendKind;

/// Opens an endpoint bound to `addr`. If io_uring is asked for and the kernel refuses it
/// (too old, or forbidden by a sandbox), falls back to the std backend and says so in the
/// returned message, for the caller to log.
pub fn open(kind: BackendKind, addr: SocketAddr, mtu_bytes: usize) -> io::Result<(Box<dyn Datagrams>, Option<String>)> {
    match kind {
        BackendKind::Std => Ok((Box::new(StdUdp::bind(addr, mtu_bytes)?), None)),
        BackendKind::IoUring => match UringUdp::bind(addr, mtu_bytes) {
            Ok(endpoint) => Ok((Box::new(endpoint), None)),
            Err(error) if error.kind() != io::ErrorKind::AddrInUse => {
                let message = format!(
                    "io_uring is not available here ({error}); using the std UDP backend instead (set transport.backend = \"std\" to silence this)"
                );
                Ok((Box::new(StdUdp::bind(addr, mtu_bytes)?), Some(message)))
            }
            Err(error) => Err(error),
        },
    }
}

/// Socket buffer size asked for: room for bursts of a few thousand full datagrams, so a
/// busy receiver drops less. The kernel may cap it (net.core.rmem_max).
pub(crate) const SOCKET_BUFFER_BYTES: i32 = 8 * 1024 * 1024;

pub(crate) fn bind_socket(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    use std::os::fd::AsRawFd;
    let socket = std::net::UdpSocket::bind(addr)?;
    socket.set_nonblocking(true)?;
    for option in [libc::SO_RCVBUF, libc::SO_SNDBUF] {
        let value = SOCKET_BUFFER_BYTES;
        // SAFETY: setsockopt reads `size_of::<i32>()` bytes from a live i32 on this stack frame;
        // the fd is the socket we own. Failure only means a smaller buffer, so it is ignored.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                (&value as *const i32).cast(),
                size_of::<i32>() as libc::socklen_t,
            );
        }
    }
    Ok(socket)
}

#[cfg(test)]
mod tests;
