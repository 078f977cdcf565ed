//! A whole inbound peer connection as the acceptor reads it (`node::transport::inbound`):
//! the first frame is a `Handshake`, checked by `check_handshake` against a fixed
//! acceptor (node 1 of cluster "blue"); once accepted, the remaining bytes are Raft
//! message frames from that peer. The same bytes are also read as the dialer reads the
//! acceptor's answer (`HandshakeReply`). The first input byte picks the acceptor: a
//! member of the cluster, or a node with an empty data dir (no cluster yet).
//!
//! Never a panic; every acceptance obeys the rules stated in `transport::handshake`
//! (checked here from the outside); refusals quote a bounded text back to the dialer;
//! whatever decodes re-encodes to the same value and the same decision.
#![no_main]

use std::collections::BTreeMap;

use wire::frame::{encode_frame, parse_frame};
use libfuzzer_sys::fuzz_target;
use node::fuzzing::{accept_handshake, read_peer_message, AcceptedAs, ExpectedHandshake, PeerMessageVerdict};
use node::identity::ClusterId;
use node::membership::PeerEntry;
use node::transport::{HandshakeReply, PROTOCOL_VERSION};

const OWN_ID: u64 = 1;
const BLUE: ClusterId = ClusterId(0xb1);
/// The longest client address a peer may announce (`transport::handshake`).
const CLIENT_ADDRESS_BYTES_MAX: usize = 253 + 6;
/// A refusal's text goes back to the dialer and into our logs: it must stay small,
/// whatever the dialer sent (cluster names are quoted truncated).
const REFUSAL_TEXT_BYTES_MAX: usize = 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, stream)) = data.split_first() else {
        return;
    };
    let expected = acceptor(flags & 1 == 0);
    read_replies(stream);

    let Ok(Some((handshake, consumed, verdict))) = accept_handshake(stream, &expected) else {
        return;
    };
    assert!(consumed > 0 && consumed <= stream.len());
    let frame = encode_frame(&handshake).expect("a decoded handshake encodes");
    let (again, again_consumed, again_verdict) = accept_handshake(&frame, &expected)
        .expect("own frame parses")
        .expect("own frame is complete");
    assert_eq!(again, handshake);
    assert_eq!(again_consumed, frame.len());
    assert_eq!(again_verdict, verdict);

    let accepted = match verdict {
        Err(refusal) => {
            let text = refusal.to_string();
            assert!(
                text.len() <= REFUSAL_TEXT_BYTES_MAX,
                "refusal of {} bytes",
                text.len()
            );
            return;
        }
        Ok(accepted) => accepted,
    };
    // What any acceptance requires.
    assert_eq!(handshake.protocol_version, PROTOCOL_VERSION);
    assert_eq!(handshake.cluster_name, expected.cluster_name);
    assert!(handshake.client_address.len() <= CLIENT_ADDRESS_BYTES_MAX);
    assert_ne!(handshake.node_id, OWN_ID, "a dialer claiming our own id");
    let verified = match accepted {
        AcceptedAs::Probe => {
            assert!(handshake.probe);
            // A probe is answered and the connection closed: no Raft message follows.
            return;
        }
        AcceptedAs::RaftMessages => {
            // Only a configured peer under the incarnation its record names.
            let peer = expected.peers.get(&handshake.node_id).expect("a known peer");
            assert!(peer
                .incarnation
                .is_none_or(|member| member == handshake.incarnation));
            true
        }
        AcceptedAs::Unverified => false,
    };
    // Raft messages only flow within one cluster, between members of it.
    assert!(!handshake.probe);
    assert!(expected.cluster_id.is_some());
    assert_eq!(handshake.cluster_id, expected.cluster_id);

    let mut rest = &stream[consumed..];
    while let Ok(Some((message, consumed, verdict))) =
        read_peer_message(rest, handshake.node_id, OWN_ID, verified)
    {
        rest = &rest[consumed..];
        match verdict {
            PeerMessageVerdict::Misrouted(_) => return,
            PeerMessageVerdict::DropUnverified => assert!(!verified),
            PeerMessageVerdict::Forward => {
                assert_eq!((message.from, message.to), (handshake.node_id, OWN_ID))
            }
        }
    }
});

/// Node 1, incarnation 5. As a member of "blue": peer 2 is bound to incarnation 7,
/// peer 3 to none yet (`member add` without one). Without a cluster: no peers known.
fn acceptor(member: bool) -> ExpectedHandshake {
    let peers: BTreeMap<u64, PeerEntry> = if member {
        [(2, Some(7)), (3, None)]
            .into_iter()
            .map(|(id, incarnation)| {
                let entry = PeerEntry {
                    address: Some(format!("n{id}:7000")),
                    incarnation,
                };
                (id, entry)
            })
            .collect()
    } else {
        BTreeMap::new()
    };
    ExpectedHandshake {
        own_id: OWN_ID,
        own_incarnation: 5,
        cluster_name: "blue".to_string(),
        cluster_id: member.then_some(BLUE),
        peers,
    }
}

/// The dialer's side: the acceptor's answer, decoded and round-tripped.
fn read_replies(stream: &[u8]) {
    if let Ok(Some((reply, consumed))) = parse_frame::<HandshakeReply>(stream) {
        assert!(consumed <= stream.len());
        let frame = encode_frame(&reply).expect("a decoded reply encodes");
        let (again, _) = parse_frame::<HandshakeReply>(&frame)
            .expect("own frame parses")
            .expect("own frame is complete");
        assert_eq!(again, reply);
    }
}
