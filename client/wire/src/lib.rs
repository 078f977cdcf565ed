//! raftkv's wire protocol, shared by the node and the client library: the messages
//! (`message`, re-exported here), the framing both sides speak without I/O (`frame`), a
//! framed connection (`connection`), TLS on every port (`tls`), the backup file's header
//! (`backup_file`) and endpoint lists. No CLI dependency: a library user and the server
//! build only this and what it needs.

pub mod backup_file;
pub mod connection;
mod endpoint;
pub mod frame;
pub mod message;
pub mod tls;

pub use endpoint::{parse_endpoints, Endpoint, EndpointError};
pub use message::*;
