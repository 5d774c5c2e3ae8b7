//! What the fuzz targets share: the codecs they are pointed at, set up as a member sets them
//! up, and the seed inputs (`cargo run --bin seeds` writes them under `seeds/`).

use ordo_core::{ClusterId, MemberId, Security};
use ordo_transport::{FrameCodec, FrameKey, KeyRing};

pub const CLUSTER: ClusterId = ClusterId(0x0D0);
pub const KEY: [u8; 32] = [7; 32];

/// The codec a member of `CLUSTER` with `KEY` uses.
pub fn codec(security: Security, member: u16) -> FrameCodec {
    FrameCodec::new(CLUSTER, MemberId(member), security, KeyRing::new(FrameKey::new(&KEY)), 1408)
}

/// A log configuration with small segments, so inputs reach across a segment boundary.
pub fn log_config() -> ordo_core::LogConfig {
    ordo_core::LogConfig {
        cluster_id: CLUSTER,
        segment_bytes: 64 << 10,
        durability: ordo_core::Durability::Replicated,
        entry_payload_bytes_max: 4096,
    }
}

/// The apps, by the first byte of an input.
pub const APPS: [&str; 5] = ["ledger", "kv", "mutex", "airlock", "book"];
