//! The echo machine: replies with each command's bytes, emits them as an event, and counts
//! them. The smallest state machine there is, for benchmarks (`ordo bench --app echo`) and
//! tests of the member.

use ordo_core::machine::{Context, StateMachine};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Echo {
    /// Commands applied.
    pub count: u64,
}

impl StateMachine for Echo {
    fn apply(&mut self, ctx: &mut Context<'_>, command: &[u8]) {
        self.count += 1;
        ctx.reply(command);
        ctx.emit(command);
    }

    fn snapshot(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.count.to_le_bytes());
    }

    fn restore(bytes: &[u8]) -> Result<Self, String> {
        let count = bytes.try_into().map_err(|_| format!("an echo snapshot is 8 bytes, not {}", bytes.len()))?;
        Ok(Echo { count: u64::from_le_bytes(count) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_restores_the_count_and_a_bad_one_says_why() {
        let mut bytes = Vec::new();
        Echo { count: 42 }.snapshot(&mut bytes);
        assert_eq!(Echo::restore(&bytes), Ok(Echo { count: 42 }));
        assert!(Echo::restore(b"abc").unwrap_err().contains("8 bytes"));
    }
}
