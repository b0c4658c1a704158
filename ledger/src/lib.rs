//! vledger's core: signed commands, the one state machine, the append-only log with its RFC 6962
//! Merkle tree and C2SP checkpoints, and the RocksDB store that holds them.
//!
//! `domain` is pure; `store`, `writer` and `node` are the shell that gives it disk and time.

pub mod archive;
pub mod canonical_json;
pub mod cosignature;
pub mod domain;
pub mod entry;
pub mod envelope;
pub mod evidence;
pub mod fixed_base;
pub mod keys;
pub mod limits;
pub mod merkle;
pub mod node;
pub mod note;
pub mod receipt;
pub mod record_cache;
pub mod replay;
pub mod schema;
pub mod scratch;
pub mod store;
pub mod text;
pub mod types;
pub mod unique_keys;
pub mod verify;
pub mod witness;
pub mod writer;
