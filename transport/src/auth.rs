//! Frame authentication and optional encryption.
//!
//! - `mac` (the default): a 16-byte keyed BLAKE3 tag over header and body. Chosen because it
//!   needs no nonce (nothing can go wrong when a member restarts and its frame sequence
//!   starts again), it is one well-kept crate with SIMD on every x86-64, and it is fast for
//!   the short inputs frames are (see the `auth` benchmark for the cost per frame size).
//! - `aead`: AES-256-GCM (RustCrypto `aes-gcm`, AES-NI + PCLMULQDQ) encrypts the body, with
//!   the header as associated data, and its 16-byte tag takes the MAC's place. GCM must never
//!   see a nonce twice under one key, and every member shares the cluster key and any number
//!   of client processes share a client key, so no sender ever seals under the shared key
//!   itself: each codec draws a random 128-bit incarnation when it is made, carries it in
//!   every encrypted frame (after the header, authenticated with it), and seals under the
//!   key derived from the shared one and its incarnation (keyed BLAKE3). Under that key the
//!   nonce, `sender id (2) · key id (2, low bits) · sequence (8)`, is a counter that never
//!   repeats; two processes share a derived key only if their incarnations collide (2^-128
//!   a pair: about 2^-65 for four billion processes).
//!
//! The two subkeys are derived from the one 32-byte key with BLAKE3's `derive_key`, so a
//! key file holds one secret.

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use std::collections::BTreeMap;

pub const TAG_BYTES: usize = 16;
pub const KEY_BYTES: usize = 32;

pub use ordo_core::Security;

/// Bytes of the random incarnation an encrypted frame carries after its header.
pub const INCARNATION_BYTES: usize = 16;

/// One secret's two subkeys.
#[derive(Clone)]
pub struct FrameKey {
    mac: [u8; KEY_BYTES],
    /// AES-256-GCM keys are derived from it, one per sender incarnation (never used itself).
    aead: [u8; KEY_BYTES],
}

/// An AES-256-GCM key for one sender incarnation under one `FrameKey`.
#[derive(Clone)]
pub(crate) struct Sealer(Aes256Gcm);

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

impl Sealer {
    #[inline]
    pub(crate) fn seal(&self, nonce: &[u8; 12], associated: &[u8], body: &mut [u8]) -> [u8; TAG_BYTES] {
        let tag = self
            .0
            .encrypt_in_place_detached(Nonce::from_slice(nonce), associated, body)
            .expect("frames are far below GCM's length limit");
        tag.into()
    }

    #[inline]
    pub(crate) fn open(&self, nonce: &[u8; 12], associated: &[u8], body: &mut [u8], tag: &[u8]) -> bool {
        tag.len() == TAG_BYTES
            && self
                .0
                .decrypt_in_place_detached(Nonce::from_slice(nonce), associated, body, Tag::from_slice(tag))
                .is_ok()
    }
}

impl std::fmt::Debug for FrameKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FrameKey(..)") // never print key material
    }
}

impl FrameKey {
    pub fn new(secret: &[u8; KEY_BYTES]) -> FrameKey {
        let mac = blake3::derive_key("ordo 2026 frame mac v1", secret);
        let aead = blake3::derive_key("ordo 2026 frame aead v1", secret);
        FrameKey { mac, aead }
    }

    /// The AES-256-GCM key of the sender incarnation `incarnation` under this key.
    pub(crate) fn sealer(&self, incarnation: &[u8; INCARNATION_BYTES]) -> Sealer {
        let derived = blake3::keyed_hash(&self.aead, incarnation);
        Sealer(Aes256Gcm::new(derived.as_bytes().into()))
    }

    /// A fresh random key (for `ordo init`).
    pub fn generate_secret() -> [u8; KEY_BYTES] {
        let mut secret = [0u8; KEY_BYTES];
        getrandom::fill(&mut secret).expect("the OS random source works");
        secret
    }

    /// Parses a key file's text: 64 hex digits, surrounding whitespace ignored.
    pub fn parse_hex(text: &str) -> Option<[u8; KEY_BYTES]> {
        let text = text.trim();
        if text.len() != KEY_BYTES * 2 {
            return None;
        }
        let mut secret = [0u8; KEY_BYTES];
        for (i, byte) in secret.iter_mut().enumerate() {
            *byte = u8::from_str_radix(text.get(i * 2..i * 2 + 2)?, 16).ok()?;
        }
        Some(secret)
    }

    pub fn to_hex(secret: &[u8; KEY_BYTES]) -> String {
        secret.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[inline]
    pub(crate) fn mac(&self, covered: &[u8]) -> [u8; TAG_BYTES] {
        let hash = blake3::keyed_hash(&self.mac, covered);
        let mut tag = [0u8; TAG_BYTES];
        tag.copy_from_slice(&hash.as_bytes()[..TAG_BYTES]);
        tag
    }

    #[inline]
    pub(crate) fn mac_matches(&self, covered: &[u8], tag: &[u8]) -> bool {
        tag.len() == TAG_BYTES && constant_time_eq::constant_time_eq(&self.mac(covered), tag)
    }
}

/// A client's key: its id (1 and up; 0 is the cluster key, which only members hold) and
/// its secret. Its file is one line, `ID HEX`; a member's client-keys file is any number of
/// them (`#` starts a comment).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ClientKey {
    pub id: u32,
    pub secret: [u8; KEY_BYTES],
}

impl std::fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClientKey({}, ..)", self.id) // never print key material
    }
}

impl ClientKey {
    /// A fresh random client key with id `id`.
    pub fn generate(id: u32) -> ClientKey {
        assert_ne!(id, 0, "key id 0 is the cluster key");
        ClientKey { id, secret: FrameKey::generate_secret() }
    }

    /// The key's line: `ID HEX`.
    pub fn to_line(&self) -> String {
        format!("{} {}", self.id, FrameKey::to_hex(&self.secret))
    }

    /// The cluster a client key file names on a line `cluster ID` (`ordo init` writes one,
    /// so addresses and the file are all a client needs), if it does.
    pub fn parse_cluster(text: &str) -> Option<u64> {
        text.lines().find_map(|line| line.trim().strip_prefix("cluster ")?.trim().parse().ok())
    }

    /// Every key in a client-keys text, in file order (a `cluster ID` line is not a key);
    /// the error names the line.
    pub fn parse_all(text: &str) -> Result<Vec<ClientKey>, String> {
        let mut keys = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or_default().trim();
            if line.is_empty() || line.starts_with("cluster ") {
                continue;
            }
            let number = index + 1;
            let parsed = line.split_once(char::is_whitespace).and_then(|(id, hex)| {
                Some(ClientKey { id: id.parse().ok().filter(|&id| id != 0)?, secret: FrameKey::parse_hex(hex)? })
            });
            match parsed {
                Some(key) if keys.iter().any(|k: &ClientKey| k.id == key.id) => {
                    return Err(format!(
                        "line {number} repeats key id {}: each client key has an id of its own",
                        key.id
                    ));
                }
                Some(key) => keys.push(key),
                None if FrameKey::parse_hex(line).is_some() => {
                    return Err(format!(
                        "line {number} is a bare 64-hex-digit key (a member's cluster key, which clients may not use); a client key is `ID HEX`, its id 1 or more"
                    ));
                }
                None => {
                    return Err(format!("line {number} is not `ID HEX` (a key id of 1 or more, then 64 hex digits)"));
                }
            }
        }
        Ok(keys)
    }
}

/// The keys a codec seals and opens frames under: the cluster key (key id 0; members
/// only), and clients' keys by id (a member holds every client's, a client its own).
#[derive(Clone, Debug)]
pub struct KeyRing {
    cluster: Option<FrameKey>,
    clients: BTreeMap<u32, FrameKey>,
}

impl KeyRing {
    /// A member's ring: the cluster key, and client keys as they are set.
    pub fn new(cluster: FrameKey) -> KeyRing {
        KeyRing { cluster: Some(cluster), clients: BTreeMap::new() }
    }

    /// A client's ring: its own key, and no cluster key.
    pub fn for_client(key: &ClientKey) -> KeyRing {
        let mut ring = KeyRing { cluster: None, clients: BTreeMap::new() };
        ring.add_client(key.id, FrameKey::new(&key.secret));
        ring
    }

    pub fn add_client(&mut self, key_id: u32, key: FrameKey) {
        assert_ne!(key_id, 0, "key id 0 is the cluster key");
        self.clients.insert(key_id, key);
    }

    /// Replaces every client key (a member reloading its client-keys file: keys added and
    /// retired without a restart).
    pub fn set_clients(&mut self, keys: &[ClientKey]) {
        self.clients = keys.iter().map(|k| (k.id, FrameKey::new(&k.secret))).collect();
    }

    /// The client key ids held, in order.
    pub fn client_ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.clients.keys().copied()
    }

    #[inline]
    pub fn get(&self, key_id: u32) -> Option<&FrameKey> {
        if key_id == 0 { self.cluster.as_ref() } else { self.clients.get(&key_id) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_keys_round_trip_and_bad_ones_are_refused() {
        let secret = FrameKey::generate_secret();
        assert_eq!(FrameKey::parse_hex(&format!("  {}\n", FrameKey::to_hex(&secret))), Some(secret));
        assert_eq!(FrameKey::parse_hex("abcd"), None);
        assert_eq!(FrameKey::parse_hex(&"zz".repeat(32)), None);
        assert_eq!(FrameKey::parse_hex(&"é".repeat(32)), None, "non-ASCII never panics");
    }

    #[test]
    fn mac_detects_any_change_and_another_key() {
        let key = FrameKey::new(&[1; 32]);
        let other = FrameKey::new(&[2; 32]);
        let tag = key.mac(b"frame bytes");
        assert!(key.mac_matches(b"frame bytes", &tag));
        assert!(!key.mac_matches(b"frame bytez", &tag));
        assert!(!other.mac_matches(b"frame bytes", &tag));
    }

    #[test]
    fn aead_round_trips_and_refuses_tampering() {
        let key = FrameKey::new(&[3; 32]);
        let sealer = key.sealer(&[1; INCARNATION_BYTES]);
        let nonce = [9u8; 12];
        let mut body = b"secret body".to_vec();
        let tag = sealer.seal(&nonce, b"header", &mut body);
        assert_ne!(&body, b"secret body");
        let mut opened = body.clone();
        assert!(sealer.open(&nonce, b"header", &mut opened, &tag));
        assert_eq!(&opened, b"secret body");
        let mut tampered = body.clone();
        assert!(!sealer.open(&nonce, b"headex", &mut tampered, &tag), "the header is authenticated too");
        let other = key.sealer(&[2; INCARNATION_BYTES]);
        let mut again = body.clone();
        assert!(!other.open(&nonce, b"header", &mut again, &tag), "another incarnation is another key");
    }

    #[test]
    fn client_keys_parse_by_line_and_a_cluster_key_is_refused_as_one() {
        let (a, b) = (ClientKey::generate(1), ClientKey::generate(7));
        let text = format!("# clients\ncluster 42\n{}\n\n{}  # the new one\n", a.to_line(), b.to_line());
        assert_eq!(ClientKey::parse_all(&text).unwrap(), vec![a, b]);
        assert_eq!(ClientKey::parse_cluster(&text), Some(42));
        let bare = FrameKey::to_hex(&a.secret);
        assert!(ClientKey::parse_all(&bare).unwrap_err().contains("cluster key"));
        assert!(ClientKey::parse_all(&format!("0 {bare}")).unwrap_err().contains("line 1"));
        assert!(ClientKey::parse_all(&format!("{}\n{}", a.to_line(), a.to_line())).unwrap_err().contains("repeats"));
        assert!(ClientKey::parse_all("3 nothex").unwrap_err().contains("line 1"));
        let ring = KeyRing::for_client(&a);
        assert!(ring.get(0).is_none() && ring.get(1).is_some(), "a client holds no cluster key");
    }
}
