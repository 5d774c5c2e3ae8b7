//! Frames: one UDP datagram carries one frame of at most the MTU (default 1408 bytes):
//!
//! ```text
//! header (40 bytes, little-endian, read in place with zerocopy)
//!    0 magic u16 "OR" · 2 version u8 · 3 type u8 · 4 flags u8 · 5 reserved u8 · 6 sender u16
//!    8 length u16 (body bytes) · 10 reserved u16 · 12 key_id u32 (0 = cluster key)
//!   16 cluster_id u64 · 24 term u64 · 32 sequence u64
//! incarnation (16 bytes, encrypted frames only: the sender's, see `auth`)
//! body (`length` bytes: a fixed part per type, then bytes for some types)
//! tag (16 bytes: keyed BLAKE3 over header+body, or the AES-GCM tag of the encrypted body)
//! ```
//!
//! Decoding is total: any bytes give a [`FrameError`] or a valid [`Frame`], never a panic,
//! and a frame whose tag fails is never handed up. Append frames carry raw log bytes exactly
//! as the sender's mapped log holds them: they are copied, never re-encoded.

use crate::auth::{FrameKey, INCARNATION_BYTES, KeyRing, Sealer, Security, TAG_BYTES};
use ordo_core::{ClusterId, MemberId, Position, SessionId, Term};
use std::cell::RefCell;
use std::collections::HashMap;
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

pub const FRAME_MAGIC: u16 = u16::from_le_bytes(*b"OR");
/// 2 since client keys and per-incarnation AEAD keys; 3 since a member that lost its state
/// asks its peers what they hold (`RecoveryQuery`). Members of different versions refuse each
/// other's frames by version (a cluster upgrades as a whole).
pub const FRAME_VERSION: u8 = 3;
pub const FRAME_HEADER_BYTES: usize = 40;
/// UDP payload bytes per datagram: 1500 Ethernet MTU minus IP/UDP headers and headroom for
/// tunnels, as Aeron's default.
pub const MTU_BYTES_DEFAULT: usize = 1408;
pub const MTU_BYTES_MAX: usize = 65000;
const FLAG_ENCRYPTED: u8 = 1;

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub struct FrameHeader {
    pub magic: U16,
    pub version: u8,
    pub frame_type: u8,
    pub flags: u8,
    pub reserved: u8,
    pub sender: U16,
    pub length: U16,
    pub reserved2: U16,
    pub key_id: U32,
    pub cluster_id: U64,
    pub term: U64,
    pub sequence: U64,
}

const _: () = assert!(size_of::<FrameHeader>() == FRAME_HEADER_BYTES);

impl FrameHeader {
    pub fn sender(&self) -> MemberId {
        MemberId(self.sender.get())
    }
    pub fn term(&self) -> Term {
        Term(self.term.get())
    }
}

macro_rules! fixed_body {
    ($(#[$doc:meta])* $name:ident { $($field:ident : $ty:ty),* $(,)? }) => {
        $(#[$doc])*
        #[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug, PartialEq, Eq)]
        #[repr(C)]
        pub struct $name { $(pub $field: $ty),* }
    };
}

fixed_body!(ClientRequestFixed { session: U64, sequence: U64 });
fixed_body!(ClientResponseFixed { session: U64, sequence: U64, position: U64, status: u8, reserved: [u8; 7] });
fixed_body!(RedirectFixed { leader: U16, reserved: [u8; 6] });
fixed_body!(SessionOpenFixed { client_nonce: U64 });
fixed_body!(SessionCloseFixed { session: U64 });
fixed_body!(
    /// `fragment_offset` > 0 (or a body shorter than the entry at `from_position`) marks a
    /// fragment of one entry too large for a frame; otherwise the bytes are whole entries.
    AppendFixed { from_position: U64, commit_position: U64, checksum_prev: U32, fragment_offset: U32 }
);
fixed_body!(AppendAckFixed { position_append: U64, position_durable: U64 });
fixed_body!(NakFixed { position: U64 });
fixed_body!(HeartbeatFixed { position_commit: U64, position_append: U64 });
fixed_body!(VoteRequestFixed { last_term: U64, last_position: U64, pre_vote: u8, reserved: [u8; 7] });
fixed_body!(VoteResponseFixed { granted: u8, pre_vote: u8, reserved: [u8; 6] });
fixed_body!(SnapshotChunkFixed { snapshot_position: U64, offset: U64, total_bytes: U64 });
fixed_body!(EventDataFixed { from_position: U64 });
fixed_body!(SnapshotAckFixed { snapshot_position: U64, offset: U64 });
fixed_body!(StateHashFixed { position: U64, state_hash: U64 });
fixed_body!(SnapshotTakeFixed { nonce: U64 });
fixed_body!(StatusRequestFixed { nonce: U64 });
fixed_body!(RecoveryQueryFixed { nonce: U64 });
fixed_body!(RecoveryReportFixed {
    nonce: U64,
    term: U64,
    last_term: U64,
    log_end: U64,
    recovering: u8,
    reserved: [u8; 7]
});
fixed_body!(EventsGoneFixed { from_position: U64, start: U64 });
fixed_body!(StatusFixed {
    nonce: U64,
    term: U64,
    append_position: U64,
    commit_position: U64,
    applied_position: U64,
    snapshot_position: U64,
    leader: U16,
    role: u8,
    reserved: [u8; 5]
});

/// How the cluster took a client's frame (what a `ClientResponse` says).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ResponseStatus {
    /// Applied now; the reply is the app's.
    Applied = 1,
    /// Applied before (a retry): not again; the reply is the first one's, if still kept.
    Duplicate = 2,
    /// The session is open (sequence 0; the reply is the client's nonce).
    SessionOpened = 3,
    /// Older than the session's window: it may or may not have been applied; not now.
    TooOld = 4,
    /// The session is not open (never was, or the cluster closed it): nothing was applied.
    UnknownSession = 5,
    /// Applied (now, or before for a resend), but the app's reply does not fit a response
    /// frame: the reply bytes are its length and the limit, each a little-endian u32.
    ReplyTooLarge = 6,
}

impl ResponseStatus {
    pub fn from_u8(value: u8) -> Option<ResponseStatus> {
        use ResponseStatus::*;
        [Applied, Duplicate, SessionOpened, TooOld, UnknownSession, ReplyTooLarge]
            .get(value.wrapping_sub(1) as usize)
            .copied()
    }

    /// Whether the command took effect (now or before).
    pub fn is_ok(self) -> bool {
        matches!(
            self,
            ResponseStatus::Applied
                | ResponseStatus::Duplicate
                | ResponseStatus::SessionOpened
                | ResponseStatus::ReplyTooLarge
        )
    }
}

/// A decoded frame body, borrowing its bytes from the datagram (zero copy).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body<'a> {
    ClientRequest {
        session: SessionId,
        sequence: u64,
        command: &'a [u8],
    },
    ClientResponse {
        session: SessionId,
        sequence: u64,
        position: Position,
        status: ResponseStatus,
        reply: &'a [u8],
    },
    Redirect {
        leader: MemberId,
    },
    SessionOpen {
        client_nonce: u64,
    },
    SessionClose {
        session: SessionId,
    },
    Append {
        from_position: Position,
        commit_position: Position,
        checksum_prev: u32,
        fragment_offset: u32,
        bytes: &'a [u8],
    },
    AppendAck {
        position_append: Position,
        position_durable: Position,
    },
    Nak {
        position: Position,
    },
    Heartbeat {
        position_commit: Position,
        position_append: Position,
    },
    VoteRequest {
        pre_vote: bool,
        last_term: Term,
        last_position: Position,
    },
    VoteResponse {
        pre_vote: bool,
        granted: bool,
    },
    SnapshotChunk {
        snapshot_position: Position,
        offset: u64,
        total_bytes: u64,
        bytes: &'a [u8],
    },
    EventData {
        from_position: Position,
        bytes: &'a [u8],
    },
    /// A follower has the leader's snapshot up to `offset` (all of it when that is its length).
    SnapshotAck {
        snapshot_position: Position,
        offset: u64,
    },
    /// A member's state hash after applying everything below `position` (sent at snapshot
    /// points, so members can tell a diverging replica).
    StateHash {
        position: Position,
        state_hash: u64,
    },
    /// An operator asks the cluster to snapshot (`ordo snapshot take`); the leader answers
    /// with a `ClientResponse` of session 0, sequence `nonce` and the snapshot's position.
    SnapshotTake {
        nonce: u64,
    },
    /// An operator asks one member how it is (`ordo describe --cluster`).
    StatusRequest {
        nonce: u64,
    },
    /// A member's answer to a `StatusRequest`: its role (0 follower, 1 candidate, 2
    /// leader), term, the leader it knows (0: none) and its positions.
    Status {
        nonce: u64,
        role: u8,
        term: Term,
        leader: MemberId,
        append_position: Position,
        commit_position: Position,
        applied_position: Position,
        snapshot_position: Position,
    },
    /// A member that lost its state asks another what it holds (`nonce`: this incarnation's,
    /// so an answer is known to come after the loss).
    RecoveryQuery {
        nonce: u64,
    },
    /// The answer: the member's term, the term and end of its log, and whether it is itself
    /// recovering (then what it holds vouches for nothing).
    RecoveryReport {
        nonce: u64,
        term: Term,
        last_term: Term,
        log_end: Position,
        recovering: bool,
    },
    /// A member's answer to a subscriber that asked for events from `from_position`: its
    /// event log holds none below `start` (it began anew at a snapshot or a lost disk).
    EventsGone {
        from_position: Position,
        start: Position,
    },
}

/// Frame type numbers on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum FrameType {
    ClientRequest = 1,
    ClientResponse = 2,
    Redirect = 3,
    SessionOpen = 4,
    SessionClose = 5,
    Append = 6,
    AppendAck = 7,
    Nak = 8,
    Heartbeat = 9,
    VoteRequest = 10,
    VoteResponse = 11,
    SnapshotChunk = 12,
    EventData = 13,
    SnapshotAck = 14,
    StateHash = 15,
    SnapshotTake = 16,
    StatusRequest = 17,
    Status = 18,
    RecoveryQuery = 19,
    RecoveryReport = 20,
    EventsGone = 21,
}

impl FrameType {
    /// Frames only members send each other, under the cluster key: elections, the log
    /// stream, snapshots, state hashes. A member takes them from nobody else.
    pub fn is_between_members(self) -> bool {
        use FrameType::*;
        matches!(
            self,
            Append
                | AppendAck
                | Nak
                | Heartbeat
                | VoteRequest
                | VoteResponse
                | SnapshotChunk
                | SnapshotAck
                | StateHash
                | RecoveryQuery
                | RecoveryReport
        )
    }

    pub const ALL: [FrameType; 21] = [
        FrameType::ClientRequest,
        FrameType::ClientResponse,
        FrameType::Redirect,
        FrameType::SessionOpen,
        FrameType::SessionClose,
        FrameType::Append,
        FrameType::AppendAck,
        FrameType::Nak,
        FrameType::Heartbeat,
        FrameType::VoteRequest,
        FrameType::VoteResponse,
        FrameType::SnapshotChunk,
        FrameType::EventData,
        FrameType::SnapshotAck,
        FrameType::StateHash,
        FrameType::SnapshotTake,
        FrameType::StatusRequest,
        FrameType::Status,
        FrameType::RecoveryQuery,
        FrameType::RecoveryReport,
        FrameType::EventsGone,
    ];

    pub fn from_u8(value: u8) -> Option<FrameType> {
        FrameType::ALL.get(value.wrapping_sub(1) as usize).copied()
    }

    /// Bytes of the fixed part of this type's body.
    pub const fn fixed_bytes(self) -> usize {
        match self {
            FrameType::ClientRequest => size_of::<ClientRequestFixed>(),
            FrameType::ClientResponse => size_of::<ClientResponseFixed>(),
            FrameType::Redirect => size_of::<RedirectFixed>(),
            FrameType::SessionOpen => size_of::<SessionOpenFixed>(),
            FrameType::SessionClose => size_of::<SessionCloseFixed>(),
            FrameType::Append => size_of::<AppendFixed>(),
            FrameType::AppendAck => size_of::<AppendAckFixed>(),
            FrameType::Nak => size_of::<NakFixed>(),
            FrameType::Heartbeat => size_of::<HeartbeatFixed>(),
            FrameType::VoteRequest => size_of::<VoteRequestFixed>(),
            FrameType::VoteResponse => size_of::<VoteResponseFixed>(),
            FrameType::SnapshotChunk => size_of::<SnapshotChunkFixed>(),
            FrameType::EventData => size_of::<EventDataFixed>(),
            FrameType::SnapshotAck => size_of::<SnapshotAckFixed>(),
            FrameType::StateHash => size_of::<StateHashFixed>(),
            FrameType::SnapshotTake => size_of::<SnapshotTakeFixed>(),
            FrameType::StatusRequest => size_of::<StatusRequestFixed>(),
            FrameType::Status => size_of::<StatusFixed>(),
            FrameType::RecoveryQuery => size_of::<RecoveryQueryFixed>(),
            FrameType::RecoveryReport => size_of::<RecoveryReportFixed>(),
            FrameType::EventsGone => size_of::<EventsGoneFixed>(),
        }
    }

    /// Whether a body of this type carries bytes after its fixed part.
    const fn has_bytes(self) -> bool {
        matches!(
            self,
            FrameType::ClientRequest
                | FrameType::ClientResponse
                | FrameType::Append
                | FrameType::SnapshotChunk
                | FrameType::EventData
        )
    }
}

impl Body<'_> {
    pub fn frame_type(&self) -> FrameType {
        match self {
            Body::ClientRequest { .. } => FrameType::ClientRequest,
            Body::ClientResponse { .. } => FrameType::ClientResponse,
            Body::Redirect { .. } => FrameType::Redirect,
            Body::SessionOpen { .. } => FrameType::SessionOpen,
            Body::SessionClose { .. } => FrameType::SessionClose,
            Body::Append { .. } => FrameType::Append,
            Body::AppendAck { .. } => FrameType::AppendAck,
            Body::Nak { .. } => FrameType::Nak,
            Body::Heartbeat { .. } => FrameType::Heartbeat,
            Body::VoteRequest { .. } => FrameType::VoteRequest,
            Body::VoteResponse { .. } => FrameType::VoteResponse,
            Body::SnapshotChunk { .. } => FrameType::SnapshotChunk,
            Body::EventData { .. } => FrameType::EventData,
            Body::SnapshotAck { .. } => FrameType::SnapshotAck,
            Body::StateHash { .. } => FrameType::StateHash,
            Body::SnapshotTake { .. } => FrameType::SnapshotTake,
            Body::StatusRequest { .. } => FrameType::StatusRequest,
            Body::Status { .. } => FrameType::Status,
            Body::RecoveryQuery { .. } => FrameType::RecoveryQuery,
            Body::RecoveryReport { .. } => FrameType::RecoveryReport,
            Body::EventsGone { .. } => FrameType::EventsGone,
        }
    }

    /// The trailing bytes of the body, if its type has any.
    fn bytes(&self) -> &[u8] {
        match *self {
            Body::ClientRequest { command: bytes, .. }
            | Body::ClientResponse { reply: bytes, .. }
            | Body::Append { bytes, .. }
            | Body::SnapshotChunk { bytes, .. }
            | Body::EventData { bytes, .. } => bytes,
            _ => &[],
        }
    }

    /// Writes the fixed part into `out` (exactly `fixed_bytes()` long).
    fn write_fixed(&self, out: &mut [u8]) {
        let u64le = U64::new;
        match *self {
            Body::ClientRequest { session, sequence, .. } => {
                write(out, &ClientRequestFixed { session: u64le(session.0), sequence: u64le(sequence) })
            }
            Body::ClientResponse { session, sequence, position, status, .. } => write(
                out,
                &ClientResponseFixed {
                    session: u64le(session.0),
                    sequence: u64le(sequence),
                    position: u64le(position.0),
                    status: status as u8,
                    reserved: [0; 7],
                },
            ),
            Body::Redirect { leader } => write(out, &RedirectFixed { leader: U16::new(leader.0), reserved: [0; 6] }),
            Body::SessionOpen { client_nonce } => write(out, &SessionOpenFixed { client_nonce: u64le(client_nonce) }),
            Body::SessionClose { session } => write(out, &SessionCloseFixed { session: u64le(session.0) }),
            Body::Append { from_position, commit_position, checksum_prev, fragment_offset, .. } => write(
                out,
                &AppendFixed {
                    from_position: u64le(from_position.0),
                    commit_position: u64le(commit_position.0),
                    checksum_prev: U32::new(checksum_prev),
                    fragment_offset: U32::new(fragment_offset),
                },
            ),
            Body::AppendAck { position_append, position_durable } => write(
                out,
                &AppendAckFixed {
                    position_append: u64le(position_append.0),
                    position_durable: u64le(position_durable.0),
                },
            ),
            Body::Nak { position } => write(out, &NakFixed { position: u64le(position.0) }),
            Body::Heartbeat { position_commit, position_append } => write(
                out,
                &HeartbeatFixed {
                    position_commit: u64le(position_commit.0),
                    position_append: u64le(position_append.0),
                },
            ),
            Body::VoteRequest { pre_vote, last_term, last_position } => write(
                out,
                &VoteRequestFixed {
                    last_term: u64le(last_term.0),
                    last_position: u64le(last_position.0),
                    pre_vote: pre_vote as u8,
                    reserved: [0; 7],
                },
            ),
            Body::VoteResponse { pre_vote, granted } => {
                write(out, &VoteResponseFixed { granted: granted as u8, pre_vote: pre_vote as u8, reserved: [0; 6] })
            }
            Body::SnapshotChunk { snapshot_position, offset, total_bytes, .. } => write(
                out,
                &SnapshotChunkFixed {
                    snapshot_position: u64le(snapshot_position.0),
                    offset: u64le(offset),
                    total_bytes: u64le(total_bytes),
                },
            ),
            Body::EventData { from_position, .. } => {
                write(out, &EventDataFixed { from_position: u64le(from_position.0) })
            }
            Body::SnapshotAck { snapshot_position, offset } => {
                write(out, &SnapshotAckFixed { snapshot_position: u64le(snapshot_position.0), offset: u64le(offset) })
            }
            Body::StateHash { position, state_hash } => {
                write(out, &StateHashFixed { position: u64le(position.0), state_hash: u64le(state_hash) })
            }
            Body::SnapshotTake { nonce } => write(out, &SnapshotTakeFixed { nonce: u64le(nonce) }),
            Body::StatusRequest { nonce } => write(out, &StatusRequestFixed { nonce: u64le(nonce) }),
            Body::Status {
                nonce,
                role,
                term,
                leader,
                append_position,
                commit_position,
                applied_position,
                snapshot_position,
            } => write(
                out,
                &StatusFixed {
                    nonce: u64le(nonce),
                    term: u64le(term.0),
                    append_position: u64le(append_position.0),
                    commit_position: u64le(commit_position.0),
                    applied_position: u64le(applied_position.0),
                    snapshot_position: u64le(snapshot_position.0),
                    leader: U16::new(leader.0),
                    role,
                    reserved: [0; 5],
                },
            ),
            Body::RecoveryQuery { nonce } => write(out, &RecoveryQueryFixed { nonce: u64le(nonce) }),
            Body::RecoveryReport { nonce, term, last_term, log_end, recovering } => write(
                out,
                &RecoveryReportFixed {
                    nonce: u64le(nonce),
                    term: u64le(term.0),
                    last_term: u64le(last_term.0),
                    log_end: u64le(log_end.0),
                    recovering: recovering as u8,
                    reserved: [0; 7],
                },
            ),
            Body::EventsGone { from_position, start } => {
                write(out, &EventsGoneFixed { from_position: u64le(from_position.0), start: u64le(start.0) })
            }
        }
    }
}

#[inline]
fn write<T: IntoBytes + Immutable>(out: &mut [u8], fixed: &T) {
    out.copy_from_slice(fixed.as_bytes());
}

#[inline]
fn read<T: FromBytes + KnownLayout + Immutable + Unaligned>(bytes: &[u8]) -> &T {
    T::ref_from_bytes(bytes).expect("caller sized the slice to the fixed part")
}

fn flag(value: u8, frame_type: FrameType) -> Result<bool, FrameError> {
    match value {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(FrameError::BodyMalformed { frame_type }),
    }
}

fn decode_body(frame_type: FrameType, body: &[u8]) -> Result<Body<'_>, FrameError> {
    let fixed_bytes = frame_type.fixed_bytes();
    if body.len() < fixed_bytes || (!frame_type.has_bytes() && body.len() != fixed_bytes) {
        return Err(FrameError::BodyMalformed { frame_type });
    }
    let (fixed, bytes) = body.split_at(fixed_bytes);
    Ok(match frame_type {
        FrameType::ClientRequest => {
            let f: &ClientRequestFixed = read(fixed);
            Body::ClientRequest { session: SessionId(f.session.get()), sequence: f.sequence.get(), command: bytes }
        }
        FrameType::ClientResponse => {
            let f: &ClientResponseFixed = read(fixed);
            Body::ClientResponse {
                session: SessionId(f.session.get()),
                sequence: f.sequence.get(),
                position: Position(f.position.get()),
                status: ResponseStatus::from_u8(f.status).ok_or(FrameError::BodyMalformed { frame_type })?,
                reply: bytes,
            }
        }
        FrameType::Redirect => Body::Redirect { leader: MemberId(read::<RedirectFixed>(fixed).leader.get()) },
        FrameType::SessionOpen => {
            Body::SessionOpen { client_nonce: read::<SessionOpenFixed>(fixed).client_nonce.get() }
        }
        FrameType::SessionClose => {
            Body::SessionClose { session: SessionId(read::<SessionCloseFixed>(fixed).session.get()) }
        }
        FrameType::Append => {
            let f: &AppendFixed = read(fixed);
            Body::Append {
                from_position: Position(f.from_position.get()),
                commit_position: Position(f.commit_position.get()),
                checksum_prev: f.checksum_prev.get(),
                fragment_offset: f.fragment_offset.get(),
                bytes,
            }
        }
        FrameType::AppendAck => {
            let f: &AppendAckFixed = read(fixed);
            Body::AppendAck {
                position_append: Position(f.position_append.get()),
                position_durable: Position(f.position_durable.get()),
            }
        }
        FrameType::Nak => Body::Nak { position: Position(read::<NakFixed>(fixed).position.get()) },
        FrameType::Heartbeat => {
            let f: &HeartbeatFixed = read(fixed);
            Body::Heartbeat {
                position_commit: Position(f.position_commit.get()),
                position_append: Position(f.position_append.get()),
            }
        }
        FrameType::VoteRequest => {
            let f: &VoteRequestFixed = read(fixed);
            Body::VoteRequest {
                pre_vote: flag(f.pre_vote, frame_type)?,
                last_term: Term(f.last_term.get()),
                last_position: Position(f.last_position.get()),
            }
        }
        FrameType::VoteResponse => {
            let f: &VoteResponseFixed = read(fixed);
            Body::VoteResponse { pre_vote: flag(f.pre_vote, frame_type)?, granted: flag(f.granted, frame_type)? }
        }
        FrameType::SnapshotChunk => {
            let f: &SnapshotChunkFixed = read(fixed);
            Body::SnapshotChunk {
                snapshot_position: Position(f.snapshot_position.get()),
                offset: f.offset.get(),
                total_bytes: f.total_bytes.get(),
                bytes,
            }
        }
        FrameType::EventData => {
            Body::EventData { from_position: Position(read::<EventDataFixed>(fixed).from_position.get()), bytes }
        }
        FrameType::SnapshotAck => {
            let f: &SnapshotAckFixed = read(fixed);
            Body::SnapshotAck { snapshot_position: Position(f.snapshot_position.get()), offset: f.offset.get() }
        }
        FrameType::StateHash => {
            let f: &StateHashFixed = read(fixed);
            Body::StateHash { position: Position(f.position.get()), state_hash: f.state_hash.get() }
        }
        FrameType::SnapshotTake => Body::SnapshotTake { nonce: read::<SnapshotTakeFixed>(fixed).nonce.get() },
        FrameType::StatusRequest => Body::StatusRequest { nonce: read::<StatusRequestFixed>(fixed).nonce.get() },
        FrameType::Status => {
            let f: &StatusFixed = read(fixed);
            Body::Status {
                nonce: f.nonce.get(),
                role: f.role,
                term: Term(f.term.get()),
                leader: MemberId(f.leader.get()),
                append_position: Position(f.append_position.get()),
                commit_position: Position(f.commit_position.get()),
                applied_position: Position(f.applied_position.get()),
                snapshot_position: Position(f.snapshot_position.get()),
            }
        }
        FrameType::RecoveryQuery => Body::RecoveryQuery { nonce: read::<RecoveryQueryFixed>(fixed).nonce.get() },
        FrameType::RecoveryReport => {
            let f: &RecoveryReportFixed = read(fixed);
            Body::RecoveryReport {
                nonce: f.nonce.get(),
                term: Term(f.term.get()),
                last_term: Term(f.last_term.get()),
                log_end: Position(f.log_end.get()),
                recovering: flag(f.recovering, frame_type)?,
            }
        }
        FrameType::EventsGone => {
            let f: &EventsGoneFixed = read(fixed);
            Body::EventsGone { from_position: Position(f.from_position.get()), start: Position(f.start.get()) }
        }
    })
}

/// A received frame: its header (copied: 40 bytes) and its body, borrowed.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    pub header: FrameHeader,
    pub body: Body<'a>,
}

/// Why a datagram was dropped. Each is counted by the receiver, none is handed up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("datagram of {bytes} bytes is shorter than a frame header and tag")]
    TooShort { bytes: usize },
    #[error("datagram of {bytes} bytes is longer than the MTU ({mtu_bytes})")]
    TooLong { bytes: usize, mtu_bytes: usize },
    #[error("datagram is not an ordo frame (bad magic)")]
    BadMagic,
    #[error("frame version {version} is not 1; every member must run the same ordo")]
    BadVersion { version: u8 },
    #[error("frame type {value} is unknown")]
    UnknownType { value: u8 },
    #[error("frame from {found} reached a member of {expected}; check the members' addresses")]
    WrongCluster { found: ClusterId, expected: ClusterId },
    #[error("frame says its body is {said} bytes but the datagram holds {held}")]
    LengthMismatch { said: usize, held: usize },
    #[error("frame uses key id {key_id}, which this member does not have")]
    UnknownKey { key_id: u32 },
    #[error("frame fails its MAC: wrong key or tampered bytes")]
    BadMac,
    #[error("frame is {flag} but this cluster's security is {security:?}")]
    WrongSecurity { flag: &'static str, security: Security },
    #[error("{frame_type:?} frame body is malformed")]
    BodyMalformed { frame_type: FrameType },
    #[error("frame body of {bytes} bytes does not fit the MTU ({mtu_bytes})")]
    DoesNotFit { bytes: usize, mtu_bytes: usize },
}

impl FrameError {
    /// A small index for per-reason drop counters.
    pub fn index(&self) -> usize {
        match self {
            FrameError::TooShort { .. } => 0,
            FrameError::TooLong { .. } => 1,
            FrameError::BadMagic => 2,
            FrameError::BadVersion { .. } => 3,
            FrameError::UnknownType { .. } => 4,
            FrameError::WrongCluster { .. } => 5,
            FrameError::LengthMismatch { .. } => 6,
            FrameError::UnknownKey { .. } => 7,
            FrameError::BadMac => 8,
            FrameError::WrongSecurity { .. } => 9,
            FrameError::BodyMalformed { .. } => 10,
            FrameError::DoesNotFit { .. } => 11,
        }
    }
    pub const KINDS: usize = 12;
}

/// Encodes and decodes one sender's frames under one cluster's keys.
#[derive(Debug)]
pub struct FrameCodec {
    cluster_id: ClusterId,
    sender: MemberId,
    key_id: u32,
    security: Security,
    keys: KeyRing,
    mtu_bytes: usize,
    /// This codec's random incarnation: encrypted frames carry it, and are sealed under the
    /// key derived from the shared key and it (see `auth`).
    incarnation: [u8; INCARNATION_BYTES],
    /// Frames sealed under this incarnation: the AES-GCM nonce's counter.
    sequence: u64,
    /// This incarnation's derived keys, by key id (a member answers clients under theirs).
    sealers: Vec<(u32, Sealer)>,
    /// Other senders' derived keys by (key id, incarnation), at most `OPENERS_MAX`: a frame
    /// from a known sender costs one lookup, a new sender one derivation (about a
    /// microsecond, and an allocation: once per sender process, not per frame).
    openers: RefCell<HashMap<SenderIncarnation, Box<Sealer>>>,
}

/// A sender incarnation under one key: (key id, incarnation).
type SenderIncarnation = (u32, [u8; INCARNATION_BYTES]);

/// Sender incarnations whose derived keys a codec keeps (clients and members at once).
const OPENERS_MAX: usize = 1024;

impl FrameCodec {
    pub fn new(cluster_id: ClusterId, sender: MemberId, security: Security, keys: KeyRing, mtu_bytes: usize) -> Self {
        assert!((FRAME_HEADER_BYTES + TAG_BYTES + 64..=MTU_BYTES_MAX).contains(&mtu_bytes));
        let mut codec = FrameCodec {
            cluster_id,
            sender,
            key_id: 0,
            security,
            keys,
            mtu_bytes,
            incarnation: [0; INCARNATION_BYTES],
            sequence: 0,
            sealers: Vec::new(),
            openers: RefCell::new(HashMap::with_capacity(64)),
        };
        codec.new_incarnation();
        codec
    }

    /// Whether its frames are authenticated only or encrypted too.
    pub fn security(&self) -> Security {
        self.security
    }

    /// A client's codec signs with its own key (`key_id` > 0), which members hold in their
    /// key ring under the same id.
    pub fn with_key_id(mut self, key_id: u32) -> Self {
        assert!(self.keys.get(key_id).is_some(), "the codec holds the key it signs with");
        self.key_id = key_id;
        self
    }

    fn new_incarnation(&mut self) {
        getrandom::fill(&mut self.incarnation).expect("the OS random source works");
        self.sequence = 0;
        self.sealers.clear();
    }

    /// The key this incarnation seals under for `key_id` (derived once).
    fn sealer(&mut self, key_id: u32) -> Option<&Sealer> {
        let index = match self.sealers.iter().position(|(id, _)| *id == key_id) {
            Some(index) => index,
            None => {
                self.sealers.push((key_id, self.keys.get(key_id)?.sealer(&self.incarnation)));
                self.sealers.len() - 1
            }
        };
        Some(&self.sealers[index].1)
    }

    /// Opens an encrypted body sealed by sender incarnation `incarnation` under key
    /// `key_id` (`key`).
    fn open(
        &self,
        (key_id, key, incarnation): (u32, &FrameKey, &[u8; INCARNATION_BYTES]),
        nonce: &[u8; 12],
        associated: &[u8],
        body: &mut [u8],
        tag: &[u8],
    ) -> bool {
        let mut openers = self.openers.borrow_mut();
        let sender = (key_id, *incarnation);
        if let Some(sealer) = openers.get(&sender) {
            return sealer.open(nonce, associated, body, tag);
        }
        let sealer = Box::new(key.sealer(incarnation));
        let opened = sealer.open(nonce, associated, body, tag);
        // Kept only once it proved genuine: forged frames with made-up incarnations cost a
        // derivation each but never push out a real sender's key.
        if opened {
            if openers.len() >= OPENERS_MAX
                && let Some(&evicted) = openers.keys().next()
            {
                openers.remove(&evicted);
            }
            openers.insert(sender, sealer);
        }
        opened
    }

    /// The most bytes between header and tag: an encrypted frame carries its incarnation.
    fn overhead_bytes(&self) -> usize {
        FRAME_HEADER_BYTES + TAG_BYTES + if self.security == Security::Aead { INCARNATION_BYTES } else { 0 }
    }

    pub fn mtu_bytes(&self) -> usize {
        self.mtu_bytes
    }

    /// The key id it seals under by default (0, the cluster key, for a member).
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The most trailing bytes (command, log bytes, chunk) a frame of `frame_type` can carry.
    pub fn capacity_bytes(&self, frame_type: FrameType) -> usize {
        self.mtu_bytes - self.overhead_bytes() - frame_type.fixed_bytes()
    }

    /// The keys it seals and opens under (a member sets its client keys here); the keys
    /// derived from them are forgotten.
    pub fn keys_mut(&mut self) -> &mut KeyRing {
        self.sealers.clear();
        self.openers.get_mut().clear();
        &mut self.keys
    }

    /// Writes a whole frame into `out` (at least `mtu_bytes` long) and returns its length.
    pub fn encode(&mut self, out: &mut [u8], term: Term, body: &Body<'_>) -> Result<usize, FrameError> {
        self.encode_keyed(out, term, body, self.key_id)
    }

    /// [`FrameCodec::encode`] under key `key_id` (a member answering a client seals under
    /// that client's key); a key it does not hold is `UnknownKey`.
    pub fn encode_keyed(
        &mut self,
        out: &mut [u8],
        term: Term,
        body: &Body<'_>,
        key_id: u32,
    ) -> Result<usize, FrameError> {
        if self.keys.get(key_id).is_none() {
            return Err(FrameError::UnknownKey { key_id });
        }
        let frame_type = body.frame_type();
        let fixed_bytes = frame_type.fixed_bytes();
        let bytes = body.bytes();
        let body_bytes = fixed_bytes + bytes.len();
        let total = self.overhead_bytes() + body_bytes;
        if total > self.mtu_bytes || out.len() < total {
            return Err(FrameError::DoesNotFit { bytes: body_bytes, mtu_bytes: self.mtu_bytes });
        }
        if self.sequence == u64::MAX {
            self.new_incarnation(); // never reuse a nonce after the counter wraps
        }
        self.sequence += 1;
        let encrypted = self.security == Security::Aead;
        let prefix_bytes = if encrypted { FRAME_HEADER_BYTES + INCARNATION_BYTES } else { FRAME_HEADER_BYTES };
        let header = FrameHeader {
            magic: U16::new(FRAME_MAGIC),
            version: FRAME_VERSION,
            frame_type: frame_type as u8,
            flags: if encrypted { FLAG_ENCRYPTED } else { 0 },
            reserved: 0,
            sender: U16::new(self.sender.0),
            length: U16::new(body_bytes as u16),
            reserved2: U16::ZERO,
            key_id: U32::new(key_id),
            cluster_id: U64::new(self.cluster_id.0),
            term: U64::new(term.0),
            sequence: U64::new(self.sequence),
        };
        out[..FRAME_HEADER_BYTES].copy_from_slice(header.as_bytes());
        if encrypted {
            out[FRAME_HEADER_BYTES..prefix_bytes].copy_from_slice(&self.incarnation);
        }
        let (prefix, rest) = out[..total].split_at_mut(prefix_bytes);
        let body_out = &mut rest[..body_bytes];
        body.write_fixed(&mut body_out[..fixed_bytes]);
        body_out[fixed_bytes..].copy_from_slice(bytes);
        let tag = if encrypted {
            self.sealer(key_id).expect("checked above").seal(&nonce(&header), prefix, body_out)
        } else {
            self.keys.get(key_id).expect("checked above").mac(&out[..prefix_bytes + body_bytes])
        };
        out[prefix_bytes + body_bytes..total].copy_from_slice(&tag);
        Ok(total)
    }

    /// Checks and decodes a datagram in place (an encrypted body is decrypted where it lies).
    pub fn decode<'a>(&self, datagram: &'a mut [u8]) -> Result<Frame<'a>, FrameError> {
        let (header, frame_type, encrypted) = self.check_header(datagram)?;
        let prefix_bytes = if encrypted { FRAME_HEADER_BYTES + INCARNATION_BYTES } else { FRAME_HEADER_BYTES };
        let body_bytes = header.length.get() as usize;
        let held = datagram.len().saturating_sub(prefix_bytes + TAG_BYTES);
        if body_bytes != held || datagram.len() < prefix_bytes + TAG_BYTES {
            return Err(FrameError::LengthMismatch { said: body_bytes, held });
        }
        let key_id = header.key_id.get();
        let key = self.keys.get(key_id).ok_or(FrameError::UnknownKey { key_id })?;
        let (covered, tag) = datagram.split_at_mut(prefix_bytes + body_bytes);
        if encrypted {
            let (prefix, body) = covered.split_at_mut(prefix_bytes);
            let incarnation: [u8; INCARNATION_BYTES] = prefix[FRAME_HEADER_BYTES..].try_into().expect("sized");
            if !self.open((key_id, key, &incarnation), &nonce(&header), prefix, body, tag) {
                return Err(FrameError::BadMac);
            }
        } else if !key.mac_matches(covered, tag) {
            return Err(FrameError::BadMac);
        }
        let body = decode_body(frame_type, &covered[prefix_bytes..])?;
        Ok(Frame { header, body })
    }

    /// The header of a datagram, checked: size, magic, version, type, cluster, security.
    fn check_header(&self, datagram: &[u8]) -> Result<(FrameHeader, FrameType, bool), FrameError> {
        let bytes = datagram.len();
        if bytes < FRAME_HEADER_BYTES + TAG_BYTES {
            return Err(FrameError::TooShort { bytes });
        }
        if bytes > self.mtu_bytes {
            return Err(FrameError::TooLong { bytes, mtu_bytes: self.mtu_bytes });
        }
        let header = *FrameHeader::ref_from_prefix(datagram).expect("length checked").0;
        if header.magic.get() != FRAME_MAGIC {
            return Err(FrameError::BadMagic);
        }
        if header.version != FRAME_VERSION {
            return Err(FrameError::BadVersion { version: header.version });
        }
        let frame_type =
            FrameType::from_u8(header.frame_type).ok_or(FrameError::UnknownType { value: header.frame_type })?;
        if header.cluster_id.get() != self.cluster_id.0 {
            return Err(FrameError::WrongCluster {
                found: ClusterId(header.cluster_id.get()),
                expected: self.cluster_id,
            });
        }
        let encrypted = match (header.flags, self.security) {
            (0, Security::Mac) => false,
            (FLAG_ENCRYPTED, Security::Aead) => true,
            (0, security) => return Err(FrameError::WrongSecurity { flag: "not encrypted", security }),
            (_, security) => return Err(FrameError::WrongSecurity { flag: "encrypted or flagged oddly", security }),
        };
        Ok((header, frame_type, encrypted))
    }
}

/// The AES-GCM nonce of a frame: sender · key id (low 16 bits) · sequence.
fn nonce(header: &FrameHeader) -> [u8; 12] {
    let mut nonce = [0u8; 12];
    nonce[..2].copy_from_slice(&header.sender.get().to_le_bytes());
    nonce[2..4].copy_from_slice(&(header.key_id.get() as u16).to_le_bytes());
    nonce[4..].copy_from_slice(&header.sequence.get().to_le_bytes());
    nonce
}

/// One body of every frame type, in `FrameType` order, carrying `bytes` where a type carries
/// bytes: the frame tests' cases and the fuzz targets' seeds.
#[doc(hidden)]
pub fn example_bodies(bytes: &[u8]) -> Vec<Body<'_>> {
    vec![
        Body::ClientRequest { session: SessionId(3), sequence: 9, command: bytes },
        Body::ClientResponse {
            session: SessionId(3),
            sequence: 9,
            position: Position(4096),
            status: ResponseStatus::Applied,
            reply: bytes,
        },
        Body::Redirect { leader: MemberId(2) },
        Body::SessionOpen { client_nonce: 77 },
        Body::SessionClose { session: SessionId(3) },
        Body::Append {
            from_position: Position(64),
            commit_position: Position(32),
            checksum_prev: 0xabcd,
            fragment_offset: 0,
            bytes,
        },
        Body::AppendAck { position_append: Position(96), position_durable: Position(64) },
        Body::Nak { position: Position(128) },
        Body::Heartbeat { position_commit: Position(1), position_append: Position(2) },
        Body::VoteRequest { pre_vote: true, last_term: Term(4), last_position: Position(8) },
        Body::VoteResponse { pre_vote: false, granted: true },
        Body::SnapshotChunk { snapshot_position: Position(9), offset: 10, total_bytes: 11, bytes },
        Body::EventData { from_position: Position(12), bytes },
        Body::SnapshotAck { snapshot_position: Position(13), offset: 14 },
        Body::StateHash { position: Position(15), state_hash: 16 },
        Body::SnapshotTake { nonce: 17 },
        Body::StatusRequest { nonce: 18 },
        Body::Status {
            nonce: 19,
            role: 2,
            term: Term(20),
            leader: MemberId(3),
            append_position: Position(21),
            commit_position: Position(22),
            applied_position: Position(23),
            snapshot_position: Position(24),
        },
        Body::RecoveryQuery { nonce: 25 },
        Body::RecoveryReport {
            nonce: 26,
            term: Term(27),
            last_term: Term(28),
            log_end: Position(29),
            recovering: true,
        },
        Body::EventsGone { from_position: Position(30), start: Position(31) },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::FrameKey;
    use proptest::prelude::*;

    fn codec(security: Security, sender: u16) -> FrameCodec {
        FrameCodec::new(
            ClusterId(5),
            MemberId(sender),
            security,
            KeyRing::new(FrameKey::new(&[7; 32])),
            MTU_BYTES_DEFAULT,
        )
    }

    #[test]
    fn frame_types_are_numbered_from_one_in_order() {
        for (i, frame_type) in FrameType::ALL.iter().enumerate() {
            assert_eq!(*frame_type as u8, i as u8 + 1);
        }
        assert_eq!(FrameType::from_u8(0), None);
        assert_eq!(FrameType::from_u8(FrameType::ALL.len() as u8 + 1), None);
    }

    #[test]
    fn every_frame_type_round_trips_under_both_securities() {
        for security in [Security::Mac, Security::Aead] {
            let mut sender = codec(security, 1);
            let receiver = codec(security, 2);
            for body in example_bodies(b"some log bytes") {
                let mut buf = [0u8; MTU_BYTES_DEFAULT];
                let length = sender.encode(&mut buf, Term(6), &body).unwrap();
                let frame = receiver.decode(&mut buf[..length]).unwrap();
                assert_eq!(frame.body, body, "{security:?}");
                assert_eq!(frame.header.sender(), MemberId(1));
                assert_eq!(frame.header.term(), Term(6));
            }
        }
    }

    #[test]
    fn aead_hides_the_body_and_mac_does_not() {
        let secret = b"plaintext-that-should-not-be-visible";
        for (security, visible) in [(Security::Mac, true), (Security::Aead, false)] {
            let mut buf = [0u8; MTU_BYTES_DEFAULT];
            let length = codec(security, 1)
                .encode(&mut buf, Term(1), &Body::ClientRequest { session: SessionId(1), sequence: 1, command: secret })
                .unwrap();
            let found = buf[..length].windows(secret.len()).any(|w| w == secret);
            assert_eq!(found, visible, "{security:?}");
        }
    }

    #[test]
    fn a_bad_mac_wrong_cluster_or_wrong_key_is_refused() {
        let mut sender = codec(Security::Mac, 1);
        let mut buf = [0u8; MTU_BYTES_DEFAULT];
        let length = sender.encode(&mut buf, Term(1), &Body::Nak { position: Position(64) }).unwrap();

        let mut tampered = buf;
        tampered[FRAME_HEADER_BYTES] ^= 1;
        assert_eq!(codec(Security::Mac, 2).decode(&mut tampered[..length]).unwrap_err(), FrameError::BadMac);

        let other_cluster =
            FrameCodec::new(ClusterId(6), MemberId(2), Security::Mac, KeyRing::new(FrameKey::new(&[7; 32])), 1408);
        assert!(matches!(other_cluster.decode(&mut { buf }[..length]), Err(FrameError::WrongCluster { .. })));

        let other_key =
            FrameCodec::new(ClusterId(5), MemberId(2), Security::Mac, KeyRing::new(FrameKey::new(&[8; 32])), 1408);
        assert_eq!(other_key.decode(&mut { buf }[..length]).unwrap_err(), FrameError::BadMac);

        assert!(matches!(
            codec(Security::Aead, 2).decode(&mut { buf }[..length]),
            Err(FrameError::WrongSecurity { .. })
        ));
        assert!(matches!(
            codec(Security::Mac, 2).decode(&mut { buf }[..length - 1]),
            Err(FrameError::LengthMismatch { .. })
        ));
        assert!(matches!(codec(Security::Mac, 2).decode(&mut { buf }[..20]), Err(FrameError::TooShort { .. })));
        let mut long = vec![0u8; MTU_BYTES_DEFAULT + 1];
        assert!(matches!(codec(Security::Mac, 2).decode(&mut long), Err(FrameError::TooLong { .. })));
    }

    #[test]
    fn a_client_key_signs_client_frames_and_members_check_it() {
        let client_secret = [9u8; 32];
        let mut ring = KeyRing::new(FrameKey::new(&[7; 32]));
        ring.add_client(17, FrameKey::new(&client_secret));
        let member = FrameCodec::new(ClusterId(5), MemberId(1), Security::Mac, ring, 1408);
        let mut client_ring = KeyRing::new(FrameKey::new(&[0; 32])); // clients don't hold the cluster key
        client_ring.add_client(17, FrameKey::new(&client_secret));
        let mut client = FrameCodec::new(ClusterId(5), MemberId(0), Security::Mac, client_ring, 1408).with_key_id(17);
        let mut buf = [0u8; MTU_BYTES_DEFAULT];
        let body = Body::SessionOpen { client_nonce: 5 };
        let length = client.encode(&mut buf, Term(0), &body).unwrap();
        assert_eq!(member.decode(&mut buf[..length]).unwrap().body, body);
        let stranger =
            FrameCodec::new(ClusterId(5), MemberId(1), Security::Mac, KeyRing::new(FrameKey::new(&[7; 32])), 1408);
        assert_eq!(stranger.decode(&mut buf[..length]).unwrap_err(), FrameError::UnknownKey { key_id: 17 });
    }

    #[test]
    fn a_body_too_large_for_the_mtu_is_refused_on_encode() {
        let mut sender = codec(Security::Mac, 1);
        let capacity = sender.capacity_bytes(FrameType::ClientRequest);
        let mut buf = [0u8; MTU_BYTES_DEFAULT];
        let fits = vec![1u8; capacity];
        assert!(
            sender
                .encode(&mut buf, Term(1), &Body::ClientRequest { session: SessionId(1), sequence: 1, command: &fits })
                .is_ok()
        );
        let too_big = vec![1u8; capacity + 1];
        assert!(matches!(
            sender.encode(
                &mut buf,
                Term(1),
                &Body::ClientRequest { session: SessionId(1), sequence: 1, command: &too_big }
            ),
            Err(FrameError::DoesNotFit { .. })
        ));
    }

    #[test]
    fn processes_sharing_a_key_and_a_sender_id_never_seal_under_one_key_and_nonce() {
        // The old scheme's worst case: two client processes under one client key, sender 0,
        // the same sequence (a 32-bit incarnation collides after ~77 000 processes).
        let ring = || KeyRing::for_client(&crate::ClientKey { id: 3, secret: [8; 32] });
        let mut first =
            FrameCodec::new(ClusterId(5), MemberId(0), Security::Aead, ring(), MTU_BYTES_DEFAULT).with_key_id(3);
        let mut second =
            FrameCodec::new(ClusterId(5), MemberId(0), Security::Aead, ring(), MTU_BYTES_DEFAULT).with_key_id(3);
        second.sequence = first.sequence;
        let body = Body::ClientRequest { session: SessionId(1), sequence: 1, command: b"same plaintext" };
        let (mut a, mut b) = ([0u8; MTU_BYTES_DEFAULT], [0u8; MTU_BYTES_DEFAULT]);
        let length = first.encode(&mut a, Term(0), &body).unwrap();
        assert_eq!(second.encode(&mut b, Term(0), &body).unwrap(), length);
        assert_eq!(a[..FRAME_HEADER_BYTES], b[..FRAME_HEADER_BYTES], "the same header, so the same GCM nonce");
        let incarnations = FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + INCARNATION_BYTES;
        assert_ne!(a[incarnations.clone()], b[incarnations], "each process its own incarnation");
        assert_ne!(a[length - TAG_BYTES - 14..], b[length - TAG_BYTES - 14..], "sealed under different keys");
        // A member holding the client key opens both, and frames from more senders than it
        // keeps derived keys for.
        let mut member = KeyRing::new(FrameKey::new(&[7; 32]));
        member.add_client(3, FrameKey::new(&[8; 32]));
        let receiver = FrameCodec::new(ClusterId(5), MemberId(1), Security::Aead, member, MTU_BYTES_DEFAULT);
        assert_eq!(receiver.decode(&mut a[..length]).unwrap().body, body);
        assert_eq!(receiver.decode(&mut b[..length]).unwrap().body, body);
        let mut senders: Vec<FrameCodec> = (0..OPENERS_MAX + 8)
            .map(|_| {
                FrameCodec::new(ClusterId(5), MemberId(0), Security::Aead, ring(), MTU_BYTES_DEFAULT).with_key_id(3)
            })
            .collect();
        for _ in 0..2 {
            for sender in &mut senders {
                let mut buf = [0u8; MTU_BYTES_DEFAULT];
                let length = sender.encode(&mut buf, Term(0), &body).unwrap();
                assert_eq!(receiver.decode(&mut buf[..length]).unwrap().body, body);
            }
        }
    }

    #[test]
    fn sequences_increase_so_no_nonce_repeats() {
        let mut sender = codec(Security::Aead, 1);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..1000 {
            let mut buf = [0u8; MTU_BYTES_DEFAULT];
            sender.encode(&mut buf, Term(1), &Body::Nak { position: Position(0) }).unwrap();
            let header = FrameHeader::ref_from_prefix(&buf[..]).unwrap().0;
            assert!(seen.insert(header.sequence.get()));
        }
    }

    proptest! {
        #[test]
        fn any_datagram_decodes_to_an_error_or_a_frame(mut bytes in proptest::collection::vec(any::<u8>(), 0..1500)) {
            let _ = codec(Security::Mac, 2).decode(&mut bytes.clone());
            let _ = codec(Security::Aead, 2).decode(&mut bytes);
        }

        /// With a valid MAC (as a member with the key could forge), any header and body bytes
        /// still decode to an error or a frame: the body decoders are total on their own.
        #[test]
        fn any_authenticated_body_decodes_to_an_error_or_a_frame(
            frame_type in any::<u8>(),
            flags in 0u8..2,
            body in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let key = FrameKey::new(&[7; 32]);
            let header = FrameHeader {
                magic: U16::new(FRAME_MAGIC), version: FRAME_VERSION, frame_type, flags: 0, reserved: flags,
                sender: U16::new(1), length: U16::new(body.len() as u16), reserved2: U16::ZERO, key_id: U32::ZERO,
                cluster_id: U64::new(5), term: U64::new(1), sequence: U64::new(1),
            };
            let mut datagram = header.as_bytes().to_vec();
            datagram.extend_from_slice(&body);
            let tag = key.mac(&datagram);
            datagram.extend_from_slice(&tag);
            if let Ok(frame) = codec(Security::Mac, 2).decode(&mut datagram) {
                prop_assert_eq!(frame.body.frame_type() as u8, frame_type);
            }
        }

        #[test]
        fn any_body_round_trips(
            kind in 0usize..13,
            bytes in proptest::collection::vec(any::<u8>(), 0..1200),
            security in prop_oneof![Just(Security::Mac), Just(Security::Aead)],
        ) {
            let body = example_bodies(&bytes)[kind];
            let mut buf = [0u8; MTU_BYTES_DEFAULT];
            let length = codec(security, 1).encode(&mut buf, Term(2), &body).unwrap();
            let frame = codec(security, 3).decode(&mut buf[..length]).unwrap();
            prop_assert_eq!(frame.body, body);
        }
    }
}
