//! Ids and positions as newtypes, so a term is never passed where a position is expected.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Every entry in the log starts on a 32-byte boundary (as in Aeron), so the next entry's
/// position is `position + align32(header + payload)`.
pub const ALIGNMENT_BYTES: u64 = 32;

/// Rounds `bytes` up to the next multiple of [`ALIGNMENT_BYTES`].
#[inline]
pub const fn align32(bytes: u64) -> u64 {
    (bytes + (ALIGNMENT_BYTES - 1)) & !(ALIGNMENT_BYTES - 1)
}

macro_rules! newtype {
    ($(#[$doc:meta])* $name:ident($inner:ty), $prefix:literal) => {
        $(#[$doc])*
        #[derive(
            Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub $inner);

        impl $name {
            /// Zero: the first position, no term, no member, no session.
            pub const ZERO: Self = Self(0);

            /// The number inside.
            #[inline]
            pub const fn get(self) -> $inner {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }

        impl From<$inner> for $name {
            fn from(value: $inner) -> Self {
                Self(value)
            }
        }
    };
}

newtype!(
    /// A cluster member's id, `1..=members`; 0 means "nobody" on the wire and on disk.
    MemberId(u16),
    "member "
);
newtype!(
    /// A client session, assigned by the leader when the session-open entry is appended.
    SessionId(u64),
    "session "
);
newtype!(
    /// A leadership term; it only ever grows.
    Term(u64),
    "term "
);
newtype!(
    /// A byte offset into the logical log (the one currency between log, transport,
    /// consensus and service). Entry positions are multiples of 32.
    Position(u64),
    "position "
);
newtype!(
    /// Cluster time in nanoseconds, assigned by the leader and carried in the log: the only
    /// clock a state machine may read.
    ClusterTimeNs(u64),
    "t="
);
newtype!(
    /// Identifies one cluster; every segment, frame and metadata file carries it so that
    /// files and datagrams from another cluster are refused.
    ClusterId(u64),
    "cluster "
);

impl Position {
    /// The position after an entry of `length_bytes` (header + payload) at `self`.
    #[inline]
    pub const fn after_entry(self, length_bytes: u32) -> Self {
        Self(self.0 + align32(length_bytes as u64))
    }

    /// Whether it is on an entry boundary (a multiple of the entry alignment).
    #[inline]
    pub const fn is_aligned(self) -> bool {
        self.0.is_multiple_of(ALIGNMENT_BYTES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn align32_rounds_up_to_multiples_of_32() {
        assert_eq!(align32(0), 0);
        assert_eq!(align32(1), 32);
        assert_eq!(align32(32), 32);
        assert_eq!(align32(33), 64);
        assert_eq!(align32(64 + 1024), 1088);
    }

    #[test]
    fn after_entry_keeps_positions_aligned() {
        let next = Position(64).after_entry(65);
        assert_eq!(next, Position(160));
        assert!(next.is_aligned());
        assert!(!Position(33).is_aligned());
    }

    #[test]
    fn display_names_the_unit() {
        assert_eq!(Term(3).to_string(), "term 3");
        assert_eq!(Position(96).to_string(), "position 96");
    }
}
