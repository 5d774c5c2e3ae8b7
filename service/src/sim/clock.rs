//! A simulated member's two clocks, read against the simulation's true time: a monotonic
//! clock (timeouts) that starts from an origin of its own at every boot and runs fast or
//! slow, and a wall clock (cluster time) that is off by an offset an NTP step may change,
//! forward or back.

/// The true wall-clock time at the simulation's time zero (2027-01-15, in ns since the Unix
/// epoch): cluster time is epoch nanoseconds, as on a real member.
pub(crate) const WALL_EPOCH_NS: u64 = 1_800_000_000_000_000_000;
/// The most a member's wall clock is ever off true time, either way; any two members'
/// clocks differ by at most twice this.
pub(crate) const WALL_OFFSET_MAX_NS: u64 = 250_000_000;
/// The most a monotonic clock runs fast or slow, in parts per million (2%).
const DRIFT_PPM_MAX: i64 = 20_000;

#[derive(Clone, Copy, Debug)]
pub(crate) struct Clocks {
    /// How far the monotonic clock runs fast (+) or slow (−), in parts per million.
    drift_ppm: i64,
    /// The monotonic clock read `mono_origin_ns` at true time `booted_at_ns`.
    mono_origin_ns: u64,
    booted_at_ns: u64,
    /// The wall clock's offset from true wall time.
    wall_offset_ns: i64,
}

impl Clocks {
    /// Perfect clocks that all agree: every member's monotonic clock reads true time.
    pub(crate) fn exact() -> Clocks {
        Clocks { drift_ppm: 0, mono_origin_ns: 0, booted_at_ns: 0, wall_offset_ns: 0 }
    }

    /// The clocks of a member booting at true time `now_ns`: a monotonic origin of its own
    /// (the uptime of a machine that has run a while), a drift and a wall-clock offset.
    pub(crate) fn boot(rng: &mut fastrand::Rng, now_ns: u64) -> Clocks {
        Clocks {
            drift_ppm: rng.i64(-DRIFT_PPM_MAX..=DRIFT_PPM_MAX),
            mono_origin_ns: rng.u64(..1 << 50),
            booted_at_ns: now_ns,
            wall_offset_ns: Clocks::offset(rng),
        }
    }

    fn offset(rng: &mut fastrand::Rng) -> i64 {
        let most = WALL_OFFSET_MAX_NS as i64;
        rng.i64(-most..=most)
    }

    /// An NTP correction: the wall clock jumps to a new offset (forward or back); returns the
    /// step in ns.
    pub(crate) fn step(&mut self, rng: &mut fastrand::Rng) -> i64 {
        let before = self.wall_offset_ns;
        self.wall_offset_ns = Clocks::offset(rng);
        self.wall_offset_ns - before
    }

    /// The monotonic clock's reading at true time `now_ns`.
    pub(crate) fn mono_ns(&self, now_ns: u64) -> u64 {
        debug_assert!(now_ns >= self.booted_at_ns, "read after boot");
        let elapsed = now_ns - self.booted_at_ns;
        let drift = elapsed as i64 / 1_000 * self.drift_ppm / 1_000;
        self.mono_origin_ns + elapsed.saturating_add_signed(drift)
    }

    /// The wall clock's reading (epoch ns) at true time `now_ns`.
    pub(crate) fn wall_ns(&self, now_ns: u64) -> u64 {
        (WALL_EPOCH_NS + now_ns).saturating_add_signed(self.wall_offset_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_clocks_start_anywhere_and_drift_within_two_percent() {
        let mut rng = fastrand::Rng::with_seed(3);
        for _ in 0..100 {
            let clocks = Clocks::boot(&mut rng, 1_000);
            let elapsed = clocks.mono_ns(1_000 + 1_000_000_000) - clocks.mono_ns(1_000);
            assert!((980_000_000..=1_020_000_000).contains(&elapsed), "{elapsed}");
        }
    }

    #[test]
    fn wall_clocks_stay_within_their_offset_through_steps() {
        let mut rng = fastrand::Rng::with_seed(4);
        let mut clocks = Clocks::boot(&mut rng, 0);
        let (mut back, mut forward) = (false, false);
        for _ in 0..100 {
            let step = clocks.step(&mut rng);
            back |= step < 0;
            forward |= step > 0;
            assert!(clocks.wall_ns(5).abs_diff(WALL_EPOCH_NS + 5) <= WALL_OFFSET_MAX_NS);
        }
        assert!(back && forward, "steps go both ways");
    }
}
