//! Transparency-log formats and proofs, with nothing of vouchers in them: ed25519 keys and the
//! signature rule, RFC 6962 Merkle trees and proofs, C2SP signed notes, checkpoints and
//! cosignatures, checkpoint-consistency evidence, RFC 8785 canonical JSON and the duplicate-key
//! check. Pure: no storage, no network, no clock.

/// `assert!` in debug builds and in builds with the calling crate's `self-check` feature (the
/// test suite's release builds); nothing in a production build. For the checks that compare a
/// fast path with its reference, which cost too much to run on every command in production.
#[macro_export]
macro_rules! self_check {
    ($($arg:tt)*) => {
        if cfg!(any(debug_assertions, feature = "self-check")) {
            assert!($($arg)*);
        }
    };
}

/// `assert_eq!` under the same condition as [`self_check!`].
#[macro_export]
macro_rules! self_check_eq {
    ($($arg:tt)*) => {
        if cfg!(any(debug_assertions, feature = "self-check")) {
            assert_eq!($($arg)*);
        }
    };
}

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
pub mod tiles;
pub mod unique_keys;
