//! Every byte decoder of what a node reads back from disk or applies from the log:
//! `FjallStore`'s key and value codecs (`storage::fjall_codec`) for each stored type
//! (log entries, hard state, snapshot metadata, the data dir's identity, the applied
//! index, session records), the snapshot image, the KV command in a log entry, and the
//! member records (`membership::load_records`, through a `MemoryStore`).
//!
//! Never a panic: bad bytes are `StorageError::Corrupt` (or a decode error); whatever
//! decodes re-encodes and decodes to the same value; the strict value codec never
//! accepts trailing bytes.
#![no_main]

use std::fmt::Debug;

use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use node::fuzzing::{decode_index_key, decode_stored, encode_stored, index_key};
use node::identity::Identity;
use node::kv::command::KvCommand;
use node::membership::{load_records, MemberRecord, MEMBER_KEY_PREFIX};
use node::storage::image_stream::{ImageItem, ImageReader};
use node::storage::memory_store::MemoryStore;
use node::storage::{ApplyBatch, SessionRecord, SnapshotImage, Storage, StorageError};
use raft::{Entry, HardState, SnapshotMeta};
use serde::de::DeserializeOwned;
use serde::Serialize;

fuzz_target!(|data: &[u8]| {
    match decode_index_key(data) {
        Ok(index) => assert_eq!(index_key(index).as_slice(), data),
        Err(error) => {
            assert_ne!(data.len(), 8);
            assert!(matches!(error, StorageError::Corrupt(_)));
        }
    }
    stored::<Entry>(data);
    stored::<HardState>(data);
    stored::<SnapshotMeta>(data);
    stored::<Identity>(data);
    stored::<u64>(data);
    stored::<SessionRecord>(data);

    let whole = SnapshotImage::decode(data);
    if let Ok(image) = &whole {
        assert_eq!(SnapshotImage::decode(&image.encode()).as_ref(), Ok(image));
    }
    // Streamed in pieces (as chunks from a peer or pieces of a file arrive), the image
    // reads back the same, or is refused as the whole buffer is.
    let piece_bytes = usize::from(data.first().copied().unwrap_or(1)).max(1);
    let mut streamed = SnapshotImage::default();
    let mut reader = ImageReader::new();
    let outcome = data
        .chunks(piece_bytes)
        .try_for_each(|piece| {
            reader.feed(piece, |item| {
                match item {
                    ImageItem::Pair(key, value) => streamed.kv.push((key, value)),
                    ImageItem::Session(id, record) => streamed.sessions.push((id, record)),
                }
                Ok(())
            })
        })
        .and_then(|()| reader.finish());
    match (&whole, outcome) {
        (Ok(image), Ok(summary)) => {
            assert_eq!(&streamed, image);
            assert_eq!(summary.pairs, image.kv.len() as u64);
        }
        (Err(StorageError::Corrupt(_)), Err(StorageError::Corrupt(_))) => {}
        (whole, streamed) => panic!("whole: {whole:?}, in pieces of {piece_bytes}: {streamed:?}"),
    }
    if let Ok(command) = KvCommand::decode(data) {
        assert_eq!(KvCommand::decode(&command.encode()).ok(), Some(command));
    }
    if let Ok(record) = postcard::from_bytes::<MemberRecord>(data) {
        let bytes = postcard::to_allocvec(&record).expect("a decoded record encodes");
        assert_eq!(postcard::from_bytes::<MemberRecord>(&bytes).ok(), Some(record));
    }
    member_records(data);
});

/// The strict value codec: decodes only a whole value, and round-trips.
fn stored<T: Serialize + DeserializeOwned + PartialEq + Debug>(bytes: &[u8]) {
    match decode_stored::<T>(bytes) {
        Ok(value) => {
            let encoded = encode_stored(&value);
            assert!(
                encoded.len() <= bytes.len(),
                "{value:?}: encodes longer than it decoded from"
            );
            assert_eq!(decode_stored::<T>(&encoded), Ok(value));
            // A value with a byte after it is not one this store wrote.
            let mut longer = encoded;
            longer.push(0);
            assert!(matches!(
                decode_stored::<T>(&longer),
                Err(StorageError::Corrupt(_))
            ));
        }
        Err(error) => assert!(matches!(error, StorageError::Corrupt(_)), "{error:?}"),
    }
}

/// Keys under the member prefix with arbitrary suffixes and values, read back the way a
/// node loads its peer directory: either every record, or `Corrupt`.
fn member_records(data: &[u8]) {
    let mut input = Unstructured::new(data);
    let Ok(pairs) = input.arbitrary::<Vec<(Vec<u8>, Vec<u8>)>>() else {
        return;
    };
    let kv_writes: Vec<(Vec<u8>, Option<Vec<u8>>)> = pairs
        .into_iter()
        .map(|(suffix, value)| ([MEMBER_KEY_PREFIX, &suffix].concat(), Some(value)))
        .collect();
    let written = kv_writes.len();
    let mut store = MemoryStore::default();
    store
        .apply(ApplyBatch {
            applied_index: 1,
            kv_writes,
            session_writes: Vec::new(),
        })
        .expect("memory store applies");
    match load_records(&store) {
        Ok(records) => {
            assert!(records.len() <= written);
            for (id, record) in records {
                let value = store
                    .get(&node::membership::member_key(id))
                    .expect("memory store reads")
                    .expect("a loaded record is stored");
                assert_eq!(postcard::from_bytes::<MemberRecord>(&value).ok(), Some(record));
            }
        }
        Err(error) => assert!(matches!(error, StorageError::Corrupt(_)), "{error:?}"),
    }
}
