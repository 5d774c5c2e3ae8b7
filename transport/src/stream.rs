//! The log stream from a leader to each follower, sans-I/O: what to send next
//! ([`PeerStream`], one per follower: batching, window, NAK and timeout rewinds) and what to
//! do with what arrives ([`StreamReceiver`]: in-order delivery, gap detection, reassembly
//! of entries larger than a frame).
//!
//! Append frames carry whole entries, exactly as the sender's log holds them, as many as fit;
//! a padding entry travels as its header alone and ends its frame; an entry larger than a
//! frame travels in fragments. A receiver accepts bytes only at its log's end: a frame from
//! further on is a gap, answered by a NAK with that end; an older frame is a duplicate,
//! answered by an ack (so a lost ack is repaired by the resend it causes). A sender whose
//! acks stall for `retransmit_timeout_ns` rewinds to the last ack: that recovers a lost tail,
//! which no later frame would reveal as a gap.
//!
//! Budget: a 1408-byte frame carries 1328 bytes of log (10 entries of a 64 B command); at
//! 64 frames a poll, one `sendmmsg` moves ~85 KB of log.

use ordo_core::entry::read_header;
use ordo_core::{EntryKind, HEADER_BYTES, Position};

/// Where the stream reads log bytes from (the leader's log).
pub trait LogSource {
    /// Raw log bytes from `position`, zero copy: where they really start (a position in a
    /// segment's unused last bytes moves to the next segment) and as many as are there, up
    /// to the end of the log or of the segment. `None` when `position` is no longer in the
    /// log (deleted after a snapshot): the follower needs the snapshot.
    fn read_log(&self, position: Position) -> Option<(Position, &[u8])>;
    fn log_end(&self) -> Position;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamConfig {
    /// The sender never runs more than this far ahead of a follower's acknowledged position.
    pub window_bytes: u64,
    /// No ack progress for this long while bytes are outstanding: resend from the last ack.
    pub retransmit_timeout_ns: u64,
    /// The same NAK is not repeated more often than this.
    pub nak_interval_ns: u64,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig { window_bytes: 1 << 20, retransmit_timeout_ns: 20_000_000, nak_interval_ns: 2_000_000 }
    }
}

/// One Append frame's worth of log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chunk<'a> {
    pub from_position: Position,
    /// The checksum of the entry before `from_position` (from the first entry's header).
    pub checksum_prev: u32,
    /// Non-zero for the second and later fragments of one large entry.
    pub fragment_offset: u32,
    pub bytes: &'a [u8],
}

/// The leader's view of one follower's stream.
#[derive(Clone, Debug)]
pub struct PeerStream {
    config: StreamConfig,
    position_next: Position,
    position_acked: Position,
    /// How much of a too-large entry at `position_next` has been sent.
    fragment_offset: u32,
    progress_ns: u64,
}

impl PeerStream {
    /// A stream that starts sending at `position` (the follower's end, as far as known).
    pub fn new(position: Position, now_ns: u64, config: StreamConfig) -> Self {
        PeerStream {
            config,
            position_next: position,
            position_acked: position,
            fragment_offset: 0,
            progress_ns: now_ns,
        }
    }

    pub fn position_acked(&self) -> Position {
        self.position_acked
    }

    pub fn position_next(&self) -> Position {
        self.position_next
    }

    /// The follower holds everything below `position_append`.
    pub fn on_ack(&mut self, position_append: Position, now_ns: u64) {
        if position_append > self.position_acked {
            self.position_acked = position_append;
            self.progress_ns = now_ns;
        }
        if self.position_next < self.position_acked {
            self.position_next = self.position_acked;
            self.fragment_offset = 0;
        }
    }

    /// The follower's log ends at `position` and it saw a frame from beyond: resend from there.
    pub fn on_nak(&mut self, position: Position, now_ns: u64) {
        self.on_ack(position, now_ns);
        if position < self.position_next || self.fragment_offset > 0 {
            self.position_next = position.max(self.position_acked);
            self.fragment_offset = 0;
        }
    }

    /// Rewinds to the last ack when acks have stalled with bytes outstanding.
    pub fn on_tick(&mut self, now_ns: u64) {
        let outstanding = self.position_next > self.position_acked || self.fragment_offset > 0;
        if outstanding && now_ns.saturating_sub(self.progress_ns) >= self.config.retransmit_timeout_ns {
            self.position_next = self.position_acked;
            self.fragment_offset = 0;
            self.progress_ns = now_ns;
        }
    }

    /// Hands `emit` up to `frames_max` chunks of at most `capacity_bytes` each, within the
    /// window; returns how many. `None` from the source (the follower needs a snapshot)
    /// stops the stream until the caller moves it with `on_ack`.
    pub fn poll<'a>(
        &mut self,
        log: &'a dyn LogSource,
        capacity_bytes: usize,
        frames_max: usize,
        emit: &mut dyn FnMut(Chunk<'a>),
    ) -> usize {
        debug_assert!(capacity_bytes >= HEADER_BYTES);
        let mut frames = 0;
        while frames < frames_max && self.position_next < log.log_end() {
            let window_end = self.position_acked.0 + self.config.window_bytes;
            let Some((start, bytes)) = log.read_log(self.position_next) else { break };
            self.position_next = start;
            let Some(first) = read_header(bytes) else { break };
            let first_length = first.length_bytes() as usize;
            let nothing_outstanding = start == self.position_acked;
            if first.kind() != Some(EntryKind::Padding) && first_length > capacity_bytes {
                // A large entry, in fragments. The window may hold less than one entry; it
                // still goes when nothing else is outstanding, or it would never go.
                let offset = self.fragment_offset as usize;
                let piece = capacity_bytes.min(first_length - offset);
                if start.0 + (offset + piece) as u64 > window_end && !nothing_outstanding {
                    break;
                }
                let checksum_prev = if offset == 0 { first.checksum_prev.get() } else { 0 };
                emit(Chunk {
                    from_position: start,
                    checksum_prev,
                    fragment_offset: offset as u32,
                    bytes: &bytes[offset..offset + piece],
                });
                frames += 1;
                self.fragment_offset += piece as u32;
                if self.fragment_offset as usize == first_length {
                    self.position_next = Position(start.0 + first.span_bytes());
                    self.fragment_offset = 0;
                }
                continue;
            }
            // Whole entries: as many as fit in the frame and the window.
            let (mut included, mut advance) = (0usize, 0u64);
            while let Some(header) = bytes.get(included..).and_then(read_header) {
                let span = header.span_bytes();
                if header.kind() == Some(EntryKind::Padding) {
                    if included + HEADER_BYTES <= capacity_bytes {
                        included += HEADER_BYTES;
                        advance += span;
                    }
                    break; // padding ends its segment, and so the frame
                }
                let length = header.length_bytes() as usize;
                if included + length > capacity_bytes || (start.0 + advance + span > window_end && advance > 0) {
                    break;
                }
                included = (included + span as usize).min(bytes.len());
                advance += span;
            }
            if advance == 0 || (start.0 + advance > window_end && !nothing_outstanding) {
                break;
            }
            let bytes = &bytes[..included.min(capacity_bytes)];
            emit(Chunk { from_position: start, checksum_prev: first.checksum_prev.get(), fragment_offset: 0, bytes });
            frames += 1;
            self.position_next = Position(start.0 + advance);
        }
        frames
    }
}

/// What a follower does with an Append frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Received<'a> {
    /// Whole entries to append at the log's end (`position` is that end).
    Entries { position: Position, bytes: &'a [u8] },
    /// A fragment was kept; the entry is not whole yet.
    Fragment,
    /// Nothing new: answer with an ack of the log's end.
    Duplicate,
    /// From beyond the log's end: answer with a NAK of the end, unless one was just sent.
    Gap { nak: Option<Position> },
}

/// A follower's side of the stream.
#[derive(Clone, Debug)]
pub struct StreamReceiver {
    config: StreamConfig,
    fragments: Vec<u8>,
    fragment_position: Option<Position>,
    fragments_bytes_max: usize,
    nak_last: Option<(Position, u64)>,
}

impl StreamReceiver {
    /// `entry_bytes_max` bounds the reassembly buffer (the largest entry, header included).
    pub fn new(config: StreamConfig, entry_bytes_max: usize) -> Self {
        StreamReceiver {
            config,
            fragments: Vec::with_capacity(entry_bytes_max),
            fragment_position: None,
            fragments_bytes_max: entry_bytes_max,
            nak_last: None,
        }
    }

    /// Classifies an Append frame against the follower's log end `log_end`.
    pub fn on_append<'a>(&'a mut self, log_end: Position, chunk: Chunk<'a>, now_ns: u64) -> Received<'a> {
        let Chunk { from_position: from, fragment_offset, bytes, .. } = chunk;
        if fragment_offset > 0 {
            let continues = self.fragment_position == Some(from) && self.fragments.len() == fragment_offset as usize;
            if from < log_end || (from == log_end && self.fragments.len() > fragment_offset as usize) {
                return Received::Duplicate;
            }
            if !continues || from != log_end || self.fragments.len() + bytes.len() > self.fragments_bytes_max {
                self.fragment_position = None;
                return self.gap(log_end, now_ns);
            }
            self.fragments.extend_from_slice(bytes);
            let whole = read_header(&self.fragments).is_some_and(|h| h.length_bytes() as usize <= self.fragments.len());
            if whole {
                self.fragment_position = None;
                return Received::Entries { position: from, bytes: &self.fragments };
            }
            return Received::Fragment;
        }
        if from > log_end {
            return self.gap(log_end, now_ns);
        }
        if from == log_end {
            let first = read_header(bytes);
            let partial =
                first.is_some_and(|h| h.kind() != Some(EntryKind::Padding) && h.length_bytes() as usize > bytes.len());
            if partial {
                if bytes.len() > self.fragments_bytes_max {
                    return self.gap(log_end, now_ns);
                }
                self.fragments.clear();
                self.fragments.extend_from_slice(bytes);
                self.fragment_position = Some(from);
                return Received::Fragment;
            }
            return Received::Entries { position: from, bytes };
        }
        // From before the end: a resend or a late frame. Deliver what lies past the end if
        // the end is an entry boundary inside it.
        let (mut position, mut offset) = (from, 0usize);
        while let Some(header) = bytes.get(offset..).and_then(read_header) {
            if position == log_end {
                return Received::Entries { position, bytes: &bytes[offset..] };
            }
            if header.kind() == Some(EntryKind::Padding) {
                break;
            }
            position = Position(position.0 + header.span_bytes());
            offset += header.span_bytes() as usize;
        }
        Received::Duplicate
    }

    fn gap(&mut self, log_end: Position, now_ns: u64) -> Received<'static> {
        let repeat = self.nak_last.is_some_and(|(position, at)| {
            position == log_end && now_ns.saturating_sub(at) < self.config.nak_interval_ns
        });
        if repeat {
            return Received::Gap { nak: None };
        }
        self.nak_last = Some((log_end, now_ns));
        Received::Gap { nak: Some(log_end) }
    }
}
