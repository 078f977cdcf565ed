//! The client's reads: `get`, `list` pages and counts, and `watch` pages (another
//! `impl Client` block, beside the write and retry paths in `client.rs`).

use std::time::Duration;

use super::validate::check_key;
use super::{Client, ClientError};
use crate::wire::{
    EventPage, Listing, ReadConsistency, ReadValue, Request, Response, LIST_LIMIT_MAX, WATCH_WAIT_MILLIS_MAX,
};

impl Client {
    /// The value of `key`, or `None` if absent.
    pub async fn get(
        &mut self,
        key: impl Into<Vec<u8>>,
        consistency: ReadConsistency,
    ) -> Result<Option<Vec<u8>>, ClientError> {
        Ok(self.get_with_revisions(key, consistency).await?.into_value())
    }

    /// `key` with its revisions, and the revision the node read at.
    pub async fn get_with_revisions(
        &mut self,
        key: impl Into<Vec<u8>>,
        consistency: ReadConsistency,
    ) -> Result<ReadValue, ClientError> {
        let key = key.into();
        check_key(&key)?;
        match self.call(&Request::Get { key, consistency }).await? {
            (_, Response::Value(value)) => Ok(value),
            (endpoint, other) => Err(ClientError::unexpected_response(endpoint, other)),
        }
    }

    /// One page of the changes under `prefix` from `from_revision` on (0: from the next
    /// revision of the node that answers), waiting up to `wait` for one if none is there
    /// yet. With `require_leader` the leader answers (`Watcher` follows pages so);
    /// without, the node the client talks to answers from its own history.
    pub async fn watch_page(
        &mut self,
        prefix: impl Into<Vec<u8>>,
        from_revision: u64,
        wait: Duration,
        require_leader: bool,
    ) -> Result<EventPage, ClientError> {
        let prefix = prefix.into();
        check_key(&prefix)?;
        let wait_millis = u64::try_from(wait.as_millis())
            .unwrap_or(u64::MAX)
            .min(WATCH_WAIT_MILLIS_MAX);
        let request = Request::Watch {
            prefix,
            from_revision,
            wait_millis,
            require_leader,
        };
        match self.call(&request).await? {
            (_, Response::Events(page)) => Ok(page),
            (endpoint, other) => Err(ClientError::unexpected_response(endpoint, other)),
        }
    }

    /// The first page of the pairs whose key starts with `prefix`, in key order: at most
    /// `limit` pairs (and about `LISTING_BYTES_MAX` bytes); `Listing::next` says where the
    /// rest starts (`list_from`).
    pub async fn list(
        &mut self,
        prefix: impl Into<Vec<u8>>,
        limit: u32,
        consistency: ReadConsistency,
    ) -> Result<Listing, ClientError> {
        self.list_from(prefix, Vec::new(), limit, consistency).await
    }

    /// A page of the pairs under `prefix` from the key `start` on (a previous page's
    /// `next`). Each page is one read of its own consistency: pages may see writes made
    /// between them.
    pub async fn list_from(
        &mut self,
        prefix: impl Into<Vec<u8>>,
        start: impl Into<Vec<u8>>,
        limit: u32,
        consistency: ReadConsistency,
    ) -> Result<Listing, ClientError> {
        if limit == 0 || limit > LIST_LIMIT_MAX {
            return Err(ClientError::InvalidRequest {
                message: format!("list limit {limit} is outside 1..={LIST_LIMIT_MAX}"),
            });
        }
        self.list_request(prefix.into(), start.into(), limit, false, consistency)
            .await
    }

    /// How many keys start with `prefix`, from the key `start` on (empty: all of them).
    pub async fn count_from(
        &mut self,
        prefix: impl Into<Vec<u8>>,
        start: impl Into<Vec<u8>>,
        consistency: ReadConsistency,
    ) -> Result<u64, ClientError> {
        let prefix = prefix.into();
        let mut start = start.into();
        let mut total = 0u64;
        // Each answer counts one page's scan and says where counting goes on.
        loop {
            match self
                .list_request(prefix.clone(), start, 1, true, consistency)
                .await?
            {
                Listing {
                    count: Some(count),
                    next,
                    ..
                } => {
                    total += count;
                    match next {
                        Some(next) => start = next,
                        None => return Ok(total),
                    }
                }
                other => return Err(ClientError::unexpected(self.leader_address().to_string(), &other)),
            }
        }
    }

    async fn list_request(
        &mut self,
        prefix: Vec<u8>,
        start: Vec<u8>,
        limit: u32,
        count_only: bool,
        consistency: ReadConsistency,
    ) -> Result<Listing, ClientError> {
        check_key(&prefix)?;
        check_key(&start)?;
        let request = Request::List {
            prefix,
            start,
            limit,
            count_only,
            consistency,
        };
        match self.call(&request).await? {
            (_, Response::Listing(listing)) => Ok(listing),
            (endpoint, other) => Err(ClientError::unexpected_response(endpoint, other)),
        }
    }
}
