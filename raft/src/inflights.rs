//! The pipelining window of one follower: the last index of every append message sent
//! but not yet acknowledged, bounded by `max_inflight_appends_per_follower`.

use std::collections::VecDeque;

use crate::types::Index;

#[derive(Debug, Clone)]
pub struct Inflights {
    last_indexes: VecDeque<Index>,
    capacity: usize,
}

impl Inflights {
    pub fn new(capacity: usize) -> Self {
        assert!(capacity > 0);
        Self {
            last_indexes: VecDeque::with_capacity(capacity.min(1024)),
            capacity,
        }
    }

    pub fn is_full(&self) -> bool {
        self.last_indexes.len() >= self.capacity
    }

    pub fn len(&self) -> usize {
        self.last_indexes.len()
    }

    pub fn add(&mut self, last_index: Index) {
        assert!(!self.is_full(), "inflight window overflow");
        assert!(
            self.last_indexes.back().is_none_or(|&back| back < last_index),
            "inflight appends must be sent in index order"
        );
        self.last_indexes.push_back(last_index);
    }

    /// Frees every append whose last index is at or below `index` (acknowledged).
    pub fn free_to(&mut self, index: Index) {
        while self.last_indexes.front().is_some_and(|&front| front <= index) {
            self.last_indexes.pop_front();
        }
    }

    /// Frees the oldest append, as if acknowledged, so one more may go out.
    pub fn free_first_one(&mut self) {
        self.last_indexes.pop_front();
    }

    pub fn clear(&mut self) {
        self.last_indexes.clear();
    }
}
