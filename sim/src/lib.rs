//! Deterministic simulation of whole raftkv clusters under madsim (issue 4, in progress):
//! the per-key linearizability checker, the crash-losing simulated store, and the rule
//! that turns one seed into a run's parameters. The cluster runs themselves are not built yet.

#[cfg(madsim)]
pub mod cluster;
pub mod history;
pub mod linearizability;
pub mod sim_store;
#[cfg(madsim)]
pub mod workload;

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
        // The raft crate's generator, so a seed means the same thing here as there.
        let mut rng = raft::Prng::new(seed);
        Self {
            seed,
            cluster_size: if rng.below(2) == 0 { 3 } else { 5 },
            client_count: 1 + rng.below(4) as usize,
            crash_per_mille: rng.below(50) as u32,
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
