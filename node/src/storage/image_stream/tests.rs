use super::*;

fn sample() -> SnapshotImage {
    SnapshotImage {
        kv: (0..300u32)
            .map(|i| {
                (
                    format!("key-{i:05}").into_bytes(),
                    vec![i as u8; (i as usize * 37) % 5000],
                )
            })
            .collect(),
        sessions: (1..4u64)
            .map(|id| {
                (
                    id,
                    SessionRecord {
                        sequence: id,
                        result: None,
                        expires_at_millis: 1000 * id,
                        timeout_millis: 1000,
                    },
                )
            })
            .collect(),
    }
}

/// Written in pieces of one size, read back in pieces of any other: the same image.
#[test]
fn an_image_reads_back_whatever_the_piece_sizes() {
    let image = sample();
    for write_piece in [1, 7, 4096, IMAGE_PIECE_BYTES] {
        let mut pieces: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut writer = ImageWriter::new(write_piece, |offset, piece| {
            pieces.push((offset, piece.to_vec()));
            Ok(())
        });
        for (key, value) in &image.kv {
            writer.pair(key, value).expect("memory");
        }
        for (id, record) in &image.sessions {
            writer.session(*id, record).expect("memory");
        }
        let total = writer.finish().expect("memory");
        let bytes: Vec<u8> = pieces.iter().flat_map(|(_, piece)| piece.clone()).collect();
        assert_eq!(bytes.len() as u64, total);
        assert!(pieces.iter().all(|(_, piece)| piece.len() <= write_piece));
        assert!(pieces
            .windows(2)
            .all(|pair| pair[0].0 + pair[0].1.len() as u64 == pair[1].0));
        assert_eq!(bytes, image.encode(), "the piece size does not change the bytes");
        for read_piece in [1, 3, 1000, bytes.len()] {
            let mut read = SnapshotImage::default();
            let mut reader = ImageReader::new();
            for piece in bytes.chunks(read_piece) {
                reader
                    .feed(piece, |item| {
                        match item {
                            ImageItem::Pair(key, value) => read.kv.push((key, value)),
                            ImageItem::Session(id, record) => read.sessions.push((id, record)),
                        }
                        Ok(())
                    })
                    .expect("a sound image");
            }
            reader.finish().expect("complete");
            assert_eq!(read, image);
        }
    }
}

/// Every single flipped byte, a cut anywhere and bytes after the end are refused.
#[test]
fn damaged_images_are_corrupt_not_panics() {
    let bytes = SnapshotImage {
        kv: vec![(b"a".to_vec(), b"1".to_vec()), (b"b".to_vec(), vec![2; 40])],
        sessions: Vec::new(),
    }
    .encode();
    for position in 0..bytes.len() {
        let mut damaged = bytes.clone();
        damaged[position] ^= 0x55;
        assert!(
            matches!(SnapshotImage::decode(&damaged), Err(StorageError::Corrupt(_))),
            "a flip at {position} went unnoticed"
        );
    }
    for cut in 0..bytes.len() {
        assert!(matches!(
            SnapshotImage::decode(&bytes[..cut]),
            Err(StorageError::Corrupt(_))
        ));
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(matches!(
        SnapshotImage::decode(&longer),
        Err(StorageError::Corrupt(_))
    ));
    let mut huge = bytes[..MAGIC.len()].to_vec();
    huge.extend_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(
        SnapshotImage::decode(&huge),
        Err(StorageError::Corrupt(_))
    ));
    assert_eq!(SnapshotImage::decode(&bytes).map(|image| image.kv.len()), Ok(2));
}
