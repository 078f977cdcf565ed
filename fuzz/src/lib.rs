//! What the fuzz targets share: the byte script and the Raft cluster that `raft_step`
//! drives (see README.md). Also used to write the seed corpus (examples/seed_corpus.rs).

pub mod cluster;
pub mod script;
