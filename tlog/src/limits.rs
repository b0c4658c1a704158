//! The bounds of the signature check's memory. Every other limit of vledger is in
//! `vledger_domain::limits`, which re-exports these two.

/// Keys remembered as having passed the whole key rule, with their decoded points (about
/// 250 B each; 16 MiB at most). When full, the set is emptied and refilled: a forgotten key is
/// only checked again.
pub const MAX_CHECKED_KEYS: usize = 65_536;
/// Keys with a table of multiples for verifying their signatures (45 KiB each; 23 MiB at
/// most). Tables go with the checked keys when that set is emptied.
pub const MAX_KEY_TABLES: usize = 512;

/// The largest tree size (number of leaves) this module handles: 2^40. Larger sizes are
/// rejected with [`TreeError::TooLarge`] or [`ProofError::TreeTooLarge`].
pub const MAX_TREE_SIZE: u64 = 1 << 40;

/// Maximum size in bytes of a signed note accepted by [`SignedNote::parse`] or produced by
/// [`NoteSigner`] (1 MiB).
pub const MAX_NOTE_BYTES: usize = 1 << 20;

/// Maximum number of signature lines in a signed note.
pub const MAX_NOTE_SIGNATURES: usize = 100;
