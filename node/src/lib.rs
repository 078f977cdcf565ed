//! The raftkv server: a driver task owns the Raft state machine and loops over peer
//! messages, client requests and ticks; it persists each `Ready` with one sync, sends,
//! applies to the KV state machine and answers clients. The same code runs under tokio
//! in production and under madsim in simulation.

// The canaries exist for the simulation's self-test only; a build that could ship must
// never contain them.
#[cfg(all(feature = "canaries", not(madsim)))]
compile_error!("the `canaries` feature injects known bugs: it is for the madsim simulation only");

pub mod accept_loop;
pub mod admission;
pub mod assembly;
pub mod backup_images;
pub mod bootstrap;
pub mod client_listener;
pub mod client_roles;
pub mod config;
pub mod driver;
pub mod force_new_cluster;
// Entry points for the fuzz targets in fuzz/ (not an API); fjall's codecs are not built under madsim.
#[cfg(not(madsim))]
#[doc(hidden)]
pub mod fuzzing;
pub mod identity;
pub mod join;
pub mod kv;
pub mod membership;
pub mod metrics;
#[cfg(not(madsim))]
pub mod ops_http;
pub mod pod;
#[cfg(not(madsim))]
pub mod restore;
#[cfg(not(madsim))]
pub mod server;
pub mod storage;
pub mod transport;
pub mod warn_limiter;
