//! A hostile client ([`Fault::Hostile`]): it holds a client key, as every client does, and
//! with it forges what only members may send (heartbeats claiming to lead, vote requests and
//! grants, appends, acknowledgements, snapshot chunks) in the cluster's term and the next
//! few, claiming to be any member; and it sends datagrams that do not decode. A member must
//! refuse all of it (members' frames only under the cluster key, from a member) and never
//! stop: every checker runs on as before.

use super::{CLIENT_KEY, MTU_BYTES, Sim};
use crate::simulation::Fault;
use ordo_core::machine::StateMachine;
use ordo_core::{MemberId, Position, Term};
use ordo_transport::{Body, FrameCodec, KeyRing};

impl<M: StateMachine + Default> Sim<M> {
    /// The hostile client's net id: after the members and the clients.
    pub(super) fn forger_net_id(&self) -> u16 {
        self.config.members + self.clients.len() as u16
    }

    /// Now and then (while faults last) the hostile client sends one forged frame, or bytes
    /// that are no frame, to a member.
    pub(super) fn forge(&mut self) {
        if !self.config.faults.has(Fault::Hostile) || self.rng_hostile.u32(..20) != 0 {
            return;
        }
        let members = self.config.members;
        let to = self.rng_hostile.u16(..members);
        let claimed = MemberId(self.rng_hostile.u16(1..=members));
        let term_now = self.nodes.iter().filter_map(|n| Some(n.replica()?.consensus().term())).max();
        let term = Term(term_now.unwrap_or_default().0 + self.rng_hostile.u64(0..=2));
        let position = Position(self.rng_hostile.u64(..1 << 20) / 32 * 32);
        let junk: Vec<u8> = (0..self.rng_hostile.usize(..600)).map(|_| self.rng_hostile.u8(..)).collect();
        let body = match self.rng_hostile.u32(..8) {
            0 => Body::Heartbeat { position_commit: position, position_append: position },
            1 => Body::VoteRequest { pre_vote: self.rng_hostile.bool(), last_term: term, last_position: position },
            2 => Body::VoteResponse { pre_vote: self.rng_hostile.bool(), granted: true },
            3 => Body::Append {
                from_position: position,
                commit_position: position,
                checksum_prev: self.rng_hostile.u32(..),
                fragment_offset: 0,
                bytes: &junk,
            },
            4 => Body::AppendAck { position_append: position, position_durable: position },
            5 => Body::SnapshotChunk {
                snapshot_position: position,
                offset: 0,
                total_bytes: junk.len() as u64,
                bytes: &junk,
            },
            6 => Body::Nak { position },
            _ => {
                // Bytes that are no frame at all.
                self.arrive(to, junk);
                return;
            }
        };
        let keys = KeyRing::for_client(&CLIENT_KEY);
        let security = self.nodes[0].codec.security();
        let mut codec = FrameCodec::new(self.cluster_id, claimed, security, keys, MTU_BYTES).with_key_id(CLIENT_KEY.id);
        let mut buffer = vec![0u8; MTU_BYTES];
        let Ok(length) = codec.encode(&mut buffer, term, &body) else { return };
        buffer.truncate(length);
        self.arrive(to, buffer);
    }

    /// The hostile client's datagram reaches member `to` at once (it sits on the members'
    /// network): through no network dice, so switching it on leaves the network's draws, and
    /// every other class's history, as they were.
    fn arrive(&mut self, to: u16, bytes: Vec<u8>) {
        let node = &mut self.nodes[to as usize];
        if node.replica().is_some() && node.inbox.len() < super::INBOX_DATAGRAMS_MAX {
            node.inbox.push((self.config.members + self.clients.len() as u16, bytes));
        }
        self.stats.forgeries += 1;
    }
}
