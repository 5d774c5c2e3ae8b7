//! The io_uring backend (the `io-uring` crate, 0.7). Receives are posted ahead, one per
//! buffer slot the backend owns, so when nothing has arrived `recv_batch` reads the
//! completion ring and makes no syscall at all; a batch of sends is one `io_uring_enter`
//! that submits every `sendmsg` and waits for their completions (UDP sends complete at
//! once: the kernel copies the bytes), so the caller's bytes need only live for the call.
//! The ring runs completions cooperatively: they are fetched by an enter the backend makes
//! only when the kernel flags some as pending (without that, a busy-polling thread saw its
//! receives ~100 µs late).

use super::{BATCH_DATAGRAMS_MAX, Datagrams, Outgoing, bind_socket, sockaddr};
use io_uring::{IoUring, opcode, types};
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

const SEND_TAG: u64 = 1 << 32;
const RING_ENTRIES: u32 = (BATCH_DATAGRAMS_MAX * 4) as u32;

/// The kernel reads and writes these while an operation is in flight, so they live in a
/// boxed slice whose addresses never change.
struct Slot {
    header: libc::msghdr,
    iovec: libc::iovec,
    name: libc::sockaddr_storage,
}

pub struct UringUdp {
    ring: IoUring,
    socket: UdpSocket,
    local: SocketAddr,
    slot_bytes: usize,
    recv_slots: Box<[Slot]>,
    recv_buffers: Box<[u8]>,
    send_slots: Box<[Slot]>,
    /// Receive completions seen while waiting for sends: (slot, bytes), handed out next.
    ready: Vec<(usize, usize)>,
}

// SAFETY: the raw pointers inside the slots point only into this struct's own boxed
// slices (and, during `send_batch`, the caller's bytes), which move with it; the ring is
// only touched through `&mut self`, so the struct may move to another thread.
unsafe impl Send for UringUdp {}

impl UringUdp {
    pub fn bind(addr: SocketAddr, mtu_bytes: usize) -> io::Result<UringUdp> {
        // Cooperative task running: completions wait for our next syscall instead of
        // interrupting the thread, and the TASKRUN flag says when there are some to fetch
        // (since Linux 5.19; plain rings before that).
        let ring = IoUring::builder()
            .setup_coop_taskrun()
            .setup_taskrun_flag()
            .build(RING_ENTRIES)
            .or_else(|_| IoUring::new(RING_ENTRIES))?;
        let socket = bind_socket(addr)?;
        // io_uring arms a poll for a blocking socket instead of failing with EAGAIN.
        socket.set_nonblocking(false)?;
        let local = socket.local_addr()?;
        let slot_bytes = mtu_bytes + 1;
        let new_slots = || {
            (0..BATCH_DATAGRAMS_MAX)
                .map(|_| Slot {
                    // SAFETY: msghdr is plain old data; zeroed is an empty header.
                    header: unsafe { std::mem::zeroed() },
                    iovec: libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 },
                    name: sockaddr::empty(),
                })
                .collect::<Box<[Slot]>>()
        };
        let mut endpoint = UringUdp {
            ring,
            socket,
            local,
            slot_bytes,
            recv_slots: new_slots(),
            recv_buffers: vec![0u8; slot_bytes * BATCH_DATAGRAMS_MAX].into_boxed_slice(),
            send_slots: new_slots(),
            ready: Vec::with_capacity(BATCH_DATAGRAMS_MAX),
        };
        for slot in 0..BATCH_DATAGRAMS_MAX {
            endpoint.post_recv(slot)?;
        }
        endpoint.ring.submit()?;
        Ok(endpoint)
    }

    /// Queues a receive into `slot` (submitted with the next submit).
    fn post_recv(&mut self, slot: usize) -> io::Result<()> {
        let buffer = &mut self.recv_buffers[slot * self.slot_bytes..(slot + 1) * self.slot_bytes];
        let entry = &mut self.recv_slots[slot];
        entry.iovec = libc::iovec { iov_base: buffer.as_mut_ptr().cast(), iov_len: buffer.len() };
        entry.header.msg_name = (&mut entry.name as *mut libc::sockaddr_storage).cast();
        entry.header.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        entry.header.msg_iov = &mut entry.iovec;
        entry.header.msg_iovlen = 1;
        entry.header.msg_control = std::ptr::null_mut();
        entry.header.msg_controllen = 0;
        let sqe =
            opcode::RecvMsg::new(types::Fd(self.socket.as_raw_fd()), &mut entry.header).build().user_data(slot as u64);
        // SAFETY: the header, iovec, name and buffer are in boxed slices owned by self that
        // stay put until this operation completes (or the ring is dropped with the slots).
        unsafe { self.push(&sqe) }
    }

    /// # Safety
    /// Everything `sqe` points at must stay valid until its completion is reaped.
    unsafe fn push(&mut self, sqe: &io_uring::squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: passed on from the caller.
            if unsafe { self.ring.submission().push(sqe) }.is_ok() {
                return Ok(());
            }
            self.ring.submit()?; // the submission queue is full: make room
        }
    }

    /// Moves completions off the ring: sends are counted, receives queued in `ready`.
    fn reap(&mut self, sends_done: &mut usize, sends_ok: &mut usize) {
        for cqe in self.ring.completion() {
            let tag = cqe.user_data();
            if tag & SEND_TAG != 0 {
                *sends_done += 1;
                if cqe.result() >= 0 {
                    *sends_ok += 1;
                }
            } else {
                // A failed receive (e.g. cancelled) is re-posted with a length of zero
                // skipped by `recv_batch`.
                self.ready.push((tag as usize, cqe.result().max(0) as usize));
            }
        }
    }
}

impl Datagrams for UringUdp {
    fn send_batch(&mut self, batch: &[Outgoing<'_>]) -> io::Result<usize> {
        let count = batch.len().min(BATCH_DATAGRAMS_MAX);
        for (i, datagram) in batch[..count].iter().enumerate() {
            let slot = &mut self.send_slots[i];
            let name_bytes = sockaddr::write(&datagram.to, &mut slot.name);
            slot.iovec = libc::iovec { iov_base: datagram.bytes.as_ptr() as *mut _, iov_len: datagram.bytes.len() };
            slot.header.msg_name = (&mut slot.name as *mut libc::sockaddr_storage).cast();
            slot.header.msg_namelen = name_bytes;
            slot.header.msg_iov = &mut slot.iovec;
            slot.header.msg_iovlen = 1;
            let sqe = opcode::SendMsg::new(types::Fd(self.socket.as_raw_fd()), &slot.header)
                .build()
                .user_data(SEND_TAG | i as u64);
            // SAFETY: the slot lives in self; the caller's bytes live until this call
            // returns, and it returns only after every send has completed (below).
            unsafe { self.push(&sqe)? };
        }
        let (mut done, mut ok) = (0, 0);
        while done < count {
            match self.ring.submit_and_wait(1) {
                Ok(_) => {}
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error),
            }
            self.reap(&mut done, &mut ok);
        }
        Ok(ok)
    }

    fn recv_batch(&mut self, on_datagram: &mut dyn FnMut(SocketAddr, &mut [u8])) -> io::Result<usize> {
        let (mut done, mut ok) = (0, 0);
        if self.ready.is_empty() && self.ring.completion().is_empty() && self.ring.submission().taskrun() {
            // Completions are pending in the kernel: one enter runs them onto the ring.
            self.ring.submit_and_wait(0)?;
        }
        self.reap(&mut done, &mut ok);
        debug_assert_eq!(done, 0, "sends are reaped inside send_batch");
        if self.ready.is_empty() {
            return Ok(0); // nothing arrived: no syscall
        }
        let mut ready = std::mem::take(&mut self.ready);
        let mut delivered = 0;
        for &(slot, length) in &ready {
            if length > 0
                && let Some(source) = sockaddr::read(&self.recv_slots[slot].name)
            {
                let start = slot * self.slot_bytes;
                on_datagram(source, &mut self.recv_buffers[start..start + length.min(self.slot_bytes)]);
                delivered += 1;
            }
            self.post_recv(slot)?;
        }
        ready.clear();
        self.ready = ready;
        self.ring.submit()?;
        Ok(delivered)
    }

    fn wait_readable(&mut self, timeout: std::time::Duration) -> io::Result<()> {
        if !self.ready.is_empty() || !self.ring.completion().is_empty() {
            return Ok(());
        }
        let timespec = types::Timespec::from(timeout);
        let args = types::SubmitArgs::new().timespec(&timespec);
        match self.ring.submitter().submit_with_args(1, &args) {
            Ok(_) => Ok(()),
            Err(error) if matches!(error.raw_os_error(), Some(libc::ETIME) | Some(libc::EINTR)) => Ok(()),
            Err(error) => Err(error),
        }
    }

    fn local_addr(&self) -> SocketAddr {
        self.local
    }

    fn name(&self) -> &'static str {
        "io_uring"
    }
}
