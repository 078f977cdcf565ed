//! A follower's reads waiting on the leader's ReadIndex (thesis §6.4.1). Reads asked
//! between two `Ready`s leave as one `ReadIndex` request, the batch named by its first
//! read's context, and the leader's one answer releases them all: every read of the batch
//! was asked before the request left, so the index the leader answers with covers every
//! write acknowledged before any of them (etcd batches its linearizable reads the same
//! way). A lost request or answer is covered by the expiry of the whole batch.

use std::collections::BTreeMap;

#[derive(Debug, Default)]
pub struct ForwardedReads {
    /// Asked since the last `take_unsent`, oldest first.
    unsent: Vec<u64>,
    /// Batches sent and not answered: batch id (its first context) -> its contexts and
    /// the ticks it has waited.
    sent: BTreeMap<u64, (Vec<u64>, u32)>,
    /// Contexts in `unsent` and `sent` together.
    len: usize,
}

impl ForwardedReads {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn has_unsent(&self) -> bool {
        !self.unsent.is_empty()
    }

    pub fn push(&mut self, context: u64) {
        self.unsent.push(context);
        self.len += 1;
    }

    /// Moves the reads asked since the last call into a batch; returns its id, which the
    /// `ReadIndex` request carries as its context.
    pub fn take_unsent(&mut self) -> Option<u64> {
        let batch = std::mem::take(&mut self.unsent);
        let id = *batch.first()?;
        // Contexts are unique among a server's outstanding reads, so the id of an
        // outstanding batch (one of them) is too.
        let replaced = self.sent.insert(id, (batch, 0));
        assert!(replaced.is_none(), "read context {id} reused while outstanding");
        Some(id)
    }

    /// The leader answered batch `id`: its reads, or `None` if it is not outstanding.
    pub fn answer(&mut self, id: u64) -> Option<Vec<u64>> {
        let (contexts, _) = self.sent.remove(&id)?;
        self.len -= contexts.len();
        Some(contexts)
    }

    /// One tick passes; returns the reads of batches that waited `timeout_ticks`.
    pub fn tick(&mut self, timeout_ticks: u32) -> Vec<u64> {
        let mut expired_ids = Vec::new();
        for (id, (_, waited_ticks)) in &mut self.sent {
            *waited_ticks += 1;
            if *waited_ticks >= timeout_ticks {
                expired_ids.push(*id);
            }
        }
        expired_ids
            .into_iter()
            .filter_map(|id| self.answer(id))
            .flatten()
            .collect()
    }

    /// Every read, sent or not: the leader changed and may never answer.
    pub fn drain_all(&mut self) -> Vec<u64> {
        let mut all = std::mem::take(&mut self.unsent);
        all.extend(
            std::mem::take(&mut self.sent)
                .into_values()
                .flat_map(|(contexts, _)| contexts),
        );
        self.len = 0;
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_asked_between_two_sends_share_one_batch_and_one_answer() {
        let mut reads = ForwardedReads::default();
        assert_eq!(reads.take_unsent(), None, "nothing to send");
        reads.push(7);
        reads.push(3);
        assert!(reads.has_unsent());
        assert_eq!(reads.take_unsent(), Some(7));
        reads.push(9);
        assert_eq!(reads.len(), 3);
        assert_eq!(reads.answer(3), None, "3 names no batch");
        assert_eq!(reads.answer(7), Some(vec![7, 3]));
        assert_eq!(reads.answer(7), None, "answered once");
        assert_eq!(reads.len(), 1);
        assert_eq!(reads.drain_all(), [9]);
        assert_eq!(reads.len(), 0);
    }

    #[test]
    fn a_batch_expires_whole_after_its_timeout() {
        let mut reads = ForwardedReads::default();
        reads.push(1);
        reads.push(2);
        reads.take_unsent();
        assert!(reads.tick(2).is_empty());
        reads.push(5);
        reads.take_unsent();
        assert_eq!(reads.tick(2), [1, 2]);
        assert_eq!(reads.tick(2), [5]);
        assert_eq!(reads.len(), 0);
    }
}
