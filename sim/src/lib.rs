//! Deterministic simulation of whole raftkv clusters under madsim (issue 4).
//! For now: the rule that turns one seed into a run's parameters.

/// Parameters of one simulated run, all derived from its seed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunParameters {
    pub seed: u64,
    pub cluster_size: usize,
    pub client_count: usize,
    pub crash_per_mille: u32,
}

impl RunParameters {
    pub fn from_seed(seed: u64) -> Self {
        let mut state = seed;
        let mut next = move || {
            // SplitMix64 step: the same generator the raft crate uses.
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Self {
            seed,
            cluster_size: if next() % 2 == 0 { 3 } else { 5 },
            client_count: 1 + (next() % 4) as usize,
            crash_per_mille: (next() % 50) as u32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::RunParameters;

    #[test]
    fn one_seed_gives_one_set_of_parameters() {
        assert_eq!(RunParameters::from_seed(42), RunParameters::from_seed(42));
        let sizes: std::collections::BTreeSet<usize> = (0..64)
            .map(|seed| RunParameters::from_seed(seed).cluster_size)
            .collect();
        assert_eq!(sizes.into_iter().collect::<Vec<_>>(), [3, 5]);
    }
}
