//! A region's node: the RocksDB store, the record cache, the single writer with its commit
//! thread, the clock, and the reads and proofs the API serves. The imperative shell around the
//! pure state machine of `vledger-domain`, and the only crate that reads the time.

pub mod key_file;
pub mod node;
pub mod record_cache;
pub mod store;
pub mod tiles;
pub mod writer;
