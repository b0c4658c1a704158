//! Actor keys and the ledger's signature rule.
//!
//! Every actor of the ledger is identified by an Ed25519 public key ([RFC 8032]).
//!
//! # The signature rule
//!
//! A signature is accepted **if and only if** all of the following hold:
//!
//! 1. the public key is exactly 32 bytes and decodes to a point on the curve;
//! 2. the public key is *canonically encoded*: decompressing it and compressing the
//!    point again yields the same 32 bytes (this refuses y ≥ p and the "negative zero"
//!    x = 0 with the sign bit set);
//! 3. the public key is *not weak*: it is not of small order (order 1, 2, 4 or 8) and it
//!    is torsion-free, i.e. it lies in the prime-order subgroup (no mixed-order keys);
//! 4. the signature is exactly 64 bytes and ed25519-dalek 2.x `verify_strict` accepts it:
//!    S is canonical (S < ℓ), R decodes to a point that is not of small order, and the
//!    encoding of `[S]B − [k]A` with `k = SHA-512(R ‖ A ‖ M) mod ℓ` equals the 32 bytes of
//!    R exactly (so R is canonically encoded too).
//!
//! Keys failing 1–3 cannot exist as a [`PublicKey`] built from outside: they are refused when
//! an actor is registered and whenever a key is decoded to verify a signature, since every way
//! of building a [`PublicKey`] from input (bytes, base64, serde) applies [`PublicKey::from_bytes`].
//!
//! # Keys the node reads back from its own state
//!
//! The torsion check costs as much as a signature verification (about 50 µs), and state
//! records (parties, vouchers, orders, ...) hold many keys, every one of which passed the whole
//! rule before the node wrote it. [`decode_stored`] runs a decoding in which serde builds
//! [`PublicKey`]s from standard base64 and a length check only. It is the one trusted path,
//! used only by [`vledger_domain::StateRead::get`] on records the node's own writer (or a replay
//! of verified entries) produced; everything arriving in a command or an envelope is decoded
//! outside it and checked in full, once.
//!
//! Because A is in the prime-order subgroup, an accepted R is in it as well, so the
//! cofactorless equation checked here and the cofactored equation `[8][S]B = [8]R + [8][k]A`
//! of RFC 8032 §5.1.7 agree on every accepted signature. Every signature accepted by this
//! rule is therefore also accepted by OpenSSL, Go's `crypto/ed25519`, libsodium, ZIP-215
//! verifiers and any other RFC 8032 verifier; the converse does not hold (this rule is
//! stricter). The test suite checks this against the C2SP/CCTV edge-case vectors.
//!
//! # How the rule is checked
//!
//! [`PublicKey::verify`] accepts exactly what `verify_strict` accepts, with less work.
//! `verify_strict` decompresses R, refuses it if it has small order, then computes
//! `R' = [S]B − [k]A` and compares the canonical encoding of R' with the 32 bytes of R. When
//! they are equal, R is that canonical encoding and decompresses to R' itself; when they are
//! not, both refuse. So the decompression only serves the small-order test, and R' has small
//! order exactly when R is one of the eight canonical encodings of small-order points (a
//! non-canonical R never equals a computed encoding). `verify` therefore refuses those eight
//! encodings, then runs ed25519-dalek's cofactorless check (the same `S < ℓ` test, the same
//! R' and the same byte comparison) with the key's point decoded once per process: two
//! square roots fewer per signature. A's small order is excluded by the key rule.
//!
//! A key that signs often gets a table of multiples of −A (see `checked_keys`), and R' is
//! then computed as `[S]B + [k](−A)` from a table of multiples of B and the key's, by
//! additions alone (`fixed_base`): the same point by another sum, so the same encoding, in
//! about half the time. Debug builds compute R' both ways on every such check. The test suite
//! compares both paths with `verify_strict` on every edge-case vector and on corrupted
//! signatures.
//!
//! [RFC 8032]: https://www.rfc-editor.org/rfc/rfc8032

use std::cell::Cell;
use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use curve25519_dalek::scalar::Scalar;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, KeypairBytes};

use crate::fixed_base::FixedBase;

/// Length in bytes of an encoded Ed25519 public key.
pub const PUBLIC_KEY_LEN: usize = 32;
/// Length in bytes of an Ed25519 signature (R ‖ S).
pub const SIGNATURE_LEN: usize = 64;
/// Length in bytes of an Ed25519 secret key seed.
pub const SECRET_KEY_LEN: usize = 32;

/// The signature rule, as text suitable for the format documentation.
pub const SIGNATURE_RULE: &str = "\
A signature is accepted if and only if: (1) the public key is exactly 32 bytes and decodes \
to a point on the Ed25519 curve; (2) the public key is canonically encoded: decompressing it \
and compressing the point again gives the same 32 bytes; (3) the public key is not weak: it \
is not of small order (order 1, 2, 4 or 8) and it is torsion-free (it lies in the prime-order \
subgroup, so mixed-order keys are refused); (4) the signature is exactly 64 bytes and \
ed25519-dalek 2.x `verify_strict` accepts it: S < L, R is not of small order, and the \
encoding of [S]B - [k]A with k = SHA-512(R || A || M) mod L is byte-for-byte equal to R. \
Keys failing (1)-(3) are refused at registration and at verification. Every signature this \
rule accepts is also accepted by OpenSSL, Go crypto/ed25519 and any RFC 8032 verifier \
(cofactored or cofactorless).";

/// Why a byte string is not an acceptable actor public key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The text is not valid standard (RFC 4648 §4, padded) base64.
    #[error("public key is not valid standard base64")]
    BadBase64,
    /// The key is not exactly [`PUBLIC_KEY_LEN`] bytes long.
    #[error("public key must be {PUBLIC_KEY_LEN} bytes, got {len}")]
    WrongLength {
        /// The length that was given.
        len: usize,
    },
    /// The bytes do not decode to a point on the Ed25519 curve.
    #[error("public key is not a point on the Ed25519 curve")]
    NotOnCurve,
    /// The point is on the curve but its encoding is not the canonical one.
    #[error("public key is not canonically encoded")]
    NonCanonical,
    /// The point has small order (1, 2, 4 or 8): such a key "verifies" forged signatures.
    #[error("public key is a small-order point")]
    SmallOrder,
    /// The point has a small-order component (it is not in the prime-order subgroup).
    #[error("public key is a mixed-order point (has a torsion component)")]
    MixedOrder,
}

/// Why a signature is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The text is not valid standard (RFC 4648 §4, padded) base64.
    #[error("signature is not valid standard base64")]
    BadBase64,
    /// The signature is not exactly [`SIGNATURE_LEN`] bytes long.
    #[error("signature must be {SIGNATURE_LEN} bytes, got {len}")]
    WrongLength {
        /// The length that was given.
        len: usize,
    },
    /// The signature does not satisfy the signature rule for this key and message.
    #[error("signature is invalid")]
    Invalid,
}

/// Why a private key file could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyFileError {
    /// The input is not an unencrypted PKCS#8 PEM ("-----BEGIN PRIVATE KEY-----") Ed25519
    /// private key, or its embedded public key does not match the private key.
    #[error("not a valid PKCS#8 PEM Ed25519 private key: {0}")]
    Invalid(String),
}

/// An actor's Ed25519 public key that satisfies the key part of the signature rule
/// (on the curve, canonically encoded, not small-order, torsion-free).
///
/// It can only be constructed through [`PublicKey::from_bytes`] (or the base64 / serde
/// paths built on it) or from a [`SigningKey`], so every value of this type is valid.
/// `Debug` and `Display` print standard base64; serde uses a standard base64 string.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey([u8; PUBLIC_KEY_LEN]);

impl PublicKey {
    /// Parses a 32-byte encoded public key, applying the whole key rule.
    ///
    /// Errors, in the order checked: [`KeyError::WrongLength`], [`KeyError::NotOnCurve`],
    /// [`KeyError::NonCanonical`], [`KeyError::SmallOrder`], [`KeyError::MixedOrder`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let arr: [u8; PUBLIC_KEY_LEN] = bytes
            .try_into()
            .map_err(|_| KeyError::WrongLength { len: bytes.len() })?;
        if !checked_keys::contains(&arr) {
            let decoded = check_key(&arr)?;
            checked_keys::insert(arr, decoded);
        }
        Ok(PublicKey(arr))
    }

    /// The 32-byte encoding of the key.
    pub fn as_bytes(&self) -> &[u8; PUBLIC_KEY_LEN] {
        &self.0
    }

    /// The key as standard, padded base64 (44 characters).
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// Parses a key from standard, padded base64 and applies the whole key rule.
    pub fn from_base64(s: &str) -> Result<Self, KeyError> {
        let bytes = STANDARD.decode(s).map_err(|_| KeyError::BadBase64)?;
        Self::from_bytes(&bytes)
    }

    /// Verifies `signature` over `message` under the signature rule (see the module
    /// documentation). The key part of the rule was already applied when this
    /// `PublicKey` was built; a key failing it cannot exist as a `PublicKey`.
    ///
    /// Accepts exactly what ed25519-dalek's `verify_strict` accepts, with less work (see "How
    /// the rule is checked" in the module documentation).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), SignatureError> {
        let signature = signature_not_small_order(signature)?;
        let checked = checked_keys::get(&self.0);
        let accepted = match checked.as_deref().and_then(checked_keys::CheckedKey::table) {
            Some(table) => {
                let accepted = cofactorless_with_table(table, &self.0, message, signature);
                crate::self_check_eq!(
                    accepted,
                    cofactorless_with_dalek(
                        checked.as_ref().map(|c| c.decoded),
                        &self.0,
                        message,
                        signature
                    ),
                    "the key's table and ed25519-dalek disagree"
                );
                accepted
            }
            None => {
                let accepted = cofactorless_with_dalek(
                    checked.as_ref().map(|c| c.decoded),
                    &self.0,
                    message,
                    signature,
                );
                if let (true, Some(checked)) = (accepted, &checked) {
                    checked.count_accepted();
                }
                accepted
            }
        };
        if accepted {
            Ok(())
        } else {
            Err(SignatureError::Invalid)
        }
    }

    /// [`PublicKey::verify`] as it runs once the key has a table of multiples, with a table
    /// made for this call, for tests that compare it with `verify_strict`.
    #[doc(hidden)]
    pub fn verify_with_new_table(
        &self,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), SignatureError> {
        let signature = signature_not_small_order(signature)?;
        let point = ed25519_dalek::VerifyingKey::from_bytes(&self.0)
            .map_err(|_| SignatureError::Invalid)?
            .to_edwards();
        let table = FixedBase::for_key(&-point);
        if cofactorless_with_table(&table, &self.0, message, signature) {
            Ok(())
        } else {
            Err(SignatureError::Invalid)
        }
    }

    /// The signature rule as ed25519-dalek's `verify_strict` states it, for tests that compare
    /// [`PublicKey::verify`] with it.
    #[doc(hidden)]
    pub fn verify_with_dalek_strict(
        &self,
        message: &[u8],
        signature: &[u8; SIGNATURE_LEN],
    ) -> Result<(), SignatureError> {
        let vk = ed25519_dalek::VerifyingKey::from_bytes(&self.0)
            .map_err(|_| SignatureError::Invalid)?;
        vk.verify_strict(message, &ed25519_dalek::Signature::from_bytes(signature))
            .map_err(|_| SignatureError::Invalid)
    }

    /// Like [`PublicKey::verify`], with the signature given as standard, padded base64.
    pub fn verify_base64(&self, message: &[u8], signature_b64: &str) -> Result<(), SignatureError> {
        let sig = signature_from_base64(signature_b64)?;
        self.verify(message, &sig)
    }
}

/// The length check of the rule and its refusal of a small-order R (see "How the rule is
/// checked" in the module documentation).
fn signature_not_small_order(signature: &[u8]) -> Result<&[u8; SIGNATURE_LEN], SignatureError> {
    let signature: &[u8; SIGNATURE_LEN] =
        signature
            .try_into()
            .map_err(|_| SignatureError::WrongLength {
                len: signature.len(),
            })?;
    if SMALL_ORDER_ENCODINGS
        .iter()
        .any(|r| signature.starts_with(r))
    {
        return Err(SignatureError::Invalid);
    }
    Ok(signature)
}

/// ed25519-dalek's cofactorless check (`S < ℓ` and the encoding of `[S]B − [k]A` equal to R),
/// with the key's decoded point when it is remembered.
fn cofactorless_with_dalek(
    decoded: Option<ed25519_dalek::VerifyingKey>,
    key: &[u8; PUBLIC_KEY_LEN],
    message: &[u8],
    signature: &[u8; SIGNATURE_LEN],
) -> bool {
    use ed25519_dalek::Verifier as _;
    // Every `PublicKey` passed the key rule when it was constructed (or was read back from the
    // node's own state, whose keys all did), so only decoding is left to do.
    let Some(vk) = decoded.or_else(|| ed25519_dalek::VerifyingKey::from_bytes(key).ok()) else {
        return false;
    };
    vk.verify(message, &ed25519_dalek::Signature::from_bytes(signature))
        .is_ok()
}

/// The table of multiples of B, made once per process.
fn basepoint_table() -> &'static FixedBase {
    static TABLE: std::sync::OnceLock<FixedBase> = std::sync::OnceLock::new();
    TABLE.get_or_init(FixedBase::for_basepoint)
}

/// The same check as [`cofactorless_with_dalek`], computing `[S]B + [k](−A)` from two tables of
/// multiples: B's and the key's own of −A. The point is the same, so its encoding is the same
/// 32 bytes.
fn cofactorless_with_table(
    minus_a: &FixedBase,
    key: &[u8; PUBLIC_KEY_LEN],
    message: &[u8],
    signature: &[u8; SIGNATURE_LEN],
) -> bool {
    use sha2::Digest as _;
    let (r, s) = signature.split_at(32);
    let s: [u8; 32] = s.try_into().expect("64 = 32 + 32");
    let Some(s) = Option::<Scalar>::from(Scalar::from_canonical_bytes(s)) else {
        return false;
    };
    let challenge = sha2::Sha512::new()
        .chain_update(r)
        .chain_update(key)
        .chain_update(message)
        .finalize();
    let k = Scalar::from_bytes_mod_order_wide(&challenge.into());
    let recomputed = basepoint_table().mul(&s) + minus_a.mul(&k);
    recomputed.compress().as_bytes() == r
}

/// The canonical encodings of the eight points of small order (the 8-torsion subgroup): an R
/// equal to one of them is refused, as `verify_strict` refuses a small-order R. A test derives
/// the list: each decodes to a distinct small-order point and is canonical, and there are
/// exactly eight such points.
const SMALL_ORDER_ENCODINGS: [[u8; 32]; 8] = [
    // order 1: the identity (0, 1)
    hex32("0100000000000000000000000000000000000000000000000000000000000000"),
    // order 2: (0, -1)
    hex32("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
    // order 4: (±sqrt(-1), 0)
    hex32("0000000000000000000000000000000000000000000000000000000000000000"),
    hex32("0000000000000000000000000000000000000000000000000000000000000080"),
    // order 8
    hex32("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"),
    hex32("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa"),
    hex32("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"),
    hex32("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85"),
];

const fn hex32(text: &str) -> [u8; 32] {
    const fn nibble(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => panic!("lower-case hex only"),
        }
    }
    let text = text.as_bytes();
    assert!(text.len() == 64);
    let mut out = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        out[i] = nibble(text[2 * i]) << 4 | nibble(text[2 * i + 1]);
        i += 1;
    }
    out
}

/// The keys that passed the whole key rule in this process, with their decoded points, so that
/// a signer's key is checked once, not on every envelope it signs, and its point is not
/// decompressed again for every signature. The rule is a pure function of the 32 bytes, so
/// remembering its positive answers changes nothing that is accepted; refused keys are never
/// remembered. Bounded by [`crate::limits::MAX_CHECKED_KEYS`].
///
/// A key under which [`TABLE_AFTER_SIGNATURES`] signatures were accepted also gets a table of
/// multiples of −A (see [`crate::fixed_base`]): `[k](−A)` then costs about 50 additions and 10
/// doublings instead of about 250 doublings and the additions between them. A table takes
/// 45 KiB and about 0.1 ms (some 5 of the verifications it shortens) to build, so keys that
/// sign once or twice (most enterprises) do not get one, and those that sign often
/// (governments, agencies, escrow providers, the node itself) do; at most
/// [`crate::limits::MAX_KEY_TABLES`] exist at a time. Refused signatures do not count, so
/// garbage sent under other people's keys cannot use the tables up.
mod checked_keys {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    use std::sync::{Arc, OnceLock, RwLock};

    use crate::fixed_base::FixedBase;

    use super::PUBLIC_KEY_LEN;
    use crate::limits::{MAX_CHECKED_KEYS, MAX_KEY_TABLES};

    /// Signatures accepted under a key before it gets its table of multiples.
    pub(crate) const TABLE_AFTER_SIGNATURES: u64 = 16;

    pub(crate) struct CheckedKey {
        pub(super) decoded: ed25519_dalek::VerifyingKey,
        signatures: AtomicU64,
        table: OnceLock<FixedBase>,
    }

    impl CheckedKey {
        /// The key's table of multiples of −A, if it has one.
        pub(super) fn table(&self) -> Option<&FixedBase> {
            self.table.get()
        }

        /// Counts a signature accepted without the table; the one that makes
        /// [`TABLE_AFTER_SIGNATURES`] builds it, if fewer than [`MAX_KEY_TABLES`] exist.
        pub(super) fn count_accepted(&self) {
            let accepted = self.signatures.fetch_add(1, Ordering::Relaxed) + 1;
            if accepted == TABLE_AFTER_SIGNATURES && take_table_slot(&TABLES, MAX_KEY_TABLES) {
                let minus_a = -self.decoded.to_edwards();
                self.table.get_or_init(|| FixedBase::for_key(&minus_a));
            }
        }

        #[cfg(test)]
        pub(crate) fn has_table(&self) -> bool {
            self.table.get().is_some()
        }
    }

    type Checked = HashMap<[u8; PUBLIC_KEY_LEN], Arc<CheckedKey>>;

    /// Tables built since the map was last emptied.
    static TABLES: AtomicUsize = AtomicUsize::new(0);

    /// Counts one more table in `built` unless `limit` are built already.
    pub(crate) fn take_table_slot(built: &AtomicUsize, limit: usize) -> bool {
        built
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < limit).then_some(n + 1)
            })
            .is_ok()
    }

    fn map() -> &'static RwLock<Checked> {
        static MAP: OnceLock<RwLock<Checked>> = OnceLock::new();
        MAP.get_or_init(|| RwLock::new(HashMap::new()))
    }

    pub(super) fn contains(key: &[u8; PUBLIC_KEY_LEN]) -> bool {
        map().read().is_ok_and(|keys| keys.contains_key(key))
    }

    /// A key that passed the whole rule, if it is remembered.
    pub(crate) fn get(key: &[u8; PUBLIC_KEY_LEN]) -> Option<Arc<CheckedKey>> {
        map().read().ok()?.get(key).cloned()
    }

    /// Only for a key that has just passed the whole rule.
    pub(super) fn insert(key: [u8; PUBLIC_KEY_LEN], decoded: ed25519_dalek::VerifyingKey) {
        if let Ok(mut keys) = map().write() {
            if keys.len() >= MAX_CHECKED_KEYS {
                keys.clear();
                TABLES.store(0, Ordering::Relaxed);
            }
            keys.entry(key).or_insert_with(|| {
                Arc::new(CheckedKey {
                    decoded,
                    signatures: AtomicU64::new(0),
                    table: OnceLock::new(),
                })
            });
        }
    }
}

thread_local! {
    /// True while [`decode_stored`] runs on this thread.
    static DECODING_STORED: Cell<bool> = const { Cell::new(false) };
}

/// Runs `decode` (a serde decoding of a record the node itself wrote) with the key rule's curve
/// checks skipped for every [`PublicKey`] it builds: only base64 and the length are checked.
///
/// Only for records read back from the node's own state, whose keys all passed the whole rule
/// before they were written. Never for bytes that came from outside (commands, envelopes,
/// mirrored entries, files): those go through the ordinary, checking serde path.
pub fn decode_stored<T>(decode: impl FnOnce() -> T) -> T {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            DECODING_STORED.with(|flag| flag.set(self.0));
        }
    }
    let _restore = Restore(DECODING_STORED.with(|flag| flag.replace(true)));
    decode()
}

thread_local! {
    /// How many times this thread ran the whole key rule (tests, here and in the crates above,
    /// count the checks of a path; one increment beside a check of some microseconds).
    static FULL_KEY_CHECKS: Cell<u64> = const { Cell::new(0) };
}

/// The number of whole-rule key checks this thread has made so far.
#[doc(hidden)]
pub fn full_key_checks() -> u64 {
    FULL_KEY_CHECKS.with(Cell::get)
}

/// Applies the key rule and returns the decoded key.
fn check_key(bytes: &[u8; PUBLIC_KEY_LEN]) -> Result<ed25519_dalek::VerifyingKey, KeyError> {
    FULL_KEY_CHECKS.with(|n| n.set(n.get() + 1));
    let vk = ed25519_dalek::VerifyingKey::from_bytes(bytes).map_err(|_| KeyError::NotOnCurve)?;
    let point = vk.to_edwards();
    if point.compress().to_bytes() != *bytes {
        return Err(KeyError::NonCanonical);
    }
    if point.is_small_order() {
        return Err(KeyError::SmallOrder);
    }
    if !point.is_torsion_free() {
        return Err(KeyError::MixedOrder);
    }
    Ok(vk)
}

/// Decodes a standard, padded base64 signature and checks its length.
pub fn signature_from_base64(s: &str) -> Result<[u8; SIGNATURE_LEN], SignatureError> {
    let bytes = STANDARD.decode(s).map_err(|_| SignatureError::BadBase64)?;
    bytes
        .as_slice()
        .try_into()
        .map_err(|_| SignatureError::WrongLength { len: bytes.len() })
}

/// Encodes a signature as standard, padded base64 (88 characters).
pub fn signature_to_base64(signature: &[u8; SIGNATURE_LEN]) -> String {
    STANDARD.encode(signature)
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

impl TryFrom<&str> for PublicKey {
    type Error = KeyError;

    /// Parses standard, padded base64 (same as [`PublicKey::from_base64`]).
    fn try_from(s: &str) -> Result<Self, KeyError> {
        Self::from_base64(s)
    }
}

impl TryFrom<&[u8]> for PublicKey {
    type Error = KeyError;

    /// Same as [`PublicKey::from_bytes`].
    fn try_from(bytes: &[u8]) -> Result<Self, KeyError> {
        Self::from_bytes(bytes)
    }
}

impl FromStr for PublicKey {
    type Err = KeyError;

    /// Parses standard, padded base64 (same as [`PublicKey::from_base64`]).
    fn from_str(s: &str) -> Result<Self, KeyError> {
        Self::from_base64(s)
    }
}

/// Text formats (JSON: commands, events, API answers) carry a key as standard base64; binary
/// formats (the state records) as its 32 bytes.
impl serde::Serialize for PublicKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&self.to_base64())
        } else {
            serializer.serialize_bytes(&self.0)
        }
    }
}

impl<'de> serde::Deserialize<'de> for PublicKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let stored = DECODING_STORED.with(Cell::get);
        if !deserializer.is_human_readable() {
            let bytes = deserializer.deserialize_bytes(KeyBytes)?;
            if stored {
                // A record the node wrote: this key passed the whole rule before it was stored.
                return Ok(PublicKey(bytes));
            }
            return Self::from_bytes(&bytes).map_err(serde::de::Error::custom);
        }
        let s = String::deserialize(deserializer)?;
        if stored {
            let bytes = STANDARD
                .decode(s.as_bytes())
                .map_err(|_| serde::de::Error::custom(KeyError::BadBase64))?;
            let arr: [u8; PUBLIC_KEY_LEN] = bytes.as_slice().try_into().map_err(|_| {
                serde::de::Error::custom(KeyError::WrongLength { len: bytes.len() })
            })?;
            return Ok(PublicKey(arr));
        }
        Self::from_base64(&s).map_err(serde::de::Error::custom)
    }
}

/// Reads a key's 32 bytes from a binary format.
struct KeyBytes;

impl serde::de::Visitor<'_> for KeyBytes {
    type Value = [u8; PUBLIC_KEY_LEN];

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "the {PUBLIC_KEY_LEN} bytes of an Ed25519 public key")
    }

    fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<Self::Value, E> {
        bytes
            .try_into()
            .map_err(|_| E::custom(KeyError::WrongLength { len: bytes.len() }))
    }
}

/// An actor's Ed25519 signing key.
///
/// `Debug` prints only the public key; the secret is never printed. The secret is zeroed
/// when the value is dropped.
#[derive(Clone)]
pub struct SigningKey(ed25519_dalek::SigningKey);

impl SigningKey {
    /// Generates a fresh key from a cryptographically secure random number generator, e.g.
    /// `SigningKey::generate(&mut rand::rngs::OsRng)`.
    pub fn generate<R: rand_core::CryptoRngCore + ?Sized>(rng: &mut R) -> Self {
        SigningKey(ed25519_dalek::SigningKey::generate(rng))
    }

    /// Builds the key from its 32-byte RFC 8032 secret key (the seed), as
    /// `ed25519_dalek::SigningKey::from_bytes` does.
    pub fn from_bytes(seed: &[u8; SECRET_KEY_LEN]) -> Self {
        SigningKey(ed25519_dalek::SigningKey::from_bytes(seed))
    }

    /// Loads an unencrypted PKCS#8 PEM private key ("-----BEGIN PRIVATE KEY-----"), as
    /// written by [`SigningKey::to_pkcs8_pem`], `openssl genpkey -algorithm ed25519` or
    /// Python `cryptography`. Both the RFC 8410 v1 form and the v2 form carrying the public
    /// key are accepted; in the latter case the public key must match the private key.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, KeyFileError> {
        ed25519_dalek::SigningKey::from_pkcs8_pem(pem)
            .map(SigningKey)
            .map_err(|e| KeyFileError::Invalid(e.to_string()))
    }

    /// Writes the key as unencrypted PKCS#8 PEM ("-----BEGIN PRIVATE KEY-----", LF line
    /// endings) in the RFC 8410 v1 form, which OpenSSL, Python `cryptography` and Go load.
    pub fn to_pkcs8_pem(&self) -> String {
        let bytes = KeypairBytes {
            secret_key: self.0.to_bytes(),
            public_key: None,
        };
        let pem = bytes
            .to_pkcs8_pem(LineEnding::LF)
            .expect("encoding a 32-byte Ed25519 key as PKCS#8 cannot fail");
        pem.as_str().to_owned()
    }

    /// The public key of this signing key.
    pub fn public_key(&self) -> PublicKey {
        // [s]B with a clamped s is always canonical, torsion-free and not small-order.
        let bytes = self.0.verifying_key().to_bytes();
        crate::self_check!(check_key(&bytes).is_ok());
        PublicKey(bytes)
    }

    /// Signs `message` (pure Ed25519, RFC 8032 §5.1.6).
    pub fn sign(&self, message: &[u8]) -> [u8; SIGNATURE_LEN] {
        use ed25519_dalek::Signer as _;
        self.0.sign(message).to_bytes()
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("public_key", &self.public_key())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh() -> SigningKey {
        SigningKey::generate(&mut rand::rngs::OsRng)
    }

    fn unhex32(s: &str) -> [u8; 32] {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    // RFC 8032 §7.1, TEST 2.
    const RFC_SEED: &str = "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb";
    const RFC_PK: &str = "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c";
    const RFC_SIG: &str = "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da\
                           085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00";

    /// The list `verify` refuses as R is exactly the canonical encodings of the eight
    /// small-order points: each decodes to a point of small order and is canonical, and the
    /// eight are distinct (the 8-torsion subgroup has eight points).
    #[test]
    fn small_order_encodings_are_the_eight_torsion_points() {
        let mut seen = std::collections::HashSet::new();
        for encoding in SMALL_ORDER_ENCODINGS {
            let point = ed25519_dalek::VerifyingKey::from_bytes(&encoding)
                .expect("decodes")
                .to_edwards();
            assert!(point.is_small_order(), "{}", hex::encode(encoding));
            assert_eq!(point.compress().to_bytes(), encoding, "canonical");
            assert!(seen.insert(point.compress().to_bytes()));
        }
        assert_eq!(seen.len(), 8);
    }

    #[test]
    fn rfc8032_test2() {
        let sk = SigningKey::from_bytes(&unhex32(RFC_SEED));
        let pk = sk.public_key();
        assert_eq!(hex::encode(pk.as_bytes()), RFC_PK);
        let sig = sk.sign(&[0x72]);
        assert_eq!(hex::encode(sig), RFC_SIG);
        pk.verify(&[0x72], &sig).unwrap();
        assert_eq!(PublicKey::from_bytes(&unhex32(RFC_PK)).unwrap(), pk);
    }

    #[test]
    fn pkcs8_pem_round_trip() {
        let sk = fresh();
        let pem = sk.to_pkcs8_pem();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{pem}");
        assert!(pem.ends_with("-----END PRIVATE KEY-----\n"), "{pem}");
        let back = SigningKey::from_pkcs8_pem(&pem).unwrap();
        assert_eq!(back.public_key(), sk.public_key());
        assert_eq!(back.sign(b"m"), sk.sign(b"m"));
        assert_eq!(back.to_pkcs8_pem(), pem);
    }

    #[test]
    fn pkcs8_pem_known_openssl_key() {
        // RFC 8410 §10.3 example private key (v1 form, as written by OpenSSL).
        let pem = "-----BEGIN PRIVATE KEY-----\n\
                   MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n\
                   -----END PRIVATE KEY-----\n";
        let sk = SigningKey::from_pkcs8_pem(pem).unwrap();
        assert_eq!(
            hex::encode(sk.0.to_bytes()),
            "d4ee72dbf913584ad5b6d8f1f769f8ad3afe7c28cbf1d4fbe097a88f44755842"
        );
        assert_eq!(sk.to_pkcs8_pem(), pem);
    }

    #[test]
    fn pkcs8_pem_rejects_garbage() {
        assert!(matches!(
            SigningKey::from_pkcs8_pem("not a key"),
            Err(KeyFileError::Invalid(_))
        ));
        let pem = fresh().to_pkcs8_pem().replace("PRIVATE KEY", "PUBLIC KEY");
        assert!(SigningKey::from_pkcs8_pem(&pem).is_err());
    }

    #[test]
    fn debug_does_not_leak_secret() {
        let seed = [7u8; 32];
        let sk = SigningKey::from_bytes(&seed);
        let dbg = format!("{sk:?}");
        assert!(dbg.contains(&sk.public_key().to_base64()), "{dbg}");
        assert!(!dbg.contains(&hex::encode(seed)), "{dbg}");
        assert!(!dbg.contains(&STANDARD.encode(seed)), "{dbg}");
        assert!(!dbg.contains("7, 7"), "{dbg}");
    }

    #[test]
    fn bit_flips_fail() {
        let sk = fresh();
        let pk = sk.public_key();
        let msg = b"voucher 42 transferred".to_vec();
        let sig = sk.sign(&msg);
        pk.verify(&msg, &sig).unwrap();

        for i in 0..msg.len() * 8 {
            let mut m = msg.clone();
            m[i / 8] ^= 1 << (i % 8);
            assert_eq!(
                pk.verify(&m, &sig),
                Err(SignatureError::Invalid),
                "msg bit {i}"
            );
        }
        for i in 0..SIGNATURE_LEN * 8 {
            let mut s = sig;
            s[i / 8] ^= 1 << (i % 8);
            assert_eq!(
                pk.verify(&msg, &s),
                Err(SignatureError::Invalid),
                "sig bit {i}"
            );
        }
        for i in 0..PUBLIC_KEY_LEN * 8 {
            let mut k = *pk.as_bytes();
            k[i / 8] ^= 1 << (i % 8);
            // The flipped key is either refused outright or does not verify.
            if let Ok(other) = PublicKey::from_bytes(&k) {
                assert_eq!(
                    other.verify(&msg, &sig),
                    Err(SignatureError::Invalid),
                    "key bit {i}"
                );
            }
        }
        assert_eq!(
            pk.verify(&msg, &sig[..63]),
            Err(SignatureError::WrongLength { len: 63 })
        );
    }

    #[test]
    fn base64_and_serde() {
        let pk = fresh().public_key();
        let b64 = pk.to_base64();
        assert_eq!(b64.len(), 44);
        assert_eq!(PublicKey::from_base64(&b64).unwrap(), pk);
        assert_eq!(PublicKey::try_from(b64.as_str()).unwrap(), pk);
        assert_eq!(b64.parse::<PublicKey>().unwrap(), pk);
        assert_eq!(format!("{pk}"), b64);
        assert_eq!(format!("{pk:?}"), b64);
        let json = serde_json::to_string(&pk).unwrap();
        assert_eq!(json, format!("\"{b64}\""));
        assert_eq!(serde_json::from_str::<PublicKey>(&json).unwrap(), pk);
        // Serde applies the key rule too.
        let weak = format!("\"{}\"", STANDARD.encode([0u8; 32]));
        assert!(serde_json::from_str::<PublicKey>(&weak).is_err());

        let sk = fresh();
        let sig = sk.sign(b"x");
        let sig_b64 = signature_to_base64(&sig);
        assert_eq!(signature_from_base64(&sig_b64).unwrap(), sig);
        sk.public_key().verify_base64(b"x", &sig_b64).unwrap();
        assert_eq!(
            sk.public_key().verify_base64(b"x", "%%%"),
            Err(SignatureError::BadBase64)
        );
        assert_eq!(
            signature_from_base64(&STANDARD.encode([1u8; 63])),
            Err(SignatureError::WrongLength { len: 63 })
        );
    }

    #[test]
    fn a_key_that_passed_is_not_checked_again_and_a_refused_one_always_is() {
        let good = fresh().public_key();
        let before = full_key_checks();
        for _ in 0..3 {
            assert_eq!(PublicKey::from_bytes(good.as_bytes()), Ok(good));
        }
        assert_eq!(full_key_checks() - before, 1);
        let mixed = unhex32(MIXED_ORDER_KEY);
        let before = full_key_checks();
        for _ in 0..3 {
            assert_eq!(PublicKey::from_bytes(&mixed), Err(KeyError::MixedOrder));
        }
        assert_eq!(full_key_checks() - before, 3);
    }

    #[test]
    fn stored_records_skip_the_curve_checks_and_nothing_else_does() {
        #[derive(serde::Deserialize)]
        struct Record {
            keys: Vec<PublicKey>,
        }
        let good = fresh().public_key();
        let mixed = STANDARD.encode(unhex32(MIXED_ORDER_KEY));
        let json = format!(r#"{{"keys":["{good}","{mixed}"]}}"#);

        // From outside, the whole rule applies: the mixed-order key is refused.
        assert!(serde_json::from_str::<Record>(&json).is_err());
        // Read back from the node's own state, keys are taken as stored, without the
        // (costly) curve checks.
        let before = full_key_checks();
        let record: Record = decode_stored(|| serde_json::from_str(&json)).unwrap();
        assert_eq!(full_key_checks(), before);
        assert_eq!(record.keys[0], good);
        assert_eq!(record.keys[1].to_base64(), mixed);
        // Base64 and length are still checked.
        let short = format!(r#"{{"keys":["{}"]}}"#, STANDARD.encode([9u8; 31]));
        assert!(decode_stored(|| serde_json::from_str::<Record>(&short)).is_err());
        assert!(decode_stored(|| serde_json::from_str::<Record>(r#"{"keys":["%%"]}"#)).is_err());
        // The trusted decoding ends with its scope, also after an error or a panic.
        assert!(serde_json::from_str::<Record>(&json).is_err());
        let _ = std::panic::catch_unwind(|| decode_stored(|| panic!("decoding failed")));
        assert!(serde_json::from_str::<Record>(&json).is_err());
        // Nested scopes restore the outer state.
        decode_stored(|| {
            decode_stored(|| ());
            assert!(serde_json::from_str::<Record>(&json).is_ok());
        });
        assert!(serde_json::from_str::<Record>(&json).is_err());
    }

    #[test]
    fn a_key_that_signs_often_gets_a_table_and_its_signatures_check_the_same() {
        let signer = fresh();
        let key = PublicKey::from_bytes(signer.public_key().as_bytes()).expect("a valid key");
        let message = b"voucher.issue, program bench-rs";
        let signature = signer.sign(message);
        let checked = checked_keys::get(key.as_bytes()).expect("remembered when built");
        let mut refused = signature;
        refused[40] ^= 1;
        for _ in 0..2 * checked_keys::TABLE_AFTER_SIGNATURES {
            assert_eq!(key.verify(message, &refused), Err(SignatureError::Invalid));
        }
        assert!(!checked.has_table(), "refused signatures do not count");
        for _ in 1..checked_keys::TABLE_AFTER_SIGNATURES {
            assert_eq!(key.verify(message, &signature), Ok(()));
        }
        assert!(!checked.has_table());
        assert_eq!(key.verify(message, &signature), Ok(()));
        assert!(checked.has_table());
        // With the table: the same answers as verify_strict, for the signature, every one-bit
        // change of it, and a changed message.
        assert_eq!(key.verify(message, &signature), Ok(()));
        for bit in 0..SIGNATURE_LEN * 8 {
            let mut bad = signature;
            bad[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(
                key.verify(message, &bad),
                Err(SignatureError::Invalid),
                "bit {bit}"
            );
            assert!(
                key.verify_with_dalek_strict(message, &bad).is_err(),
                "bit {bit}"
            );
        }
        assert_eq!(
            key.verify(b"voucher.issue, program bench-rt", &signature),
            Err(SignatureError::Invalid)
        );
        // Another key's signature over the same message is not this key's.
        assert_eq!(
            key.verify(message, &fresh().sign(message)),
            Err(SignatureError::Invalid)
        );
    }

    #[test]
    fn tables_are_bounded() {
        let built = std::sync::atomic::AtomicUsize::new(0);
        assert!(checked_keys::take_table_slot(&built, 2));
        assert!(checked_keys::take_table_slot(&built, 2));
        assert!(!checked_keys::take_table_slot(&built, 2));
        assert_eq!(built.into_inner(), 2);
    }

    // A key of the prime-order subgroup plus the order-2 point (0, -1): a mixed-order key.
    // Computed as RFC 8032 TEST 2's public key + (0, -1).
    const MIXED_ORDER_KEY: &str =
        "b0bfe83c17bc76a56d48f558b2e481436367d330d13b69733f32aa0ed50b99f3";

    #[test]
    fn each_key_error_variant() {
        // BadBase64
        assert_eq!(
            PublicKey::from_base64("not base64!"),
            Err(KeyError::BadBase64)
        );
        // Unpadded base64 is refused as well.
        let unpadded = STANDARD
            .encode(unhex32(RFC_PK))
            .trim_end_matches('=')
            .to_owned();
        assert_eq!(PublicKey::from_base64(&unpadded), Err(KeyError::BadBase64));
        // WrongLength
        assert_eq!(
            PublicKey::from_bytes(&[1u8; 31]),
            Err(KeyError::WrongLength { len: 31 })
        );
        assert_eq!(
            PublicKey::from_base64(&STANDARD.encode([1u8; 33])),
            Err(KeyError::WrongLength { len: 33 })
        );
        // NotOnCurve: y = 2 has no x with -x² + y² = 1 + d·x²·y².
        let mut y2 = [0u8; 32];
        y2[0] = 2;
        assert_eq!(PublicKey::from_bytes(&y2), Err(KeyError::NotOnCurve));
        // NonCanonical: y = p (≡ 0), an encoding of the order-4 point (√-1, 0).
        let y_p = unhex32("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f");
        assert_eq!(PublicKey::from_bytes(&y_p), Err(KeyError::NonCanonical));
        // NonCanonical: the identity (0, 1) with the sign bit of x set ("negative zero").
        let neg_zero = unhex32("0100000000000000000000000000000000000000000000000000000000000080");
        assert_eq!(
            PublicKey::from_bytes(&neg_zero),
            Err(KeyError::NonCanonical)
        );
        // SmallOrder: the identity, the order-2 point (0, -1) and an order-4 point (y = 0).
        let identity = unhex32("0100000000000000000000000000000000000000000000000000000000000000");
        let order2 = unhex32("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f");
        assert_eq!(PublicKey::from_bytes(&identity), Err(KeyError::SmallOrder));
        assert_eq!(PublicKey::from_bytes(&order2), Err(KeyError::SmallOrder));
        assert_eq!(PublicKey::from_bytes(&[0u8; 32]), Err(KeyError::SmallOrder));
        // MixedOrder
        let mixed = unhex32(MIXED_ORDER_KEY);
        assert_eq!(PublicKey::from_bytes(&mixed), Err(KeyError::MixedOrder));
    }

    #[test]
    fn mixed_order_key_constant_is_what_it_claims() {
        let pk = ed25519_dalek::VerifyingKey::from_bytes(&unhex32(RFC_PK)).unwrap();
        let t2 = ed25519_dalek::VerifyingKey::from_bytes(&unhex32(
            "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        ))
        .unwrap();
        let sum = pk.to_edwards() + t2.to_edwards();
        assert_eq!(hex::encode(sum.compress().to_bytes()), MIXED_ORDER_KEY);
        // ed25519-dalek alone does not refuse it: verify_strict only rejects small order.
        assert!(!ed25519_dalek::VerifyingKey::from(sum).is_weak());
    }
}
