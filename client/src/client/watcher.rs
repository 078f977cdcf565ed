//! Following the changes under a prefix (issue 13): `Watcher` asks the leader for the
//! page of the history after the last one it saw and remembers where the next starts.
//! Every replica holds the same history, so after a timeout, a broken connection or a
//! leader change the next page, from whichever leader answers it, starts exactly after
//! the last event delivered: no event is missed or repeated. (Only a leader answers, so
//! a node cut off from the cluster cannot keep a watcher waiting on a frozen history.) A revision compacted away is an
//! error (`ClientError::Compacted`), never a silent gap.

use std::time::Duration;

use super::{Client, ClientError};
use crate::wire::Event;

#[derive(Debug, Clone)]
pub struct Watcher {
    prefix: Vec<u8>,
    /// The revision the next page starts at (0 until the first answer: "from now").
    next_revision: u64,
}

impl Watcher {
    /// Watches `prefix` from `from_revision` (0: from the revision after the answering
    /// node's current one).
    pub fn new(prefix: impl Into<Vec<u8>>, from_revision: u64) -> Self {
        Self {
            prefix: prefix.into(),
            next_revision: from_revision,
        }
    }

    /// The revision the next event will have at least.
    pub fn next_revision(&self) -> u64 {
        self.next_revision
    }

    /// The next events in revision order: waits up to about half the client's request
    /// timeout for one, and may return none. On an error nothing was skipped: the next
    /// call asks again from the same revision.
    pub async fn next(&mut self, client: &mut Client) -> Result<Vec<Event>, ClientError> {
        let wait = client.options.request_timeout / 2;
        let page = client
            .watch_page(
                self.prefix.clone(),
                self.next_revision,
                wait.max(Duration::from_millis(1)),
                true,
            )
            .await?;
        let mut after = self.next_revision.max(1) - 1;
        for event in &page.events {
            if event.revision() <= after || !event.kv.key.starts_with(&self.prefix) {
                return Err(ClientError::unexpected(
                    "a node".to_string(),
                    &format!(
                        "event at revision {} under {:?} after revision {after}",
                        event.revision(),
                        event.kv.key
                    ),
                ));
            }
            after = event.revision();
        }
        if page.next_revision <= after || (self.next_revision > 0 && page.next_revision < self.next_revision)
        {
            return Err(ClientError::unexpected(
                "a node".to_string(),
                &format!(
                    "watch page moving back to revision {} from {}",
                    page.next_revision, self.next_revision
                ),
            ));
        }
        self.next_revision = page.next_revision;
        Ok(page.events)
    }
}
