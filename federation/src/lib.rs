//! The federation: each node mirrors every other region's log, verifies all of it, and adopts
//! each newer verified state through its own log (`federation.adopt`, see
//! `vledger_domain::federation`).
//!
//! - `source`: where a region's log is read from ([`source::PeerSource`]; over HTTP, the
//!   region's node's tlog-tiles and proof reads).
//! - `view`: a region's records as the replay of its entries reads and changes them.
//! - `mirror`: the mirror of one region: a step verifies and adopts, a thread runs the steps.

pub mod mirror;
pub mod source;
pub mod view;

pub use mirror::{Mirror, MirrorStatus, Peer, StepOutcome};
pub use source::{HttpSource, PeerSource, SourceError};
