//! Serving clients and the service between consensus and the container: what a member does
//! with a client's frame, how committed entries reach the container, what the leader must
//! sequence for the service. Used by the real member and the simulator alike.

use crate::replica::consensus::{Consensus, Effect, NotLeader};
use crate::replica::container::{Container, Outcome, Output};
use ordo_core::entry::decode_entry;
use ordo_core::machine::StateMachine;
use ordo_core::{EntryKind, LogSource, MemberId, Position, SessionId};
use ordo_transport::{Body, FrameType, ResponseStatus};

/// The entry a client's frame asks for: (kind, session, correlation id, payload).
pub fn client_entry<'a>(body: &Body<'a>) -> Option<(EntryKind, SessionId, u64, &'a [u8])> {
    match *body {
        Body::SessionOpen { client_nonce } => Some((EntryKind::SessionOpen, SessionId(0), client_nonce, &[])),
        Body::ClientRequest { session, sequence, command } => Some((EntryKind::Command, session, sequence, command)),
        _ => None,
    }
}

/// Whether a member takes a frame of `frame_type`, sealed under key `key_id` and claiming
/// to come from `sender`: members' frames (votes, the log stream, snapshots, state hashes)
/// only under the cluster key (id 0) and from another member; every other frame only under
/// a client key. So a client can never vote, append or send a snapshot, whatever it claims.
pub fn admits(frame_type: FrameType, key_id: u32, sender: MemberId, is_peer: impl Fn(MemberId) -> bool) -> bool {
    if frame_type.is_between_members() { key_id == 0 && is_peer(sender) } else { key_id != 0 }
}

/// Sequences a client's frame if this member leads (the effects go to `out`); otherwise
/// returns the redirect to answer with (member 0: no leader known yet, retry).
pub fn take_client_frame<'a>(
    consensus: &mut Consensus,
    body: &Body<'a>,
    out: &mut Vec<Effect<'a>>,
) -> Option<Body<'static>> {
    let (kind, session, correlation, payload) = client_entry(body)?;
    match consensus.propose_entry(kind, session, correlation, payload, out) {
        Ok(()) => None,
        Err(NotLeader::Redirect(leader)) => Some(Body::Redirect { leader }),
        Err(NotLeader::Unknown) => Some(Body::Redirect { leader: MemberId(0) }),
    }
}

/// What a client is told of a command's outcome.
pub fn status(outcome: Outcome) -> ResponseStatus {
    match outcome {
        Outcome::Applied => ResponseStatus::Applied,
        Outcome::Duplicate => ResponseStatus::Duplicate,
        Outcome::TooOld => ResponseStatus::TooOld,
        Outcome::UnknownSession => ResponseStatus::UnknownSession,
    }
}

/// The status and reply bytes a client is sent for a command's outcome and the app's
/// reply: the reply itself, or, when it is longer than a response frame holds
/// (`reply_bytes_max`), `ReplyTooLarge` with its length and the limit (two little-endian
/// u32s in `scratch`): the command took effect, its reply cannot travel. A function of the
/// reply and the limit alone, so every member answers a command alike, now and on a retry.
pub fn wire_reply<'a>(
    outcome: Outcome,
    reply: &'a [u8],
    reply_bytes_max: usize,
    scratch: &'a mut [u8; 8],
) -> (ResponseStatus, &'a [u8]) {
    let took_effect = matches!(outcome, Outcome::Applied | Outcome::Duplicate);
    if !took_effect || reply.len() <= reply_bytes_max {
        return (status(outcome), reply);
    }
    let clamp = |bytes: usize| u32::try_from(bytes).unwrap_or(u32::MAX);
    scratch[..4].copy_from_slice(&clamp(reply.len()).to_le_bytes());
    scratch[4..].copy_from_slice(&clamp(reply_bytes_max).to_le_bytes());
    (ResponseStatus::ReplyTooLarge, scratch)
}

/// Applies at most `limit` of the committed entries the container has not applied yet,
/// reading them from the log in place, up to the commit or just past a snapshot request (the
/// service snapshots, then calls again). Returns how many were applied, or the position of an
/// entry the log does not hold below the commit (a bug, or a log that lost committed data).
pub fn apply_committed_up_to<M: StateMachine>(
    container: &mut Container<M>,
    log: &dyn LogSource,
    commit: Position,
    limit: usize,
    out: &mut dyn FnMut(Output<'_>),
) -> Result<usize, Position> {
    let mut applied = 0;
    while container.applied_position() < commit && container.snapshot_due().is_none() && applied < limit {
        let position = container.applied_position();
        let Some((start, bytes)) = log.read_log(position) else { return Err(position) };
        if start >= commit {
            // Only the unused bytes at a segment's end lay before the commit.
            break;
        }
        let entry = decode_entry(bytes, start).map_err(|_| start)?;
        let unnormalised = container.deliberate_bug() == Some(crate::deliberate::DeliberateBug::AppliedUnnormalised);
        let next = if unnormalised { entry.next_position() } else { log.entry_start(entry.next_position()) };
        container.apply(&entry, next, out);
        applied += 1;
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_frames_come_only_from_members_under_the_cluster_key_and_clients_only_under_theirs() {
        let peers = |m: MemberId| m == MemberId(2) || m == MemberId(3);
        for frame_type in FrameType::ALL {
            let member_only = frame_type.is_between_members();
            assert_eq!(admits(frame_type, 0, MemberId(2), peers), member_only, "{frame_type:?} from a member");
            assert!(!admits(frame_type, 0, MemberId(1), peers) || !member_only, "{frame_type:?} from itself");
            assert!(!admits(frame_type, 0, MemberId(9), peers) || !member_only, "{frame_type:?} from a stranger");
            assert_eq!(admits(frame_type, 4, MemberId(2), peers), !member_only, "{frame_type:?} under a client key");
            assert!(!admits(frame_type, 0, MemberId(0), peers), "{frame_type:?} under the cluster key, no member");
        }
        assert!(admits(FrameType::Append, 0, MemberId(3), peers));
        assert!(!admits(FrameType::Append, 1, MemberId(3), peers), "a client key never carries an Append");
        assert!(!admits(FrameType::ClientRequest, 0, MemberId(3), peers), "nor the cluster key a command");
    }
}
