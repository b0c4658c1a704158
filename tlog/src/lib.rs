//! Transparency-log formats and proofs, with nothing of vouchers in them: ed25519 keys and the
//! signature rule, RFC 6962 Merkle trees and proofs, C2SP signed notes, checkpoints and
//! cosignatures, checkpoint-consistency evidence, RFC 8785 canonical JSON and the duplicate-key
//! check. Pure: no storage, no network, no clock.

pub mod canonical_json;
pub mod cosignature;
pub mod evidence;
pub mod fixed_base;
pub mod keys;
pub mod limits;
pub mod merkle;
pub mod note;
#[cfg(feature = "openapi")]
pub mod schema;
pub mod unique_keys;
