//! The log entry: a fixed 64-byte little-endian header read in place with `zerocopy`,
//! then the payload, the whole padded to a multiple of 32 bytes.
//!
//! ```text
//! offset  size  field
//!      0     4  checksum        CRC32C of every entry byte after it (see checksum.rs)
//!      4     4  length          header + payload bytes (before alignment)
//!      8     1  kind            EntryKind
//!      9     1  flags           reserved for the layers above; 0 today
//!     10     1  version         HEADER_VERSION
//!     11     1  reserved        0
//!     12     4  checksum_prev   the previous entry's checksum: the chain
//!     16     8  term            leadership term that appended the entry
//!     24     8  position        the entry's own log position (catches misplaced bytes)
//!     32     8  timestamp_ns    cluster time assigned by the leader
//!     40     8  session_id      client session, 0 for cluster entries
//!     48     8  correlation_id  client's sequence / correlation id
//!     56     8  reserved        0
//!     64     …  payload         opaque to the log; 32-byte aligned in the map, so rkyv
//!                               archives can be read in place
//! ```

use crate::checksum::{CHECKSUM_FIELD, entry_checksum};
use crate::error::Error;
use crate::ids::{ClusterTimeNs, Position, SessionId, Term, align32};
use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

pub const HEADER_BYTES: usize = 64;
pub const HEADER_VERSION: u8 = 1;

/// What an entry is. 0 is deliberately not a kind, so zeroed (never written) bytes are
/// never mistaken for an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum EntryKind {
    /// A client command; the payload is the application's encoded command.
    Command = 1,
    /// The first entry of every leadership term; committing it commits everything before.
    NewLeadershipTerm = 2,
    /// A timer fired by the leader for the service.
    Timer = 3,
    SessionOpen = 4,
    SessionClose = 5,
    /// Every member snapshots at this entry's position.
    SnapshotRequest = 6,
    MembershipChange = 7,
    NoOp = 8,
    /// Fills the end of a segment that the next entry does not fit in. Its payload bytes
    /// are zeros, carry no data and are not checksummed.
    Padding = 9,
    /// An event the service emitted, in a member's event log: its session and cluster time
    /// are those of the entry that emitted it, its correlation id that entry's log position.
    Event = 10,
}

impl EntryKind {
    pub const ALL: [EntryKind; 10] = [
        EntryKind::Command,
        EntryKind::NewLeadershipTerm,
        EntryKind::Timer,
        EntryKind::SessionOpen,
        EntryKind::SessionClose,
        EntryKind::SnapshotRequest,
        EntryKind::MembershipChange,
        EntryKind::NoOp,
        EntryKind::Padding,
        EntryKind::Event,
    ];

    /// The kind numbered `value` on disk (`ALL` is in number order, from 1).
    pub fn from_u8(value: u8) -> Option<Self> {
        EntryKind::ALL.get(value.wrapping_sub(1) as usize).copied()
    }

    /// The lower-case name used by `ordo log dump`.
    pub const fn name(self) -> &'static str {
        match self {
            EntryKind::Command => "command",
            EntryKind::NewLeadershipTerm => "new-leadership-term",
            EntryKind::Timer => "timer",
            EntryKind::SessionOpen => "session-open",
            EntryKind::SessionClose => "session-close",
            EntryKind::SnapshotRequest => "snapshot-request",
            EntryKind::MembershipChange => "membership-change",
            EntryKind::NoOp => "no-op",
            EntryKind::Padding => "padding",
            EntryKind::Event => "event",
        }
    }
}

/// The fixed entry header, read in place from the mapped log or a datagram.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub struct EntryHeader {
    pub checksum: U32,
    pub length: U32,
    pub kind: u8,
    pub flags: u8,
    pub version: u8,
    pub reserved: u8,
    pub checksum_prev: U32,
    pub term: U64,
    pub position: U64,
    pub timestamp_ns: U64,
    pub session_id: U64,
    pub correlation_id: U64,
    pub reserved_tail: U64,
}

const _: () = assert!(size_of::<EntryHeader>() == HEADER_BYTES);
const _: () = assert!(HEADER_BYTES as u64 == align32(HEADER_BYTES as u64));

impl EntryHeader {
    pub fn kind(&self) -> Option<EntryKind> {
        EntryKind::from_u8(self.kind)
    }
    pub fn term(&self) -> Term {
        Term(self.term.get())
    }
    pub fn position(&self) -> Position {
        Position(self.position.get())
    }
    pub fn timestamp(&self) -> ClusterTimeNs {
        ClusterTimeNs(self.timestamp_ns.get())
    }
    pub fn session(&self) -> SessionId {
        SessionId(self.session_id.get())
    }
    pub fn length_bytes(&self) -> u32 {
        self.length.get()
    }
    /// Bytes the entry occupies in the log, alignment included.
    pub fn span_bytes(&self) -> u64 {
        align32(self.length.get() as u64)
    }
}

/// What the appender decides about an entry; the log fills in position and checksums.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryMeta {
    pub kind: EntryKind,
    pub flags: u8,
    pub term: Term,
    pub timestamp: ClusterTimeNs,
    pub session: SessionId,
    pub correlation_id: u64,
}

impl EntryMeta {
    pub fn command(term: Term, timestamp: ClusterTimeNs, session: SessionId, correlation_id: u64) -> Self {
        EntryMeta { kind: EntryKind::Command, flags: 0, term, timestamp, session, correlation_id }
    }
}

/// Bytes an entry with `payload_bytes` of payload occupies in the log.
#[inline]
pub const fn entry_span_bytes(payload_bytes: usize) -> u64 {
    align32((HEADER_BYTES + payload_bytes) as u64)
}

/// Encodes one entry into `out` (which must hold its whole aligned span) and returns its
/// checksum. The alignment bytes after the payload are zeroed.
pub fn encode_entry(
    out: &mut [u8],
    position: Position,
    checksum_prev: u32,
    meta: &EntryMeta,
    payload: &[u8],
) -> Result<u32, Error> {
    let length = HEADER_BYTES + payload.len();
    let span = align32(length as u64) as usize;
    if payload.len() > u32::MAX as usize - HEADER_BYTES || out.len() < span {
        return Err(Error::EntryDoesNotFit { position, needed_bytes: span as u64, available_bytes: out.len() as u64 });
    }
    debug_assert!(position.is_aligned());
    debug_assert_ne!(meta.kind, EntryKind::Padding, "padding is written by encode_padding");
    let header = EntryHeader {
        length: U32::new(length as u32),
        kind: meta.kind as u8,
        flags: meta.flags,
        version: HEADER_VERSION,
        reserved: 0,
        checksum: U32::ZERO,
        checksum_prev: U32::new(checksum_prev),
        term: U64::new(meta.term.0),
        position: U64::new(position.0),
        timestamp_ns: U64::new(meta.timestamp.0),
        session_id: U64::new(meta.session.0),
        correlation_id: U64::new(meta.correlation_id),
        reserved_tail: U64::ZERO,
    };
    let (head, rest) = out[..span].split_at_mut(HEADER_BYTES);
    head.copy_from_slice(header.as_bytes());
    rest[..payload.len()].copy_from_slice(payload);
    rest[payload.len()..].fill(0);
    let checksum = entry_checksum(&out[..length]);
    out[CHECKSUM_FIELD].copy_from_slice(&checksum.to_le_bytes());
    Ok(checksum)
}

/// Encodes a padding entry that fills all of `out` (the rest of a segment). Only its header
/// is written and checksummed; the caller guarantees the rest is already zero.
pub fn encode_padding(out: &mut [u8], position: Position, checksum_prev: u32, term: Term) -> u32 {
    assert!(out.len() >= HEADER_BYTES && out.len() as u64 == align32(out.len() as u64));
    assert!(out.len() <= u32::MAX as usize);
    let header = EntryHeader {
        length: U32::new(out.len() as u32),
        kind: EntryKind::Padding as u8,
        flags: 0,
        version: HEADER_VERSION,
        reserved: 0,
        checksum: U32::ZERO,
        checksum_prev: U32::new(checksum_prev),
        term: U64::new(term.0),
        position: U64::new(position.0),
        timestamp_ns: U64::ZERO,
        session_id: U64::ZERO,
        correlation_id: U64::ZERO,
        reserved_tail: U64::ZERO,
    };
    let head = &mut out[..HEADER_BYTES];
    head.copy_from_slice(header.as_bytes());
    let checksum = entry_checksum(head);
    head[CHECKSUM_FIELD].copy_from_slice(&checksum.to_le_bytes());
    checksum
}

/// One decoded entry, borrowed from the buffer it was decoded from (zero copy).
#[derive(Clone, Copy, Debug)]
pub struct EntryView<'a> {
    pub header: &'a EntryHeader,
    /// The payload (empty for padding).
    pub payload: &'a [u8],
}

impl<'a> EntryView<'a> {
    pub fn kind(&self) -> EntryKind {
        // decode_entry only returns views with a known kind.
        EntryKind::from_u8(self.header.kind).unwrap_or(EntryKind::NoOp)
    }
    pub fn position(&self) -> Position {
        self.header.position()
    }
    pub fn checksum(&self) -> u32 {
        self.header.checksum.get()
    }
    pub fn checksum_prev(&self) -> u32 {
        self.header.checksum_prev.get()
    }
    /// Position of the entry after this one.
    pub fn next_position(&self) -> Position {
        self.position().after_entry(self.header.length_bytes())
    }
}

/// Reads the header at the start of `bytes` in place, checking only that there are enough
/// bytes. Use [`decode_entry`] to check everything else.
pub fn read_header(bytes: &[u8]) -> Option<&EntryHeader> {
    EntryHeader::ref_from_prefix(bytes).ok().map(|(header, _)| header)
}

/// True when the 64 bytes at the start of `bytes` are all zero: nothing was ever written
/// there (segments are preallocated zeroed and truncation zeroes what it drops).
pub fn is_unwritten(bytes: &[u8]) -> bool {
    bytes.len() >= HEADER_BYTES && bytes[..HEADER_BYTES].iter().all(|&b| b == 0)
}

/// Decodes and verifies the entry at the start of `bytes`, which must sit at `position`:
/// structure, kind, version, its own position and its checksum. The chain link
/// (`checksum_prev` against the previous entry) is the caller's to check, since only the
/// caller knows the previous entry. Any byte sequence gives an error or a valid view.
pub fn decode_entry(bytes: &[u8], position: Position) -> Result<EntryView<'_>, Error> {
    let Some(header) = read_header(bytes) else {
        return Err(Error::EntryTruncated {
            position,
            needed_bytes: HEADER_BYTES as u64,
            available_bytes: bytes.len() as u64,
        });
    };
    let length = header.length.get() as usize;
    if length < HEADER_BYTES {
        return Err(Error::EntryMalformed { position, reason: "its length is shorter than the 64-byte header" });
    }
    if header.version != HEADER_VERSION {
        return Err(Error::EntryMalformed { position, reason: "its header version is not 1" });
    }
    let Some(kind) = header.kind() else {
        return Err(Error::EntryMalformed { position, reason: "its kind is not a known entry kind" });
    };
    // A padding entry's bytes after its header are zeros that carry nothing, so a sender
    // may ship its header alone; every other entry must be whole.
    if kind != EntryKind::Padding && length > bytes.len() {
        return Err(Error::EntryTruncated {
            position,
            needed_bytes: length as u64,
            available_bytes: bytes.len() as u64,
        });
    }
    if header.reserved != 0 || header.reserved_tail.get() != 0 {
        return Err(Error::EntryMalformed { position, reason: "its reserved header bytes are not zero" });
    }
    if header.position() != position {
        return Err(Error::EntryMisplaced { position, recorded: header.position() });
    }
    let covered = if kind == EntryKind::Padding { HEADER_BYTES } else { length };
    let payload = &bytes[HEADER_BYTES..covered];
    let computed = entry_checksum(&bytes[..covered]);
    let stored = header.checksum.get();
    if computed != stored {
        return Err(Error::EntryChecksum { position, stored, computed });
    }
    Ok(EntryView { header, payload })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn meta(kind: EntryKind) -> EntryMeta {
        EntryMeta {
            kind,
            flags: 0,
            term: Term(3),
            timestamp: ClusterTimeNs(1_000),
            session: SessionId(7),
            correlation_id: 11,
        }
    }

    fn encoded(position: Position, prev: u32, payload: &[u8]) -> (Vec<u8>, u32) {
        let mut buf = vec![0xAAu8; entry_span_bytes(payload.len()) as usize];
        let checksum = encode_entry(&mut buf, position, prev, &meta(EntryKind::Command), payload).unwrap();
        (buf, checksum)
    }

    #[test]
    fn entry_round_trips_in_place() {
        let (buf, checksum) = encoded(Position(96), 0xdead_beef, b"hello");
        assert_eq!(buf.len(), 96);
        assert!(buf[69..].iter().all(|&b| b == 0), "alignment bytes are zeroed");
        let view = decode_entry(&buf, Position(96)).unwrap();
        assert_eq!(view.kind(), EntryKind::Command);
        assert_eq!(view.payload, b"hello");
        assert_eq!(view.checksum(), checksum);
        assert_eq!(view.checksum_prev(), 0xdead_beef);
        assert_eq!(view.header.term(), Term(3));
        assert_eq!(view.header.session(), SessionId(7));
        assert_eq!(view.next_position(), Position(192));
    }

    #[test]
    fn decode_refuses_an_entry_read_at_the_wrong_position() {
        let (buf, _) = encoded(Position(96), 0, b"x");
        assert!(matches!(decode_entry(&buf, Position(128)), Err(Error::EntryMisplaced { .. })));
    }

    #[test]
    fn kinds_are_numbered_from_one_in_order() {
        for (i, kind) in EntryKind::ALL.iter().enumerate() {
            assert_eq!(*kind as u8, i as u8 + 1);
            assert_eq!(EntryKind::from_u8(*kind as u8), Some(*kind));
        }
        assert_eq!(EntryKind::from_u8(0), None);
        assert_eq!(EntryKind::from_u8(11), None);
    }

    #[test]
    fn decode_refuses_zeroed_bytes() {
        let zeros = [0u8; 128];
        assert!(is_unwritten(&zeros));
        assert!(decode_entry(&zeros, Position(0)).is_err());
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let (buf, _) = encoded(Position(0), 42, b"0123456789abcdef");
        let length = HEADER_BYTES + 16;
        for bit in 0..length * 8 {
            let mut damaged = buf.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert!(decode_entry(&damaged, Position(0)).is_err(), "bit {bit} flip went unnoticed");
        }
    }

    #[test]
    fn padding_fills_its_span_and_checksums_only_its_header() {
        let mut buf = vec![0u8; 4096];
        let checksum = encode_padding(&mut buf, Position(8192), 5, Term(2));
        let view = decode_entry(&buf, Position(8192)).unwrap();
        assert_eq!(
            decode_entry(&buf[..HEADER_BYTES], Position(8192)).unwrap().checksum(),
            checksum,
            "its header alone decodes"
        );
        assert_eq!(view.kind(), EntryKind::Padding);
        assert_eq!(view.checksum(), checksum);
        assert_eq!(view.next_position(), Position(8192 + 4096));
        assert!(view.payload.is_empty());
    }

    #[test]
    fn encode_refuses_a_buffer_too_small() {
        let mut buf = [0u8; 64];
        assert!(matches!(
            encode_entry(&mut buf, Position(0), 0, &meta(EntryKind::Command), b"x"),
            Err(Error::EntryDoesNotFit { .. })
        ));
    }

    fn any_kind() -> impl Strategy<Value = EntryKind> {
        proptest::sample::select(
            EntryKind::ALL.iter().copied().filter(|&k| k != EntryKind::Padding).collect::<Vec<_>>(),
        ) // padding has its own encoder
    }

    proptest! {
        #[test]
        fn any_entry_round_trips(
            kind in any_kind(),
            flags in any::<u8>(),
            term in any::<u64>(),
            slot in 0u64..1 << 40,
            prev in any::<u32>(),
            timestamp in any::<u64>(),
            session in any::<u64>(),
            correlation in any::<u64>(),
            payload in proptest::collection::vec(any::<u8>(), 0..600),
        ) {
            let meta = EntryMeta { kind, flags, term: Term(term), timestamp: ClusterTimeNs(timestamp), session: SessionId(session), correlation_id: correlation };
            let position = Position(slot * 32);
            let mut buf = vec![0u8; entry_span_bytes(payload.len()) as usize];
            let checksum = encode_entry(&mut buf, position, prev, &meta, &payload).unwrap();
            let view = decode_entry(&buf, position).unwrap();
            prop_assert_eq!(view.kind(), kind);
            prop_assert_eq!(view.header.flags, flags);
            prop_assert_eq!(view.header.term(), Term(term));
            prop_assert_eq!(view.header.timestamp(), ClusterTimeNs(timestamp));
            prop_assert_eq!(view.header.session(), SessionId(session));
            prop_assert_eq!(view.header.correlation_id.get(), correlation);
            prop_assert_eq!(view.checksum(), checksum);
            prop_assert_eq!(view.checksum_prev(), prev);
            prop_assert_eq!(view.payload, &payload[..]);
        }

        #[test]
        fn any_bytes_decode_to_an_error_or_a_valid_entry(
            bytes in proptest::collection::vec(any::<u8>(), 0..300),
            slot in 0u64..64,
        ) {
            let position = Position(slot * 32);
            if let Ok(view) = decode_entry(&bytes, position) {
                prop_assert_eq!(view.position(), position);
                prop_assert!(view.kind() == EntryKind::Padding || view.header.length_bytes() as usize <= bytes.len());
            }
        }

        #[test]
        fn a_valid_header_with_arbitrary_length_never_panics(length in any::<u32>(), tail in proptest::collection::vec(any::<u8>(), 0..200)) {
            let (mut buf, _) = encoded(Position(0), 0, b"abc");
            buf[4..8].copy_from_slice(&length.to_le_bytes());
            buf.extend_from_slice(&tail);
            let _ = decode_entry(&buf, Position(0));
        }
    }
}
