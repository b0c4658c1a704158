//! Checking a log without trusting its node: archives (the export format), streaming
//! verification of a whole log, replay with the same state machine, the rebuild of a node's
//! state from its log, and the cosigning witness.

pub mod archive;
pub mod peer_views;
pub mod rebuild;
pub mod replay;
pub mod scratch;
pub mod verify;
pub mod witness;
