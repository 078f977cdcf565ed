//! The harness's seeded generator: the raft crate's own SplitMix64 ([`raft::Prng`]), so a
//! seed replays a schedule, plus the draws schedules are written in.

use raft::Prng;

#[derive(Debug, Clone)]
pub struct TestRng(Prng);

impl TestRng {
    pub fn new(seed: u64) -> Self {
        Self(Prng::new(seed))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// In `[0, bound)`; `bound` must be positive.
    pub fn below(&mut self, bound: u64) -> u64 {
        self.0.below(bound)
    }

    pub fn chance_per_mille(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}
