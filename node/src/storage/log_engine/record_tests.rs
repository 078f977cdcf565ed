//! Record framing: round trips, every truncation, every bit flip.

use super::record::{
    intact_record_within, scan_at, Kind, RecordWriter, Scanned, HEADER_BYTES, RECORD_BYTES_MAX,
};

fn two_records() -> RecordWriter {
    let mut writer = RecordWriter::new();
    writer.push(Kind::Entries, true, |buffer| {
        buffer.extend_from_slice(b"first payload")
    });
    writer.push(Kind::HardState, false, |buffer| {
        buffer.extend_from_slice(&[0, 1, 2, 0])
    });
    writer
}

#[test]
fn records_round_trip_and_end_at_zeros() {
    let writer = two_records();
    let mut segment = writer.bytes().to_vec();
    segment.extend_from_slice(&[0; 100]);
    let Scanned::Record(first) = scan_at(&segment, 0) else {
        panic!("the first record reads back")
    };
    assert_eq!(
        (first.kind, first.group_continues, first.payload),
        (Kind::Entries, true, &b"first payload"[..])
    );
    let Scanned::Record(second) = scan_at(&segment, first.end) else {
        panic!("the second record reads back")
    };
    assert_eq!(
        (second.kind, second.group_continues, second.payload),
        (Kind::HardState, false, &[0, 1, 2, 0][..])
    );
    assert_eq!(second.end, writer.len());
    assert_eq!(scan_at(&segment, second.end), Scanned::End);
    // The end of the file is an end too.
    assert_eq!(scan_at(writer.bytes(), writer.len()), Scanned::End);
}

#[test]
fn every_truncation_of_a_record_is_bad_or_the_end() {
    let writer = two_records();
    let Scanned::Record(first) = scan_at(writer.bytes(), 0) else {
        panic!("reads back")
    };
    for cut in 0..first.end {
        // Cut there, zeros after (what preallocated space leaves), or the file ends there.
        let mut zeroed = writer.bytes()[..cut].to_vec();
        zeroed.resize(writer.len(), 0);
        for bytes in [&zeroed[..], &writer.bytes()[..cut]] {
            match scan_at(bytes, 0) {
                Scanned::End => assert!(bytes.iter().all(|&byte| byte == 0), "cut at {cut}"),
                Scanned::Bad { extent_end, .. } => {
                    assert!(extent_end <= bytes.len(), "cut at {cut}");
                    assert!(bytes[extent_end..].iter().all(|&byte| byte == 0), "cut at {cut}");
                }
                Scanned::Record(record) => panic!("cut at {cut} reads as {record:?}"),
            }
        }
    }
}

#[test]
fn every_bit_flip_is_caught() {
    let writer = two_records();
    let Scanned::Record(first) = scan_at(writer.bytes(), 0) else {
        panic!("reads back")
    };
    for byte in 0..writer.len() {
        for bit in 0..8 {
            let mut bytes = writer.bytes().to_vec();
            bytes[byte] ^= 1 << bit;
            let in_first = byte < first.end;
            let checked_at = if in_first { 0 } else { first.end };
            if !in_first {
                assert!(matches!(scan_at(&bytes, 0), Scanned::Record(_)), "byte {byte}");
            }
            assert!(
                matches!(scan_at(&bytes, checked_at), Scanned::Bad { .. }),
                "a flip of bit {bit} of byte {byte} went unseen"
            );
        }
    }
}

#[test]
fn lengths_beyond_the_maximum_or_the_file_are_bad_not_allocations() {
    let mut bytes = vec![0u8; 64];
    bytes[..4].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        scan_at(&bytes, 0),
        Scanned::Bad {
            extent_end: HEADER_BYTES,
            ..
        }
    ));
    let too_long = u32::try_from(RECORD_BYTES_MAX + 1).expect("fits");
    bytes[..4].copy_from_slice(&too_long.to_le_bytes());
    assert!(matches!(
        scan_at(&bytes, 0),
        Scanned::Bad {
            extent_end: HEADER_BYTES,
            ..
        }
    ));
    bytes[..4].copy_from_slice(&1000u32.to_le_bytes());
    assert!(matches!(scan_at(&bytes, 0), Scanned::Bad { extent_end: 64, .. }));
    // An offset past the end reads as the end.
    assert_eq!(scan_at(&bytes, 1000), Scanned::End);
}

#[test]
fn an_intact_record_is_found_inside_a_claimed_extent() {
    let writer = two_records();
    let Scanned::Record(first) = scan_at(writer.bytes(), 0) else {
        panic!("reads back")
    };
    assert!(intact_record_within(writer.bytes(), 1, writer.len(), usize::MAX));
    assert!(!intact_record_within(writer.bytes(), 1, first.end, usize::MAX));
    // Out of budget: the cautious answer.
    assert!(intact_record_within(writer.bytes(), 1, writer.len(), 0));
}
