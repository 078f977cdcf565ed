//! Raft message frames on an accepted peer connection, as the acceptor reads them
//! (`node::transport::inbound`): decode, the routing check, the unverified-incarnation
//! filter, then `raft::Raft::step` on a real server for every message that would reach
//! the driver. The first byte chooses the connection's peer id and whether its
//! incarnation is verified; the rest is the byte stream.
//!
//! Never a panic; a forwarded message comes from the handshaken peer, is addressed to
//! us and (unverified) is a leader's; decoded messages re-encode to the same message
//! and verdict; a message `step` refuses changes nothing observable.
#![no_main]

use wire::frame::encode_frame;
use libfuzzer_sys::fuzz_target;
use node::fuzzing::{read_peer_message, PeerMessageVerdict};
use raft::{ConfState, Config, Raft};

const OWN_ID: u64 = 1;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, mut rest)) = data.split_first() else {
        return;
    };
    // Peers 2 and 3 are members; 4 is not; 1 is ourselves (the handshake refuses it, but
    // the frame check must still hold).
    let peer_id = u64::from(flags & 0b11) + 1;
    let verified = flags & 0b100 != 0;
    let mut raft = server();
    while let Ok(Some((message, consumed, verdict))) = read_peer_message(rest, peer_id, OWN_ID, verified) {
        assert!(consumed > 0 && consumed <= rest.len());
        rest = &rest[consumed..];

        let frame = encode_frame(&message).expect("a decoded message encodes");
        let (again, again_consumed, again_verdict) = read_peer_message(&frame, peer_id, OWN_ID, verified)
            .expect("own frame parses")
            .expect("own frame is complete");
        assert_eq!(again, message);
        assert_eq!(again_consumed, frame.len());
        assert_eq!(again_verdict, verdict);

        match verdict {
            PeerMessageVerdict::Misrouted(_) => {
                assert!(message.from != peer_id || message.to != OWN_ID);
                // The connection is closed.
                return;
            }
            PeerMessageVerdict::DropUnverified => assert!(!verified),
            PeerMessageVerdict::Forward => {
                assert_eq!((message.from, message.to), (peer_id, OWN_ID));
                step(&mut raft, message);
            }
        }
    }
});

/// Node 1 of a fresh three-voter cluster, with the production defaults.
fn server() -> Raft {
    Raft::bootstrap(Config::new(OWN_ID), ConfState::with_voters([1, 2, 3])).expect("valid bootstrap")
}

/// What the driver does with a forwarded message: step it, then handle the `Ready`.
fn step(raft: &mut Raft, message: raft::Message) {
    let before = (
        raft.term(),
        raft.vote(),
        raft.role(),
        raft.leader(),
        raft.committed(),
    );
    let before_log = (raft.log().last_index(), raft.log().last_term());
    let valid = message.validate(OWN_ID);
    let result = raft.step(message);
    if valid.is_err() {
        // Refused before anything is looked at.
        assert_eq!(result, valid);
        assert_eq!(
            (
                raft.term(),
                raft.vote(),
                raft.role(),
                raft.leader(),
                raft.committed()
            ),
            before
        );
        assert_eq!((raft.log().last_index(), raft.log().last_term()), before_log);
    }
    let mut rounds = 0;
    while raft.has_ready() {
        rounds += 1;
        assert!(rounds < 100, "has_ready never settles");
        let _ready = raft.ready();
        raft.advance();
    }
}
