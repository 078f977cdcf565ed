use super::*;
use crate::storage::memory_store::MemoryStore;
use crate::storage::{ApplyBatch, SnapshotImage, Storage};

fn store_with(pairs: usize) -> MemoryStore {
    let mut store = MemoryStore::default();
    let kv_writes = (0..pairs)
        .map(|i| (format!("key{i:05}").into_bytes(), Some(vec![i as u8; 100])))
        .collect();
    store
        .apply(ApplyBatch {
            applied_index: 5,
            kv_writes,
            session_writes: Vec::new(),
        })
        .expect("applies");
    store
}

fn wait_ready(images: &BackupImages, id: u64) -> BackupChunk {
    for _ in 0..500 {
        match images.chunk(id, 0) {
            Err(BackupError::Building { .. }) => std::thread::sleep(Duration::from_millis(10)),
            other => return other.expect("the image is built"),
        }
    }
    panic!("the image was never built");
}

const POINT: BackupPoint = BackupPoint {
    index: 5,
    term: 2,
    cluster_id: 9,
};

#[test]
fn a_save_serves_the_image_of_its_view_in_chunks_until_released() {
    let dir = tempfile::tempdir().expect("temp dir");
    let images = BackupImages::open(dir.path()).expect("opens");
    let mut store = store_with(30_000);
    let expected: SnapshotImage = store.snapshot_image().expect("image");
    let id = images
        .begin(POINT, store.image_source(5).expect("view"))
        .expect("begins");
    // A write after the view was pinned is not in the backup.
    store
        .apply(ApplyBatch {
            applied_index: 6,
            kv_writes: vec![(b"later".to_vec(), Some(b"x".to_vec()))],
            session_writes: Vec::new(),
        })
        .expect("applies");
    let first = wait_ready(&images, id);
    assert!(
        first.info.image_bytes > SNAPSHOT_CHUNK_BYTES_MAX as u64,
        "several chunks"
    );
    assert_eq!(
        (first.info.index, first.info.term, first.info.pairs),
        (5, 2, 30_000)
    );
    let mut bytes = Vec::new();
    let mut offset = 0;
    loop {
        let chunk = images.chunk(id, offset).expect("a chunk");
        assert!(chunk.data.len() <= SNAPSHOT_CHUNK_BYTES_MAX);
        if chunk.data.is_empty() {
            break;
        }
        offset += chunk.data.len() as u64;
        bytes.extend_from_slice(&chunk.data);
    }
    assert_eq!(bytes.len() as u64, first.info.image_bytes);
    assert_eq!(SnapshotImage::decode(&bytes).expect("decodes"), expected);
    images.release(id);
    assert_eq!(images.chunk(id, 0).map(drop), Err(BackupError::Unknown { id }));
    let left = fs::read_dir(dir.path().join(FOLDER)).expect("lists").count();
    assert_eq!(left, 0, "a released image is deleted");
}

#[test]
fn saves_are_bounded() {
    let dir = tempfile::tempdir().expect("temp dir");
    let images = BackupImages::open(dir.path()).expect("opens");
    let store = store_with(10);
    let ids: Vec<u64> = (0..SAVES_MAX)
        .map(|_| {
            images
                .begin(POINT, store.image_source(5).expect("view"))
                .expect("begins")
        })
        .collect();
    assert_eq!(
        images.begin(POINT, store.image_source(5).expect("view")),
        Err(BackupError::Busy)
    );
    wait_ready(&images, ids[0]);
    images.release(ids[0]);
    images
        .begin(POINT, store.image_source(5).expect("view"))
        .expect("room again after a release");
}

/// An image source that writes nothing until its gate opens.
struct GatedSource {
    gate: std::sync::mpsc::Receiver<()>,
}

impl ImageSource for GatedSource {
    fn build(self: Box<Self>) -> Result<u64, StorageError> {
        unreachable!("backups stream their image")
    }

    fn write_to(
        self: Box<Self>,
        sink: &mut dyn FnMut(&[u8]) -> Result<(), StorageError>,
    ) -> Result<u64, StorageError> {
        let _ = self.gate.recv();
        sink(b"not reached once released")?;
        Ok(0)
    }
}

/// Review finding: a save released while its image was being built freed its place at
/// once, so begin-release in a loop started builds (threads, open views, image files)
/// without bound. A cancelled build keeps its place until it stops.
#[test]
fn a_save_released_while_building_keeps_its_place_until_its_build_stops() {
    let dir = tempfile::tempdir().expect("temp dir");
    let images = BackupImages::open(dir.path()).expect("opens");
    let mut gates = Vec::new();
    for _ in 0..SAVES_MAX {
        let (open, gate) = std::sync::mpsc::channel();
        gates.push(open);
        let id = images
            .begin(POINT, Box::new(GatedSource { gate }))
            .expect("begins");
        images.release(id);
    }
    let (_, gate) = std::sync::mpsc::channel();
    assert_eq!(
        images.begin(POINT, Box::new(GatedSource { gate })),
        Err(BackupError::Busy),
        "released builds still running must count"
    );
    for gate in gates {
        gate.send(()).expect("the build waits");
    }
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    while images.saves() > 0 {
        assert!(Instant::now() < deadline, "cancelled builds did not stop");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let left = fs::read_dir(dir.path().join(FOLDER)).expect("folder").count();
    assert_eq!(left, 0, "a cancelled build leaves no file");
    let store = store_with(3);
    images
        .begin(POINT, store.image_source(5).expect("view"))
        .expect("room again once the builds stopped");
}
