//! A fake raftkv node for client tests: a real TCP listener on 127.0.0.1 speaking the
//! client protocol through `Connection`, whose answers a test scripts with a closure.
//! There is no real server to test against yet, and a scripted one can also misbehave
//! on purpose (stay silent, refuse, redirect) in ways a real one only does under faults.

#![allow(dead_code, reason = "each test crate uses a different part of the fake")]

use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use client::connection::Connection;
use client::wire::{LeaderHint, Request, RequestEnvelope, Response, ResponseEnvelope};
use client::Endpoint;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// What the fake does with one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Boxed: a `Response` is large next to `Ignore`.
    Respond(Box<Response>),
    /// Read the request and never answer it (a node that is stuck, or partitioned after
    /// receiving): the client's request timeout must fire.
    Ignore,
    /// Answer, then close the connection (as a node does when it restarts between two
    /// requests of a client): the client's cached connection goes stale.
    RespondThenClose(Box<Response>),
}

type Behaviour = Box<dyn FnMut(usize, &Request) -> Reply + Send>;

/// A scripted node. Stops accepting when dropped. Every node opens the sessions it is
/// asked to (`Request::OpenSession`, answered at once and not passed to the script nor
/// counted among the received requests), so scripts see the reads and writes alone.
pub struct FakeNode {
    pub address: String,
    received: Arc<Mutex<Vec<Request>>>,
    sessions_opened: Arc<Mutex<Vec<u64>>>,
    accept_task: JoinHandle<()>,
}

impl Reply {
    pub fn respond(response: Response) -> Self {
        Self::Respond(Box::new(response))
    }
}

impl FakeNode {
    /// Starts a node that answers the `n`th request it receives (counted from 0, over all
    /// connections) with `behaviour(n, &request)`.
    pub async fn start(behaviour: impl FnMut(usize, &Request) -> Reply + Send + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let address = listener.local_addr().expect("bound address").to_string();
        let received = Arc::new(Mutex::new(Vec::new()));
        let sessions_opened = Arc::new(Mutex::new(Vec::new()));
        let behaviour: Arc<Mutex<Behaviour>> = Arc::new(Mutex::new(Box::new(behaviour)));
        let accept_task = tokio::spawn({
            let received = Arc::clone(&received);
            let sessions_opened = Arc::clone(&sessions_opened);
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    tokio::spawn(serve(
                        Connection::new(stream),
                        Arc::clone(&received),
                        Arc::clone(&sessions_opened),
                        Arc::clone(&behaviour),
                    ));
                }
            }
        });
        Self {
            address,
            received,
            sessions_opened,
            accept_task,
        }
    }

    /// A node that answers every request the same way.
    pub async fn always(response: Response) -> Self {
        Self::start(move |_, _| Reply::respond(response.clone())).await
    }

    /// A follower that redirects everything to `leader`.
    pub async fn follower_of(leader_id: u64, leader_address: &str) -> Self {
        Self::always(Response::NotLeader {
            leader: Some(LeaderHint {
                id: leader_id,
                client_address: Some(leader_address.to_string()),
            }),
        })
        .await
    }

    pub fn endpoint(&self) -> Endpoint {
        endpoint(&self.address)
    }

    /// Every request received so far, in arrival order (session openings left out).
    pub fn received(&self) -> Vec<Request> {
        self.received.lock().expect("not poisoned").clone()
    }

    /// The ids of the sessions this node was asked to open, in order.
    pub fn sessions_opened(&self) -> Vec<u64> {
        self.sessions_opened.lock().expect("not poisoned").clone()
    }
}

impl Drop for FakeNode {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

async fn serve(
    mut connection: Connection<tokio::net::TcpStream>,
    received: Arc<Mutex<Vec<Request>>>,
    sessions_opened: Arc<Mutex<Vec<u64>>>,
    behaviour: Arc<Mutex<Behaviour>>,
) {
    while let Ok(Some(envelope)) = connection.read_frame::<RequestEnvelope>().await {
        let reply = if let Request::OpenSession { client_id } = envelope.request {
            sessions_opened.lock().expect("not poisoned").push(client_id);
            Reply::respond(Response::SessionOpened {
                client_id,
                timeout_millis: 60_000,
            })
        } else {
            let mut received = received.lock().expect("not poisoned");
            let index = received.len();
            received.push(envelope.request.clone());
            (behaviour.lock().expect("not poisoned"))(index, &envelope.request)
        };
        let (response, close) = match reply {
            Reply::Respond(response) => (response, false),
            Reply::RespondThenClose(response) => (response, true),
            Reply::Ignore => continue,
        };
        let answer = ResponseEnvelope {
            id: envelope.id,
            response: *response,
        };
        if connection.write_frame(&answer).await.is_err() || close {
            return;
        }
    }
}

pub fn endpoint(address: &str) -> Endpoint {
    let (host, port) = address.rsplit_once(':').expect("host:port");
    Endpoint {
        host: host.to_string(),
        port: port.parse().expect("a port"),
    }
}

/// An address where nothing listens: a port the OS just handed out and took back.
pub async fn dead_address() -> String {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    listener.local_addr().expect("bound address").to_string()
}

/// Runs `raftkv` with `args` off the async runtime, so the fake nodes keep serving.
pub async fn raftkv(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_raftkv"))
            .args(&args)
            .env_remove("RAFTKV_ENDPOINTS")
            .env_remove("RUST_LOG")
            .output()
            .expect("run raftkv")
    })
    .await
    .expect("the runner does not panic")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
