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
use ordo_core::{EntryKind, HEADER_BYTES, Position, Term};

pub use ordo_core::LogSource;

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

impl From<&ordo_core::TransportConfig> for StreamConfig {
    fn from(config: &ordo_core::TransportConfig) -> Self {
        StreamConfig {
            window_bytes: config.window_bytes,
            retransmit_timeout_ns: config.retransmit_timeout_ms * 1_000_000,
            nak_interval_ns: config.nak_interval_us * 1_000,
        }
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

impl<'a> Chunk<'a> {
    /// The Append frame body that carries this chunk.
    pub fn to_body(self, commit_position: Position) -> crate::Body<'a> {
        crate::Body::Append {
            from_position: self.from_position,
            commit_position,
            checksum_prev: self.checksum_prev,
            fragment_offset: self.fragment_offset,
            bytes: self.bytes,
        }
    }

    /// The chunk an Append frame body carries.
    pub fn from_body(body: &crate::Body<'a>) -> Option<Chunk<'a>> {
        match *body {
            crate::Body::Append { from_position, checksum_prev, fragment_offset, bytes, .. } => {
                Some(Chunk { from_position, checksum_prev, fragment_offset, bytes })
            }
            _ => None,
        }
    }
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

    /// Starts the stream again from `position`, forgetting what was acknowledged: the
    /// follower's log was found to diverge before what it had acknowledged.
    pub fn restart_at(&mut self, position: Position, now_ns: u64) {
        self.position_next = position;
        self.position_acked = position;
        self.fragment_offset = 0;
        self.progress_ns = now_ns;
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
    /// Where the entry being reassembled starts, and the term of the leader sending it: a
    /// fragment joins only an entry of its own term (another leader's entry at the same
    /// position is another entry).
    fragment_position: Option<(Position, Term)>,
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

    /// The entry last reassembled from fragments (what `Received::Entries` pointed at).
    pub fn reassembled(&self) -> &[u8] {
        &self.fragments
    }

    /// Forgets a partly reassembled entry: the leader changed.
    pub fn reset(&mut self) {
        self.fragment_position = None;
        self.fragments.clear();
    }

    /// Classifies an Append frame of the leader of `term` against the follower's log end
    /// `log_end`.
    pub fn on_append<'a>(&'a mut self, log_end: Position, chunk: Chunk<'a>, term: Term, now_ns: u64) -> Received<'a> {
        let Chunk { from_position: from, fragment_offset, bytes, .. } = chunk;
        if fragment_offset > 0 {
            let continues =
                self.fragment_position == Some((from, term)) && self.fragments.len() == fragment_offset as usize;
            let resent =
                self.fragment_position == Some((from, term)) && self.fragments.len() > fragment_offset as usize;
            if from < log_end || (from == log_end && resent) {
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
                self.fragment_position = Some((from, term));
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

#[cfg(test)]
mod tests {
    use super::*;
    use ordo_core::{ClusterId, ClusterTimeNs, Durability, EntryMeta, LogConfig, SessionId};
    use ordo_log::Log;

    const CAPACITY: usize = 1328;

    fn log_with(dir: &std::path::Path, payloads: &[usize]) -> Log {
        log_in_term(dir, Term(1), payloads)
    }

    /// A log of commands of `term`, one of each payload size, the bytes of command k `k | term`.
    fn log_in_term(dir: &std::path::Path, term: Term, payloads: &[usize]) -> Log {
        let config = LogConfig {
            cluster_id: ClusterId(1),
            segment_bytes: 64 * 1024,
            durability: Durability::Replicated,
            entry_payload_bytes_max: 8192,
        };
        let (mut log, _) = Log::open(dir, config).unwrap();
        for (k, &size) in payloads.iter().enumerate() {
            let meta = EntryMeta::command(term, ClusterTimeNs(0), SessionId(1), k as u64);
            log.append(&meta, &vec![k as u8 | term.0 as u8; size]).unwrap();
        }
        log
    }

    fn config() -> StreamConfig {
        StreamConfig { window_bytes: 1 << 20, retransmit_timeout_ns: 1_000, nak_interval_ns: 100 }
    }

    fn chunks<'a>(stream: &mut PeerStream, log: &'a Log, frames_max: usize) -> Vec<Chunk<'a>> {
        let mut out = Vec::new();
        stream.poll(log, CAPACITY, frames_max, &mut |chunk| out.push(chunk));
        out
    }

    /// Feeds chunks to a receiver and a follower log as a follower would; returns the log.
    fn follow(chunks: &[Chunk<'_>]) -> (tempfile::TempDir, Log) {
        let dir = tempfile::tempdir().unwrap();
        let mut log = log_with(dir.path(), &[]);
        let mut receiver = StreamReceiver::new(config(), 8192 + 64);
        for chunk in chunks {
            if let Received::Entries { position, bytes } = receiver.on_append(log.position_append(), *chunk, Term(1), 0)
            {
                log.append_raw(position, bytes).unwrap();
            }
        }
        (dir, log)
    }

    #[test]
    fn whole_entries_are_batched_up_to_the_frame_capacity() {
        let dir = tempfile::tempdir().unwrap();
        let log = log_with(dir.path(), &[64; 100]); // 128-byte entries: 10 a frame
        let mut stream = PeerStream::new(Position::ZERO, 0, config());
        let sent = chunks(&mut stream, &log, 64);
        assert_eq!(sent.len(), 10);
        assert!(sent.iter().all(|c| c.bytes.len() == 1280 && c.fragment_offset == 0));
        assert_eq!(stream.position_next(), log.position_append());
        let (_dir, follower) = follow(&sent);
        assert_eq!(follower.checksum_last(), log.checksum_last());
    }

    #[test]
    fn padding_travels_as_its_header_alone_and_ends_its_frame() {
        let dir = tempfile::tempdir().unwrap();
        let log = log_with(dir.path(), &[1000; 70]); // 1088-byte entries: a segment holds 60
        let mut stream = PeerStream::new(Position::ZERO, 0, config());
        let sent = chunks(&mut stream, &log, 1000);
        // 1088-byte entries go one a frame; the segment's padding header rides at the end of
        // the frame before it, and nothing follows it in that frame.
        let ends_with_padding = |c: &&Chunk| {
            let mut offset = 0;
            while let Some(header) = c.bytes.get(offset..).and_then(read_header) {
                if header.kind() == Some(EntryKind::Padding) {
                    return offset + HEADER_BYTES == c.bytes.len();
                }
                offset += header.span_bytes() as usize;
            }
            false
        };
        let carrier = sent.iter().find(ends_with_padding).expect("a frame carries the padding");
        assert_eq!(carrier.bytes.len(), 1088 + HEADER_BYTES);
        let next = sent.iter().position(|c| c == carrier).unwrap() + 1;
        assert_eq!(sent[next].from_position, Position(64 * 1024), "the next frame starts the next segment");
        let (_dir, follower) = follow(&sent);
        assert_eq!(follower.position_append(), log.position_append());
        assert_eq!(follower.checksum_last(), log.checksum_last());
    }

    #[test]
    fn an_entry_larger_than_a_frame_goes_in_fragments_and_is_reassembled() {
        let dir = tempfile::tempdir().unwrap();
        let log = log_with(dir.path(), &[10, 5000, 10]);
        let mut stream = PeerStream::new(Position::ZERO, 0, config());
        let sent = chunks(&mut stream, &log, 64);
        let fragments: Vec<_> = sent.iter().filter(|c| c.from_position == Position(96)).collect();
        assert_eq!(fragments.len(), 4, "5064 bytes in 1328-byte pieces");
        assert_eq!(fragments.iter().map(|c| c.fragment_offset).collect::<Vec<_>>(), vec![0, 1328, 2656, 3984]);
        let (_dir, follower) = follow(&sent);
        assert_eq!(follower.checksum_last(), log.checksum_last());
        // A fragment out of turn is a gap, and the entry is resent whole.
        let (_dir, follower) = follow(&[sent[0], sent[2]]);
        assert_eq!(follower.position_append(), Position(96));
    }

    #[test]
    fn fragments_of_another_leaders_entry_at_the_same_position_are_never_joined() {
        // The leader of term 1 sends the first fragment of its entry at 96 and fails; the
        // leader of term 2 has another 5000-byte entry at 96, and its later fragments arrive.
        let (old_dir, new_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let old = log_in_term(old_dir.path(), Term(1), &[10, 5000]);
        let new = log_in_term(new_dir.path(), Term(2), &[10, 5000]);
        let old_sent = chunks(&mut PeerStream::new(Position(96), 0, config()), &old, 64);
        let new_sent = chunks(&mut PeerStream::new(Position(96), 0, config()), &new, 64);
        assert_eq!((old_sent.len(), new_sent.len()), (4, 4), "an entry in four fragments each");
        let end = Position(96);
        let mut receiver = StreamReceiver::new(config(), 8192 + 64);
        assert_eq!(receiver.on_append(end, old_sent[0], Term(1), 0), Received::Fragment);
        for (k, chunk) in new_sent[1..].iter().enumerate() {
            let received = receiver.on_append(end, *chunk, Term(2), 1 + k as u64);
            assert!(!matches!(received, Received::Entries { .. }), "fragment {} joined the old leader's entry", k + 1);
        }
        // The new leader's whole entry, resent from its first fragment, is taken.
        assert_eq!(receiver.on_append(end, new_sent[0], Term(2), 10), Received::Fragment);
        for chunk in &new_sent[1..3] {
            assert_eq!(receiver.on_append(end, *chunk, Term(2), 10), Received::Fragment);
        }
        let Received::Entries { bytes, .. } = receiver.on_append(end, new_sent[3], Term(2), 10) else {
            panic!("the new leader's entry is reassembled")
        };
        assert_eq!(bytes, new.read(end, bytes.len()).unwrap().1);
    }

    #[test]
    fn the_sender_stops_at_the_window_and_goes_on_after_an_ack() {
        let dir = tempfile::tempdir().unwrap();
        let log = log_with(dir.path(), &[64; 200]); // 25600 bytes
        let config = StreamConfig { window_bytes: 4096, ..config() };
        let mut stream = PeerStream::new(Position::ZERO, 0, config);
        let sent = chunks(&mut stream, &log, 64);
        assert_eq!(stream.position_next(), Position(4096), "three full frames and two entries fill 4096");
        assert_eq!(sent.len(), 4);
        assert!(chunks(&mut stream, &log, 64).is_empty(), "nothing more until an ack");
        stream.on_ack(Position(2560), 10);
        assert_eq!(chunks(&mut stream, &log, 64).len(), 2);
        assert_eq!(stream.position_next(), Position(2560 + 4096));
    }

    #[test]
    fn a_nak_or_an_ack_timeout_rewinds_the_sender() {
        let dir = tempfile::tempdir().unwrap();
        let log = log_with(dir.path(), &[64; 50]);
        let mut stream = PeerStream::new(Position::ZERO, 0, config());
        chunks(&mut stream, &log, 64);
        stream.on_nak(Position(1280), 10);
        assert_eq!((stream.position_next(), stream.position_acked()), (Position(1280), Position(1280)));
        chunks(&mut stream, &log, 64);
        stream.on_tick(500);
        assert_eq!(stream.position_next(), log.position_append(), "not yet timed out");
        stream.on_tick(1_010);
        assert_eq!(stream.position_next(), Position(1280), "no ack for the timeout: resend from the last ack");
    }

    #[test]
    fn the_receiver_takes_only_the_log_end_and_naks_a_gap_once_per_interval() {
        let dir = tempfile::tempdir().unwrap();
        let log = log_with(dir.path(), &[64; 30]);
        let mut stream = PeerStream::new(Position::ZERO, 0, config());
        let sent = chunks(&mut stream, &log, 64);
        let mut receiver = StreamReceiver::new(config(), 8192);
        let end = Position(1280);
        assert_eq!(receiver.on_append(end, sent[0], Term(1), 0), Received::Duplicate, "old bytes");
        assert_eq!(receiver.on_append(end, sent[2], Term(1), 0), Received::Gap { nak: Some(end) });
        assert_eq!(receiver.on_append(end, sent[2], Term(1), 50), Received::Gap { nak: None }, "not again so soon");
        assert_eq!(receiver.on_append(end, sent[2], Term(1), 150), Received::Gap { nak: Some(end) });
        assert!(
            matches!(receiver.on_append(end, sent[1], Term(1), 200), Received::Entries { position, .. } if position == end)
        );
        // A resend that starts before the end delivers the part after it.
        let late = Chunk {
            from_position: Position::ZERO,
            checksum_prev: 0,
            fragment_offset: 0,
            bytes: log.read(Position::ZERO, 2560).unwrap().1,
        };
        assert!(
            matches!(receiver.on_append(end, late, Term(1), 300), Received::Entries { position, bytes } if position == end && bytes.len() == 1280)
        );
    }

    #[test]
    fn a_replayed_frame_from_an_older_term_or_with_an_old_sequence_is_harmless() {
        use crate::{Body, FrameCodec, FrameKey, KeyRing, Security};
        use ordo_core::MemberId;
        let dir = tempfile::tempdir().unwrap();
        let log = log_with(dir.path(), &[64; 20]);
        let mut stream = PeerStream::new(Position::ZERO, 0, config());
        let sent = chunks(&mut stream, &log, 64);
        let keys = KeyRing::new(FrameKey::new(&[1; 32]));
        let mut leader = FrameCodec::new(ClusterId(1), MemberId(1), Security::Mac, keys.clone(), 1408);
        let follower_codec = FrameCodec::new(ClusterId(1), MemberId(2), Security::Mac, keys, 1408);
        let mut datagram = [0u8; 1408];
        let chunk = sent[0];
        let body = Body::Append {
            from_position: chunk.from_position,
            commit_position: Position::ZERO,
            checksum_prev: 0,
            fragment_offset: 0,
            bytes: chunk.bytes,
        };
        let length = leader.encode(&mut datagram, Term(1), &body).unwrap();
        let (_dir, mut follower) = follow(&[]);
        let mut receiver = StreamReceiver::new(config(), 8192);
        for replay in 0..3 {
            let mut copy = datagram;
            let frame = follower_codec.decode(&mut copy[..length]).unwrap(); // a replay authenticates
            let chunk = Chunk::from_body(&frame.body).expect("an Append frame");
            match receiver.on_append(follower.position_append(), chunk, Term(1), replay) {
                Received::Entries { position, bytes } => {
                    assert_eq!(replay, 0);
                    follower.append_raw(position, bytes).unwrap();
                }
                other => assert_eq!(other, Received::Duplicate, "replay {replay} changes nothing"),
            }
        }
        assert_eq!(follower.position_append(), Position(1280));
    }
}
