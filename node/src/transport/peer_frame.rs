//! The one check the transport makes on a Raft message read from a peer: it really comes
//! from the peer that handshook on this connection and is really addressed to us. Raft
//! semantics (terms, indexes) are the raft crate's business, not the transport's.

use std::fmt;

/// A message whose routing does not match its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Misrouted {
    /// `from` differs from the node id given in this connection's handshake: a buggy or
    /// hostile peer speaking for another node.
    WrongSender { from: u64, peer_id: u64 },
    /// `to` is not this node: the peer's address book points at the wrong node.
    WrongRecipient { to: u64, own_id: u64 },
}

impl fmt::Display for Misrouted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WrongSender { from, peer_id } => {
                write!(f, "message from node {from} on the connection of peer {peer_id}")
            }
            Self::WrongRecipient { to, own_id } => {
                write!(f, "message addressed to node {to} received by node {own_id}")
            }
        }
    }
}

impl std::error::Error for Misrouted {}

/// Accepts `message` read on the connection of `peer_id` at node `own_id`.
pub(crate) fn check_routing(message: &raft::Message, peer_id: u64, own_id: u64) -> Result<(), Misrouted> {
    if message.from != peer_id {
        return Err(Misrouted::WrongSender {
            from: message.from,
            peer_id,
        });
    }
    if message.to != own_id {
        return Err(Misrouted::WrongRecipient {
            to: message.to,
            own_id,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(from: u64, to: u64) -> raft::Message {
        raft::Message {
            from,
            to,
            term: 3,
            body: raft::MessageBody::TimeoutNow,
        }
    }

    #[test]
    fn only_the_handshaken_peer_may_write_to_us() {
        assert_eq!(check_routing(&message(2, 1), 2, 1), Ok(()));
        assert_eq!(
            check_routing(&message(3, 1), 2, 1),
            Err(Misrouted::WrongSender { from: 3, peer_id: 2 })
        );
        assert_eq!(
            check_routing(&message(2, 3), 2, 1),
            Err(Misrouted::WrongRecipient { to: 3, own_id: 1 })
        );
    }
}
