//! Where the driver sends a client call's answer.
//!
//! A request from a client connection is answered straight into that connection's queue
//! of answers (`Reply::to_connection`): the driver's send wakes the task that writes the
//! answer, with no task spawned per request to wait on a oneshot and pass it on (issue 14:
//! one thread hop and one task fewer per request, on the path of every get and put). Ops
//! HTTP, the simulation and tests wait on a oneshot (`Reply::oneshot`).
//!
//! A reply the driver drops unanswered (it stopped) answers `ShuttingDown`, so the
//! connection's count of requests in flight always comes back down.

use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit};
use wire::{ErrorKind, ErrorReply, Response, ResponseEnvelope};

/// The request's bytes in the node's and the connection's budgets, held until answered.
pub type RequestPermits = (OwnedSemaphorePermit, OwnedSemaphorePermit);

#[derive(Debug)]
pub struct Reply {
    target: Option<Target>,
}

#[derive(Debug)]
enum Target {
    Oneshot(oneshot::Sender<Response>),
    Connection {
        id: u64,
        /// Has room for this answer: the connection relays at most as many requests as
        /// the queue holds (`client_listener`, `CONNECTION_REQUESTS_IN_FLIGHT_MAX`).
        answers: mpsc::Sender<ResponseEnvelope>,
        permits: RequestPermits,
    },
}

impl Reply {
    pub fn oneshot() -> (Self, oneshot::Receiver<Response>) {
        let (sender, receiver) = oneshot::channel();
        let reply = Self {
            target: Some(Target::Oneshot(sender)),
        };
        (reply, receiver)
    }

    pub fn to_connection(id: u64, answers: mpsc::Sender<ResponseEnvelope>, permits: RequestPermits) -> Self {
        Self {
            target: Some(Target::Connection { id, answers, permits }),
        }
    }

    /// Answers; `Err` if nobody waits for the answer any more.
    pub fn send(mut self, response: Response) -> Result<(), ClientGone> {
        let target = self.target.take().expect("a reply is sent at most once");
        deliver(target, response)
    }

    /// Whether nobody waits for the answer any more (the client went away).
    pub fn is_closed(&self) -> bool {
        match &self.target {
            Some(Target::Oneshot(sender)) => sender.is_closed(),
            Some(Target::Connection { answers, .. }) => answers.is_closed(),
            None => true,
        }
    }
}

/// The client a reply was for went away: its answer is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientGone;

fn deliver(target: Target, response: Response) -> Result<(), ClientGone> {
    match target {
        Target::Oneshot(sender) => sender.send(response).map_err(|_| ClientGone),
        Target::Connection { id, answers, permits } => {
            // The budgets are freed with the answer, as before its write.
            drop(permits);
            answers
                .try_send(ResponseEnvelope { id, response })
                .map_err(|error| {
                    debug_assert!(
                        matches!(error, mpsc::error::TrySendError::Closed(_)),
                        "a connection's answer queue had no room for an answer it awaits"
                    );
                    ClientGone
                })
        }
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        // Oneshot: the receiver sees the sender dropped, as it always has.
        if let Some(target @ Target::Connection { .. }) = self.target.take() {
            let _ = deliver(
                target,
                Response::Error(ErrorReply {
                    kind: ErrorKind::ShuttingDown,
                    message: "node is shutting down".into(),
                }),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::sync::Semaphore;

    use super::*;

    fn permits(node: &Arc<Semaphore>, connection: &Arc<Semaphore>) -> RequestPermits {
        (
            node.clone().try_acquire_many_owned(10).expect("room"),
            connection.clone().try_acquire_many_owned(10).expect("room"),
        )
    }

    #[test]
    fn an_answer_reaches_its_connection_and_frees_the_budgets() {
        let (node, connection) = (Arc::new(Semaphore::new(10)), Arc::new(Semaphore::new(10)));
        let (answers, mut queue) = mpsc::channel(2);
        let reply = Reply::to_connection(7, answers, permits(&node, &connection));
        assert_eq!(node.available_permits(), 0);
        assert!(!reply.is_closed());
        reply
            .send(Response::SnapshotReleased)
            .expect("the connection waits");
        let envelope = queue.try_recv().expect("answered");
        assert_eq!((envelope.id, envelope.response), (7, Response::SnapshotReleased));
        assert_eq!(
            (node.available_permits(), connection.available_permits()),
            (10, 10)
        );
    }

    #[test]
    fn a_reply_dropped_unanswered_answers_shutting_down() {
        let (node, connection) = (Arc::new(Semaphore::new(10)), Arc::new(Semaphore::new(10)));
        let (answers, mut queue) = mpsc::channel(2);
        drop(Reply::to_connection(3, answers, permits(&node, &connection)));
        let envelope = queue.try_recv().expect("answered");
        assert_eq!(envelope.id, 3);
        assert!(matches!(
            envelope.response,
            Response::Error(ErrorReply {
                kind: ErrorKind::ShuttingDown,
                ..
            })
        ));
        assert_eq!(node.available_permits(), 10);
    }

    #[test]
    fn a_gone_connection_is_told_apart() {
        let (node, connection) = (Arc::new(Semaphore::new(10)), Arc::new(Semaphore::new(10)));
        let (answers, queue) = mpsc::channel(2);
        let reply = Reply::to_connection(3, answers, permits(&node, &connection));
        drop(queue);
        assert!(reply.is_closed());
        assert_eq!(reply.send(Response::SnapshotReleased), Err(ClientGone));
        assert_eq!(node.available_permits(), 10);
    }
}
