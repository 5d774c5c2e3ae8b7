//! Says so when a peer stays silent: a member whose configured peer address is wrong,
//! firewalled or not running would otherwise just never elect a leader (or run without that
//! follower), and the operator would have to guess why. Sans-I/O: the member tells it what
//! it heard and when, and logs what it returns.

use crate::replica::network::Address;
use ordo_core::MemberId;

/// A peer silent this long, from the member's start or from its last frame, is reported.
pub const SILENCE_REPORTED_NS: u64 = 5_000_000_000;

#[derive(Debug)]
struct Peer<A> {
    id: MemberId,
    address: A,
    heard_ns: u64,
    reported: bool,
}

/// The last time each peer was heard from, and whether its silence was reported.
#[derive(Debug)]
pub struct PeerWatch<A> {
    peers: Vec<Peer<A>>,
    silence_reported_ns: u64,
}

impl<A: Address> PeerWatch<A> {
    /// Watches `peers` from `now_ns` on.
    pub fn new(peers: &[(MemberId, A)], now_ns: u64, silence_reported_ns: u64) -> Self {
        let peers =
            peers.iter().map(|&(id, address)| Peer { id, address, heard_ns: now_ns, reported: false }).collect();
        PeerWatch { peers, silence_reported_ns }
    }

    /// A frame from `member` arrived. Returns a line to log when its silence had been
    /// reported.
    pub fn heard(&mut self, member: MemberId, now_ns: u64) -> Option<String> {
        let peer = self.peers.iter_mut().find(|p| p.id == member)?;
        peer.heard_ns = now_ns;
        if !std::mem::take(&mut peer.reported) {
            return None;
        }
        Some(format!("member {} at {} is heard from again", member.0, peer.address))
    }

    /// The peers silent too long and not reported yet, each as one line to log (once per
    /// silence).
    pub fn check(&mut self, me: MemberId, now_ns: u64, out: &mut dyn FnMut(String)) {
        for peer in &mut self.peers {
            let silent_ns = now_ns.saturating_sub(peer.heard_ns);
            if peer.reported || silent_ns < self.silence_reported_ns {
                continue;
            }
            peer.reported = true;
            out(format!(
                "member {}: nothing heard from member {} at {} for {:.0} s: check that it runs, that this \
                 address is member {}'s in every ordo.toml, and that this host can reach it over UDP (firewall, routes)",
                me.0,
                peer.id.0,
                peer.address,
                silent_ns as f64 / 1e9,
                peer.id.0
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    #[test]
    fn a_silent_peer_is_reported_once_and_its_return_is_noted() {
        let address: SocketAddr = "127.0.0.1:9003".parse().unwrap();
        let peers = [(MemberId(2), "127.0.0.1:9002".parse().unwrap()), (MemberId(3), address)];
        let mut watch = PeerWatch::new(&peers, 0, 1_000);
        let mut lines = Vec::new();
        watch.check(MemberId(1), 999, &mut |line| lines.push(line));
        assert!(lines.is_empty(), "not silent long enough yet");
        assert_eq!(watch.heard(MemberId(2), 900), None);
        watch.check(MemberId(1), 1_500, &mut |line| lines.push(line));
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].contains("member 3 at 127.0.0.1:9003") && lines[0].contains("UDP"), "{}", lines[0]);
        watch.check(MemberId(1), 5_000, &mut |line| lines.push(line));
        assert_eq!(lines.len(), 2, "member 2 fell silent too; member 3 is not reported twice: {lines:?}");
        assert!(lines[1].contains("member 2 at"));
        assert_eq!(watch.heard(MemberId(3), 6_000).as_deref(), Some("member 3 at 127.0.0.1:9003 is heard from again"));
        assert_eq!(watch.heard(MemberId(9), 6_000), None, "not a peer");
    }
}
