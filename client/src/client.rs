//! The async client library: finds the leader, retries through elections and timeouts
//! until a deadline, and makes every write exactly-once with a client session (Raft
//! thesis §6.3): each new write takes the next sequence number of this client, and every
//! retry of it carries the same one, so the cluster applies it once however many copies
//! arrive.
//!
//! A `Client` sends one request at a time (its methods take `&mut self`). That is what
//! the session protocol needs: the cluster remembers only each client's latest write, so
//! a client with two writes in flight could see the older one refused as expired. For
//! concurrency, make one `Client` per task. Only tokio's net, time and io are used, so
//! the library runs unchanged under madsim.

mod backoff;
mod backup;
mod client_id;
mod error;
mod pool;
mod reads;
mod router;
mod validate;
mod watcher;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::{self, Instant};

use self::backoff::Backoff;
pub use self::backup::BackupStarted;
pub use self::error::ClientError;
use self::pool::ConnectionPool;
use self::router::Router;
use self::validate::check_command;
pub use self::watcher::Watcher;
use crate::wire::{
    Command, ErrorKind, MemberChange, MemberList, NodeDump, NodeStatus, Prior, Request, RequestEnvelope,
    Response, Session, WriteResult, CLIENT_PROTOCOL_VERSION,
};
use crate::{parse_endpoints, Endpoint};

/// Redirects followed back to back without pausing. More than this means nodes disagree
/// about the leader (an election is under way), and pausing beats ping-ponging.
const REDIRECTS_WITHOUT_PAUSE_MAX: u32 = 3;

/// Time bounds of every call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientOptions {
    /// Bound of one attempt (connect, send, receive) at one node. A node that does not
    /// answer within it is presumed down or partitioned, and the next one is tried.
    pub request_timeout: Duration,
    /// Bound of a whole call, retries included: the call fails with
    /// `ClientError::DeadlineExceeded` as soon as the next pause would reach it, so it
    /// never overruns (the last attempt's timeout is cut to what is left).
    pub deadline: Duration,
}

impl Default for ClientOptions {
    /// Two seconds per attempt outlasts a healthy cluster's slowest fsync; ten seconds
    /// per call outlasts a few elections.
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(2),
            deadline: Duration::from_secs(10),
        }
    }
}

/// A connection to a raftkv cluster. See the module documentation.
#[derive(Debug)]
pub struct Client {
    options: ClientOptions,
    router: Router,
    pool: ConnectionPool,
    /// Whether reads go to every listed endpoint in turn (`spread_reads`), not the leader.
    spread_reads: bool,
    /// The id of this client's session (thesis §6.3); a new one after it expired.
    client_id: u64,
    /// Whether the session `client_id` was opened (as far as this client knows).
    session_open: bool,
    /// The sequence number the next new write takes; starts at 1 in each session.
    next_sequence: u64,
    next_request_id: u64,
}

/// What to do after a failed attempt.
enum Retry {
    /// Pause, then try again (at whatever target the router now holds).
    AfterPause,
    /// A redirect to a known leader: try at once.
    AtOnce,
}

impl Client {
    /// A client of the cluster reachable at `endpoints`. Connects lazily, on first use.
    pub fn new(endpoints: Vec<Endpoint>, options: ClientOptions) -> Result<Self, ClientError> {
        if endpoints.is_empty() {
            return Err(ClientError::Endpoints(crate::EndpointError {
                input: String::new(),
                reason: "no endpoint given",
            }));
        }
        let addresses = endpoints.iter().map(address_of).collect();
        let client_id = client_id::generate_client_id();
        Ok(Self {
            options,
            router: Router::new(addresses),
            pool: ConnectionPool::default(),
            spread_reads: false,
            client_id,
            session_open: false,
            next_sequence: 1,
            next_request_id: 1,
        })
    }

    /// A client from a comma-separated `host:port` list, as in `RAFTKV_ENDPOINTS`.
    pub fn from_list(endpoints: &str, options: ClientOptions) -> Result<Self, ClientError> {
        Self::new(parse_endpoints(endpoints)?, options)
    }

    /// Replaces the generated client id, for tests and simulations that want fixed ids.
    /// Two live clients must never share one (see `client_id`).
    pub fn with_client_id(mut self, client_id: u64) -> Self {
        self.client_id = client_id;
        self.session_open = false;
        self.next_sequence = 1;
        self
    }

    /// Sends each read (`get`, `list`, linearizable or stale) to the listed endpoints in
    /// turn instead of the leader: a follower answers a linearizable read through the
    /// leader's ReadIndex (thesis §6.4.1), as up to date as the leader's own, and the
    /// work of serving reads is shared by every node. A failed attempt is retried the
    /// usual way (at the leader), and that endpoint is left out of the turn for a while.
    /// Writes, watches and everything else still go to the leader.
    pub fn spread_reads(mut self, spread: bool) -> Self {
        self.spread_reads = spread;
        self
    }

    /// Talks TLS to every node with `config` (see `crate::tls::client_config`).
    pub fn with_tls(mut self, config: Arc<rustls::client::ClientConfig>) -> Self {
        self.pool.set_tls(Some(config));
        self
    }

    /// This client's session id: the cluster deduplicates writes by it.
    pub fn client_id(&self) -> u64 {
        self.client_id
    }

    /// The sequence number the next new write will carry.
    pub fn next_sequence(&self) -> u64 {
        self.next_sequence
    }

    /// The address this client currently believes is the leader's.
    pub fn leader_address(&self) -> &str {
        self.router.target()
    }

    /// The listed endpoints, as `host:port`.
    pub fn endpoints(&self) -> &[String] {
        self.router.endpoints()
    }

    /// The time bounds this client was built with.
    pub fn options(&self) -> ClientOptions {
        self.options
    }

    /// Sets `key` to `value`; returns whether it held a value and how long (not the value:
    /// see [`Client::put_returning_previous`]).
    pub async fn put(
        &mut self,
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
    ) -> Result<Prior, ClientError> {
        self.done(Self::put_command(key, value), false).await
    }

    /// Sets `key` to `value`; returns the value it replaced (etcd's `prev_kv`). The
    /// cluster keeps that value in this client's session record until its next write, to
    /// answer a retry.
    pub async fn put_returning_previous(
        &mut self,
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
    ) -> Result<Option<Vec<u8>>, ClientError> {
        let prior = self.done(Self::put_command(key, value), true).await?;
        Ok(returned_value(prior))
    }

    /// Removes `key`; returns whether it held a value (absent: nothing changed).
    pub async fn delete(&mut self, key: impl Into<Vec<u8>>) -> Result<Prior, ClientError> {
        self.done(Command::Delete { key: key.into() }, false).await
    }

    /// Removes `key`; returns the value it had (`None`: it was absent, nothing changed).
    pub async fn delete_returning_previous(
        &mut self,
        key: impl Into<Vec<u8>>,
    ) -> Result<Option<Vec<u8>>, ClientError> {
        let prior = self.done(Command::Delete { key: key.into() }, true).await?;
        Ok(returned_value(prior))
    }

    /// Sets `key` to `new_value` (deletes it if `None`) only if its current value equals
    /// `expected` (`None`: absent). Returns whether it swapped and whether the key held a
    /// value (not the value: see [`Client::compare_and_swap_returning_current`]).
    pub async fn compare_and_swap(
        &mut self,
        key: impl Into<Vec<u8>>,
        expected: Option<Vec<u8>>,
        new_value: Option<Vec<u8>>,
    ) -> Result<(bool, Prior), ClientError> {
        self.swap(Self::swap_command(key, expected, new_value), false)
            .await
    }

    /// As [`Client::compare_and_swap`], returning the value the swap found.
    pub async fn compare_and_swap_returning_current(
        &mut self,
        key: impl Into<Vec<u8>>,
        expected: Option<Vec<u8>>,
        new_value: Option<Vec<u8>>,
    ) -> Result<(bool, Option<Vec<u8>>), ClientError> {
        let (swapped, current) = self
            .swap(Self::swap_command(key, expected, new_value), true)
            .await?;
        Ok((swapped, returned_value(current)))
    }

    fn put_command(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Command {
        Command::Put {
            key: key.into(),
            value: value.into(),
        }
    }

    fn swap_command(
        key: impl Into<Vec<u8>>,
        expected: Option<Vec<u8>>,
        new_value: Option<Vec<u8>>,
    ) -> Command {
        Command::CompareAndSwap {
            key: key.into(),
            expected,
            new_value,
        }
    }

    /// A put's or delete's answer.
    async fn done(&mut self, command: Command, return_prior: bool) -> Result<Prior, ClientError> {
        match self.write(command, return_prior).await? {
            (
                endpoint,
                result @ WriteResult::Done {
                    previous: Prior::Present { .. },
                },
            ) if return_prior => Err(ClientError::unexpected(endpoint, &result)),
            (_, WriteResult::Done { previous }) => Ok(previous),
            (endpoint, other) => Err(ClientError::unexpected(endpoint, &other)),
        }
    }

    /// A compare-and-swap's answer.
    async fn swap(&mut self, command: Command, return_prior: bool) -> Result<(bool, Prior), ClientError> {
        match self.write(command, return_prior).await? {
            (
                endpoint,
                result @ WriteResult::CompareAndSwap {
                    current: Prior::Present { .. },
                    ..
                },
            ) if return_prior => Err(ClientError::unexpected(endpoint, &result)),
            (_, WriteResult::CompareAndSwap { swapped, current }) => Ok((swapped, current)),
            (endpoint, other) => Err(ClientError::unexpected(endpoint, &other)),
        }
    }

    /// The Raft state of the node at `endpoint` (any node, leader or not). One attempt
    /// bounded by `request_timeout`, no retry: a status is a snapshot of one node, and a
    /// monitoring caller wants "unreachable" quickly rather than after the deadline.
    pub async fn status(&mut self, endpoint: &Endpoint) -> Result<NodeStatus, ClientError> {
        let address = address_of(endpoint);
        match self
            .call_once(&address, Request::Status, self.options.request_timeout)
            .await?
        {
            Response::Status(status) => Ok(status),
            Response::Error(reply) if reply.kind == ErrorKind::PermissionDenied => {
                Err(ClientError::PermissionDenied {
                    message: reply.message,
                })
            }
            other => Err(ClientError::unexpected_response(address, other)),
        }
    }

    /// The whole Raft log and KV map of the node at `endpoint`. One attempt, like
    /// `status`, but bounded by the deadline: a dump of a large node takes a while.
    pub async fn dump(&mut self, endpoint: &Endpoint) -> Result<NodeDump, ClientError> {
        let address = address_of(endpoint);
        match self
            .call_once(&address, Request::Dump, self.options.deadline)
            .await?
        {
            Response::Dump(dump) => Ok(dump),
            Response::Error(reply) if reply.kind == ErrorKind::PermissionDenied => {
                Err(ClientError::PermissionDenied {
                    message: reply.message,
                })
            }
            other => Err(ClientError::unexpected_response(address, other)),
        }
    }

    /// The cluster's members as the leader sees them.
    pub async fn members(&mut self) -> Result<MemberList, ClientError> {
        match self.call(&Request::Members).await? {
            (_, Response::Members(list)) => Ok(list),
            (endpoint, other) => Err(ClientError::unexpected_response(endpoint, other)),
        }
    }

    /// Asks the leader for one membership change and waits until it is committed and
    /// applied; answers the members after it. Changes are idempotent (see
    /// [`MemberChange`]), so the retries of `call` are safe.
    pub async fn change_members(&mut self, change: MemberChange) -> Result<MemberList, ClientError> {
        if change.id() == 0 {
            return Err(ClientError::InvalidRequest {
                message: "member ids start at 1".to_string(),
            });
        }
        match self.call(&Request::ChangeMembers(change)).await? {
            (_, Response::Members(list)) => Ok(list),
            (endpoint, other) => Err(ClientError::unexpected_response(endpoint, other)),
        }
    }

    /// Opens the session `client_id` through the log unless it is open. Opening is
    /// idempotent, so `call`'s retries are safe.
    async fn open_session(&mut self) -> Result<(), ClientError> {
        if self.session_open {
            return Ok(());
        }
        let request = Request::OpenSession {
            client_id: self.client_id,
        };
        match self.call(&request).await? {
            (_, Response::SessionOpened { .. }) => {
                self.session_open = true;
                self.next_sequence = 1;
                Ok(())
            }
            (endpoint, other) => Err(ClientError::unexpected_response(endpoint, other)),
        }
    }

    /// Forgets the session after the cluster dropped it: the next write opens a new id,
    /// never this one again, so a late copy of an old write cannot find it open.
    fn renew_session(&mut self) {
        self.client_id = client_id::next_client_id(self.client_id);
        self.session_open = false;
        self.next_sequence = 1;
    }

    /// The next sequence of the open session. Taken before the first attempt and never
    /// reused: even a write that failed with an unknown outcome may still be applied.
    fn next_session(&mut self) -> Session {
        let session = Session {
            client_id: self.client_id,
            sequence: self.next_sequence,
        };
        self.next_sequence += 1;
        session
    }

    /// Sends a new write under the next session sequence, retrying it with that same
    /// sequence. Returns the answering endpoint with the result. A write refused because
    /// its session expired before any copy of it could have been applied is sent once
    /// more in a new session; otherwise its outcome is unknown and said so.
    async fn write(
        &mut self,
        command: Command,
        return_prior: bool,
    ) -> Result<(String, WriteResult), ClientError> {
        check_command(&command)?;
        self.open_session().await?;
        let mut request = Request::Write {
            session: self.next_session(),
            command,
            return_prior,
        };
        let mut renewed = false;
        loop {
            match self.call(&request).await {
                Ok((endpoint, Response::Written(result))) => return Ok((endpoint, result)),
                Ok((endpoint, other)) => return Err(ClientError::unexpected_response(endpoint, other)),
                Err(ClientError::SessionExpired {
                    outcome_unknown: false,
                    ..
                }) if !renewed => {
                    renewed = true;
                    self.renew_session();
                    self.open_session().await?;
                    if let Request::Write { session, .. } = &mut request {
                        *session = self.next_session();
                    }
                }
                Err(error @ ClientError::SessionExpired { .. }) => {
                    self.renew_session();
                    return Err(error);
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Sends `request` to the believed leader until a node answers it or the deadline
    /// passes. The request (and so a write's session) is identical on every attempt.
    async fn call(&mut self, request: &Request) -> Result<(String, Response), ClientError> {
        let deadline_at = Instant::now() + self.options.deadline;
        let mut backoff = Backoff::new(self.client_id ^ self.next_request_id);
        let mut attempts: u32 = 0;
        let mut redirects_without_pause: u32 = 0;
        // Whether an earlier attempt may have reached the log: it timed out, its
        // connection broke, or its leader lost the entry. A refusal (not the leader,
        // overloaded) or a failed connect never did.
        let mut maybe_proposed = false;
        // The endpoints whose latest attempt could not connect, with why: what the caller
        // is told if the deadline passes.
        let mut unreachable: BTreeMap<String, String> = BTreeMap::new();
        let spread = self.spread_reads && matches!(request, Request::Get { .. } | Request::List { .. });
        loop {
            // A spread read's first attempt goes to the next endpoint in turn; its
            // retries, like every other call, follow the leader.
            let spread_attempt = spread && attempts == 0;
            let address = if spread_attempt {
                self.router.spread_target(Instant::now())
            } else {
                self.router.target().to_string()
            };
            let remaining = deadline_at.saturating_duration_since(Instant::now());
            let timeout = self.options.request_timeout.min(remaining);
            attempts += 1;
            let outcome = self.call_once(&address, request.clone(), timeout).await;
            match &outcome {
                Err(ClientError::Unreachable { reason, .. }) => {
                    unreachable.insert(address.clone(), reason.clone());
                }
                _ => {
                    unreachable.remove(&address);
                }
            }
            if spread_attempt && !matches!(outcome, Ok(Response::Value(_) | Response::Listing(_))) {
                self.router.spread_failed(&address, Instant::now());
            }
            let (retry, last_error) = match outcome {
                Ok(Response::NotLeader { leader }) => {
                    let leader_id = leader.as_ref().map(|hint| hint.id);
                    let leader_address = leader.and_then(|hint| hint.client_address);
                    let retry = match leader_address {
                        Some(leader_address) if leader_address != address => {
                            self.router.follow(leader_address);
                            Retry::AtOnce
                        }
                        // No leader known, or a stale hint naming this very node.
                        _ => {
                            self.router.advance();
                            Retry::AfterPause
                        }
                    };
                    let error = ClientError::NotLeader {
                        endpoint: address.clone(),
                        leader_id,
                    };
                    (retry, error)
                }
                Ok(Response::Error(reply)) => {
                    let error = ClientError::Server {
                        endpoint: address.clone(),
                        kind: reply.kind,
                        message: reply.message.clone(),
                    };
                    match reply.kind {
                        ErrorKind::InvalidRequest => {
                            return Err(ClientError::InvalidRequest {
                                message: reply.message,
                            })
                        }
                        ErrorKind::SessionExpired => {
                            return Err(ClientError::SessionExpired {
                                message: reply.message,
                                outcome_unknown: maybe_proposed,
                            })
                        }
                        ErrorKind::PermissionDenied => {
                            return Err(ClientError::PermissionDenied {
                                message: reply.message,
                            })
                        }
                        ErrorKind::NoSpace => {
                            return Err(ClientError::NoSpace {
                                message: reply.message,
                            })
                        }
                        ErrorKind::Compacted => {
                            return Err(ClientError::Compacted {
                                message: reply.message,
                            })
                        }
                        ErrorKind::Internal => return Err(error),
                        // Busy, or leadership moved mid-request: the same node may serve
                        // (or redirect) after a pause.
                        // Not proposed: retrying is safe and leaves nothing unknown.
                        ErrorKind::Overloaded | ErrorKind::NotNow => (Retry::AfterPause, error),
                        ErrorKind::Unavailable => {
                            maybe_proposed = true;
                            (Retry::AfterPause, error)
                        }
                        ErrorKind::ShuttingDown => {
                            maybe_proposed = true;
                            self.router.advance();
                            (Retry::AfterPause, error)
                        }
                    }
                }
                Ok(response) => return Ok((address, response)),
                // Down, partitioned or too slow: another node may know a leader.
                Err(error @ (ClientError::Connection { .. } | ClientError::Timeout { .. })) => {
                    maybe_proposed = true;
                    self.router.advance();
                    (Retry::AfterPause, error)
                }
                // Nothing was sent.
                Err(error @ ClientError::Unreachable { .. }) => {
                    self.router.advance();
                    (Retry::AfterPause, error)
                }
                Err(error) => return Err(error),
            };
            tracing::debug!(client_id = self.client_id, %address, attempts, error = %last_error, "attempt failed; retrying");
            let pause = match retry {
                Retry::AtOnce if redirects_without_pause < REDIRECTS_WITHOUT_PAUSE_MAX => {
                    redirects_without_pause += 1;
                    Duration::ZERO
                }
                _ => {
                    redirects_without_pause = 0;
                    backoff.next_pause()
                }
            };
            let remaining = deadline_at.saturating_duration_since(Instant::now());
            if remaining <= pause {
                return Err(ClientError::DeadlineExceeded {
                    deadline: self.options.deadline,
                    attempts,
                    last_error: Box::new(last_error),
                    unreachable: unreachable.into_iter().collect(),
                    endpoints: self.router.endpoints().len(),
                    outcome_unknown: maybe_proposed && is_write(request),
                });
            }
            if !pause.is_zero() {
                time::sleep(pause).await;
            }
        }
    }

    /// One attempt at one node.
    async fn call_once(
        &mut self,
        address: &str,
        request: Request,
        timeout: Duration,
    ) -> Result<Response, ClientError> {
        let envelope = RequestEnvelope {
            protocol_version: CLIENT_PROTOCOL_VERSION,
            id: self.next_request_id,
            request,
        };
        self.next_request_id += 1;
        self.pool.exchange(address, &envelope, timeout).await
    }
}

/// The value of an answer that was asked for it (`done` and `swap` refuse one without).
fn returned_value(prior: Prior) -> Option<Vec<u8>> {
    match prior {
        Prior::Value(value) => Some(value),
        Prior::Absent | Prior::Present { .. } => None,
    }
}

/// Whether `request` changes the cluster, so that a lost answer leaves its outcome unknown.
fn is_write(request: &Request) -> bool {
    matches!(request, Request::Write { .. } | Request::ChangeMembers(_))
}

/// `host:port`, the form `TcpStream::connect` and leader hints use.
fn address_of(endpoint: &Endpoint) -> String {
    format!("{}:{}", endpoint.host, endpoint.port)
}
