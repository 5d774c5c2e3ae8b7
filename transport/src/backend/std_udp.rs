//! The portable backend: a non-blocking UDP socket, batches moved with one `sendmmsg` or
//! `recvmmsg` each.

use super::{BATCH_DATAGRAMS_MAX, Datagrams, Outgoing, bind_socket, sockaddr};
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

pub struct StdUdp {
    socket: UdpSocket,
    local: SocketAddr,
    /// One slot of `mtu_bytes + 1` per datagram of a receive batch: the extra byte shows a
    /// datagram was longer than the MTU.
    recv_buffers: Vec<u8>,
    slot_bytes: usize,
    /// `recvmmsg`'s headers, built once, pointing into `recv_names`, `recv_iovecs` and
    /// `recv_buffers`. An idle loop polls the socket often, and building these per call
    /// (13 KiB zeroed) was 8% of a leader's CPU under load (perf, `ordo bench` at 10 000/s);
    /// now a call resets only the name lengths the kernel overwrote.
    recv_headers: Vec<libc::mmsghdr>,
    recv_names: Vec<libc::sockaddr_storage>,
    recv_iovecs: Vec<libc::iovec>,
}

// SAFETY: the raw pointers in `recv_headers` and `recv_iovecs` point only into heap buffers
// this struct owns (never reallocated after `bind`, so moving the struct keeps them valid),
// and are used only through `&mut self`.
unsafe impl Send for StdUdp {}

impl StdUdp {
    pub fn bind(addr: SocketAddr, mtu_bytes: usize) -> io::Result<StdUdp> {
        let socket = bind_socket(addr)?;
        let local = socket.local_addr()?;
        let slot_bytes = mtu_bytes + 1;
        let mut recv_buffers = vec![0; slot_bytes * BATCH_DATAGRAMS_MAX];
        let mut recv_names = vec![sockaddr::empty(); BATCH_DATAGRAMS_MAX];
        let mut recv_iovecs: Vec<libc::iovec> = recv_buffers
            .chunks_exact_mut(slot_bytes)
            .map(|slot| libc::iovec { iov_base: slot.as_mut_ptr().cast(), iov_len: slot_bytes })
            .collect();
        let recv_headers = recv_names
            .iter_mut()
            .zip(recv_iovecs.iter_mut())
            .map(|(name, iovec)| {
                // SAFETY: mmsghdr is plain old data; zeroed is a valid empty header.
                let mut header: libc::mmsghdr = unsafe { std::mem::zeroed() };
                header.msg_hdr.msg_name = (name as *mut libc::sockaddr_storage).cast();
                header.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
                header.msg_hdr.msg_iov = iovec;
                header.msg_hdr.msg_iovlen = 1;
                header
            })
            .collect();
        Ok(StdUdp { socket, local, recv_buffers, slot_bytes, recv_headers, recv_names, recv_iovecs })
    }
}

impl Datagrams for StdUdp {
    fn send_batch(&mut self, batch: &[Outgoing<'_>]) -> io::Result<usize> {
        let count = batch.len().min(BATCH_DATAGRAMS_MAX);
        // Built per call on the stack (a few KiB, no allocation) so no raw pointer outlives
        // the call.
        let mut names = [sockaddr::empty(); BATCH_DATAGRAMS_MAX];
        let mut iovecs = [libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; BATCH_DATAGRAMS_MAX];
        // SAFETY: mmsghdr is plain old data; zeroed is a valid empty header.
        let mut headers: [libc::mmsghdr; BATCH_DATAGRAMS_MAX] = unsafe { std::mem::zeroed() };
        for (i, datagram) in batch[..count].iter().enumerate() {
            let name_bytes = sockaddr::write(&datagram.to, &mut names[i]);
            iovecs[i] = libc::iovec { iov_base: datagram.bytes.as_ptr() as *mut _, iov_len: datagram.bytes.len() };
            headers[i].msg_hdr.msg_name = (&mut names[i] as *mut libc::sockaddr_storage).cast();
            headers[i].msg_hdr.msg_namelen = name_bytes;
            headers[i].msg_hdr.msg_iov = &mut iovecs[i];
            headers[i].msg_hdr.msg_iovlen = 1;
        }
        let mut sent = 0;
        while sent < count {
            // SAFETY: headers[sent..count] point at names, iovecs and the caller's bytes, all
            // alive for this call; the kernel only reads them.
            let result = unsafe {
                libc::sendmmsg(self.socket.as_raw_fd(), headers[sent..].as_mut_ptr(), (count - sent) as u32, 0)
            };
            if result > 0 {
                sent += result as usize;
                continue;
            }
            let error = io::Error::last_os_error();
            match error.kind() {
                // The socket buffer is full: the rest is dropped, as the network would.
                io::ErrorKind::WouldBlock => break,
                io::ErrorKind::Interrupted => continue,
                // This one datagram can't go (no route, refused): skip it, keep the batch.
                _ => sent += 1,
            }
        }
        Ok(sent)
    }

    fn recv_batch(&mut self, on_datagram: &mut dyn FnMut(SocketAddr, &mut [u8])) -> io::Result<usize> {
        let slot_bytes = self.slot_bytes;
        debug_assert_eq!(self.recv_iovecs.len(), BATCH_DATAGRAMS_MAX);
        debug_assert!(self.recv_iovecs.iter().all(|iovec| iovec.iov_len == slot_bytes));
        for header in &mut self.recv_headers {
            // The kernel wrote the last call's name lengths (and flags) over these.
            header.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            header.msg_hdr.msg_flags = 0;
        }
        let received = loop {
            // SAFETY: every header points at a name slot, an iovec and a buffer slot owned by
            // `self` (built in `bind`), each as long as its length says; MSG_DONTWAIT never
            // blocks.
            let result = unsafe {
                libc::recvmmsg(
                    self.socket.as_raw_fd(),
                    self.recv_headers.as_mut_ptr(),
                    BATCH_DATAGRAMS_MAX as u32,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if result >= 0 {
                break result as usize;
            }
            let error = io::Error::last_os_error();
            match error.kind() {
                io::ErrorKind::WouldBlock => return Ok(0),
                io::ErrorKind::Interrupted => continue,
                // ICMP errors from earlier sends surface here on some kernels: not ours to fail on.
                io::ErrorKind::ConnectionRefused => return Ok(0),
                _ => return Err(error),
            }
        };
        for (i, header) in self.recv_headers[..received].iter().enumerate() {
            let Some(source) = sockaddr::read(&self.recv_names[i]) else { continue };
            let length = (header.msg_len as usize).min(slot_bytes);
            on_datagram(source, &mut self.recv_buffers[i * slot_bytes..i * slot_bytes + length]);
        }
        Ok(received)
    }

    fn wait_readable(&mut self, timeout: std::time::Duration) -> io::Result<()> {
        let mut poll = libc::pollfd { fd: self.socket.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        let timeout = libc::timespec { tv_sec: timeout.as_secs() as _, tv_nsec: timeout.subsec_nanos() as _ };
        // SAFETY: one pollfd on this stack frame, for a socket we own; ppoll only writes revents.
        let result = unsafe { libc::ppoll(&mut poll, 1, &timeout, std::ptr::null()) };
        if result < 0 {
            let error = io::Error::last_os_error();
            if error.kind() != io::ErrorKind::Interrupted {
                return Err(error);
            }
        }
        Ok(())
    }

    fn local_addr(&self) -> SocketAddr {
        self.local
    }

    fn name(&self) -> &'static str {
        "std"
    }
}
