//! What the fuzz targets share: the byte script and the Raft cluster that `raft_step`
//! drives (see README.md). Also used to write the seed corpus (examples/seed_corpus.rs).

mod checker;
pub mod cluster;
mod disk;
mod forge;
mod machine;
pub mod script;
