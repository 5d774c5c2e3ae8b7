//! An endpoint: a datagram backend plus the frame codec, with per-reason drop counters.
//! Frames are queued into preallocated send buffers and go out in one batch on `flush`;
//! received datagrams are decoded in place and handed up only if they check out.

use crate::backend::{BATCH_DATAGRAMS_MAX, Datagrams, Outgoing};
use crate::frame::{Body, Frame, FrameCodec, FrameError};
use ordo_core::Term;
use std::io;
use std::net::SocketAddr;

/// Datagrams dropped on receipt, by reason ([`FrameError::index`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DropCounters {
    pub by_reason: [u64; FrameError::KINDS],
}

impl DropCounters {
    pub fn total(&self) -> u64 {
        self.by_reason.iter().sum()
    }
    pub fn count(&self, error: &FrameError) -> u64 {
        self.by_reason[error.index()]
    }
}

pub struct Endpoint {
    net: Box<dyn Datagrams>,
    codec: FrameCodec,
    drops: DropCounters,
    /// BATCH_DATAGRAMS_MAX buffers of one MTU each, allocated once.
    send_buffers: Box<[u8]>,
    queued: Vec<(SocketAddr, usize)>,
    pub frames_sent: u64,
    pub frames_received: u64,
}

impl Endpoint {
    pub fn new(net: Box<dyn Datagrams>, codec: FrameCodec) -> Self {
        let mtu = codec.mtu_bytes();
        Endpoint {
            net,
            codec,
            drops: DropCounters::default(),
            send_buffers: vec![0; mtu * BATCH_DATAGRAMS_MAX].into_boxed_slice(),
            queued: Vec::with_capacity(BATCH_DATAGRAMS_MAX),
            frames_sent: 0,
            frames_received: 0,
        }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.net.local_addr()
    }

    pub fn codec(&self) -> &FrameCodec {
        &self.codec
    }

    pub fn codec_mut(&mut self) -> &mut FrameCodec {
        &mut self.codec
    }

    pub fn drops(&self) -> &DropCounters {
        &self.drops
    }

    pub fn net_mut(&mut self) -> &mut dyn Datagrams {
        self.net.as_mut()
    }

    /// Encodes a frame into the next send buffer; a full batch is flushed first.
    pub fn queue(&mut self, to: SocketAddr, term: Term, body: &Body<'_>) -> io::Result<()> {
        let key_id = self.codec.key_id();
        self.queue_keyed(to, key_id, term, body)
    }

    /// [`Endpoint::queue`] sealed under key `key_id` (a member answering a client).
    pub fn queue_keyed(&mut self, to: SocketAddr, key_id: u32, term: Term, body: &Body<'_>) -> io::Result<()> {
        if self.queued.len() == BATCH_DATAGRAMS_MAX {
            self.flush()?;
        }
        let mtu = self.codec.mtu_bytes();
        let slot = self.queued.len();
        let out = &mut self.send_buffers[slot * mtu..(slot + 1) * mtu];
        let length = self
            .codec
            .encode_keyed(out, term, body, key_id)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        self.queued.push((to, length));
        Ok(())
    }

    /// Sends everything queued in one batch; returns how many datagrams went.
    pub fn flush(&mut self) -> io::Result<usize> {
        if self.queued.is_empty() {
            return Ok(0);
        }
        let mtu = self.codec.mtu_bytes();
        let mut batch = [Outgoing { to: self.queued[0].0, bytes: &[] }; BATCH_DATAGRAMS_MAX];
        for (i, &(to, length)) in self.queued.iter().enumerate() {
            batch[i] = Outgoing { to, bytes: &self.send_buffers[i * mtu..i * mtu + length] };
        }
        let sent = self.net.send_batch(&batch[..self.queued.len()]);
        self.queued.clear();
        let sent = sent?;
        self.frames_sent += sent as u64;
        Ok(sent)
    }

    /// Receives one batch; each frame that decodes and authenticates is handed to
    /// `on_frame`, every other datagram is counted by reason and dropped.
    pub fn poll(&mut self, on_frame: &mut dyn FnMut(SocketAddr, Frame<'_>)) -> io::Result<usize> {
        let (codec, drops) = (&self.codec, &mut self.drops);
        let mut frames = 0;
        self.net.recv_batch(&mut |source, bytes| match codec.decode(bytes) {
            Ok(frame) => {
                frames += 1;
                on_frame(source, frame);
            }
            Err(error) => drops.by_reason[error.index()] += 1,
        })?;
        self.frames_received += frames as u64;
        Ok(frames)
    }
}
