//! The log engine's recovery (`node::storage::log_engine`) over arbitrary bytes as the
//! last segment: framing, checksums, record decoding, groups, the replay rules and the
//! torn-tail decision.
//!
//! Never a panic: bad bytes are `StorageError::Corrupt`; what is recovered is a log
//! contiguous from its start; the records end inside the bytes; and recovering again
//! what a recovery kept (its records, zeros after, as the torn tail is zeroed) gives the
//! same state and the same end.
#![no_main]

use libfuzzer_sys::fuzz_target;
use node::fuzzing::replay_log_segment;
use node::storage::StorageError;

fuzz_target!(|data: &[u8]| {
    match replay_log_segment(data) {
        Ok((state, end)) => {
            assert!(end <= data.len());
            for (offset, entry) in state.entries.iter().enumerate() {
                assert_eq!(entry.index, state.floor + 1 + offset as u64);
            }
            let mut kept = data[..end].to_vec();
            kept.resize(data.len(), 0);
            let again = replay_log_segment(&kept).expect("what a recovery kept recovers");
            assert_eq!(again, (state, end));
        }
        Err(error) => assert!(matches!(error, StorageError::Corrupt(_)), "{error:?}"),
    }
});
