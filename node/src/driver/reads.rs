//! Reads inside the driver: `Get` and `List` from the applied KV map with each pair's
//! revisions and the revision they read at, and the debugging `Dump`. raftkv's own
//! records (`\0raftkv/`: members, revisions, the history) are never answered: a page
//! that reaches them skips the whole range at once instead of scanning it.

use std::sync::atomic::Ordering;

use wire::frame::FRAME_PAYLOAD_BYTES_MAX;
use wire::{Listing, ReadValue, Request, Response, LISTING_BYTES_MAX};

use super::requests::{internal, invalid};
use super::{describe, Driver, PeerNetwork};
use crate::kv::revisions::{read_key_value, with_revisions};
use crate::membership::{is_system_key, SYSTEM_KEY_RANGE_END};
use crate::storage::{KvPage, Storage, StorageError};

/// Keys one `count_only` answer counts at most (and `LISTING_BYTES_MAX` of keys and values
/// scanned): a count is paged like a listing, so no answer scans the whole store.
const COUNT_KEYS_PER_ANSWER_MAX: usize = 100_000;

/// Keys and values one response may carry: half a frame, leaving room for encoding.
const RESPONSE_BYTES_MAX: usize = FRAME_PAYLOAD_BYTES_MAX / 2;

impl<S: Storage, N: PeerNetwork> Driver<S, N> {
    /// Serves a read from the local KV map (its index was applied, or staleness is fine).
    pub(super) fn serve_read(&mut self, request: &Request) -> Response {
        self.metrics.reads_total.fetch_add(1, Ordering::Relaxed);
        let result = match request {
            Request::Get { key, .. } => self.read_value(key),
            Request::List {
                prefix,
                start,
                limit,
                count_only,
                ..
            } => self.list_client_pairs(prefix, start, *limit as usize, *count_only),
            _ => unreachable!("only reads are served here"),
        };
        result.unwrap_or_else(|error| internal(error.to_string()))
    }

    fn read_value(&mut self, key: &[u8]) -> Result<Response, StorageError> {
        let revision = self.machine.revision(&self.storage)?;
        let kv = read_key_value(&self.storage, key, self.machine.cached_key(key))?;
        Ok(Response::Value(ReadValue { revision, kv }))
    }

    fn list_client_pairs(
        &mut self,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
        count_only: bool,
    ) -> Result<Response, StorageError> {
        let revision = self.machine.revision(&self.storage)?;
        if count_only {
            // One page's scan at most per answer (the driver must not stall on a count of
            // millions of keys): the client sums the pages' counts from `next` to `next`.
            let page = client_page(
                &self.storage,
                prefix,
                start,
                COUNT_KEYS_PER_ANSWER_MAX,
                LISTING_BYTES_MAX,
            )?;
            return Ok(Response::Listing(Listing {
                pairs: Vec::new(),
                revision,
                next: page.next,
                count: Some(page.pairs.len() as u64),
            }));
        }
        let page = client_page(&self.storage, prefix, start, limit, LISTING_BYTES_MAX)?;
        let pairs = page
            .pairs
            .into_iter()
            .map(|(key, value)| with_revisions(&self.storage, key, value))
            .collect::<Result<_, _>>()?;
        Ok(Response::Listing(Listing {
            pairs,
            revision,
            next: page.next,
            count: None,
        }))
    }

    /// The node's log and its client KV map.
    pub(super) fn dump(&mut self) -> Response {
        let space = self.space();
        let mut kv = Vec::new();
        let mut bytes = 0usize;
        let mut start = Vec::new();
        loop {
            let page = match client_page(&self.storage, b"", &start, usize::MAX, RESPONSE_BYTES_MAX - bytes) {
                Ok(page) => page,
                Err(error) => return internal(error.to_string()),
            };
            bytes += page.pairs.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
            kv.extend(page.pairs);
            match page.next {
                None => break,
                Some(_) if bytes >= RESPONSE_BYTES_MAX => {
                    return invalid("the KV map is too large to dump in one response".into())
                }
                Some(next) => start = next,
            }
        }
        Response::Dump(describe::node_dump(&self.raft, space, kv))
    }
}

/// One page of the clients' pairs under `prefix` from `start` on: `Storage::list_page`
/// with raftkv's own records left out. A page that runs into them ends there (its `next`
/// is past them); a page that starts among them starts past them.
fn client_page(
    storage: &dyn Storage,
    prefix: &[u8],
    start: &[u8],
    limit: usize,
    max_bytes: usize,
) -> Result<KvPage, StorageError> {
    let mut page = storage.list_page(prefix, start, limit, max_bytes.max(1))?;
    let Some(first_system) = page.pairs.iter().position(|(key, _)| is_system_key(key)) else {
        return Ok(page);
    };
    if first_system > 0 {
        page.pairs.truncate(first_system);
        page.next = Some(SYSTEM_KEY_RANGE_END.to_vec());
        return Ok(page);
    }
    let page = storage.list_page(prefix, SYSTEM_KEY_RANGE_END, limit, max_bytes.max(1))?;
    debug_assert!(page.pairs.iter().all(|(key, _)| !is_system_key(key)));
    Ok(page)
}
