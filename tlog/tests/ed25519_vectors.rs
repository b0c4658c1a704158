//! The ledger's signature rule against the C2SP/CCTV Ed25519 edge-case vectors
//! (https://github.com/C2SP/CCTV/tree/main/ed25519, see tests/data/ed25519/README.md).
//!
//! Every vector the rule accepts must also be accepted by OpenSSL. What OpenSSL accepts is
//! recorded in tests/data/ed25519/openssl_accepts.json, generated and re-checked by
//! tests/python/ed25519_openssl.py (Python `cryptography`) at the repository root.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::Deserialize;
use vledger_tlog::keys::{KeyError, PublicKey, SignatureError};

/// Number of vectors in ed25519vectors.json.
const TOTAL: usize = 914;
/// Vectors accepted by the ledger's rule (measured): only the one ordinary, flag-free vector.
const RULE_ACCEPTS: &[usize] = &[305];
/// Number of vectors accepted by ed25519-dalek 2.2 `verify_strict` alone.
const VERIFY_STRICT_ACCEPTS: usize = 43;
/// Number of vectors accepted by OpenSSL (and by ed25519-dalek's non-strict `verify`).
const OPENSSL_ACCEPTS: usize = 208;

#[derive(Deserialize)]
struct Vector {
    number: usize,
    key: String,
    sig: String,
    msg: String,
    flags: Option<Vec<String>>,
}

impl Vector {
    fn has(&self, flag: &str) -> bool {
        self.flags.iter().flatten().any(|f| f == flag)
    }
}

#[derive(Deserialize)]
struct OpensslAccepts {
    total: usize,
    accepted_count: usize,
    accepted: Vec<usize>,
}

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/ed25519")
}

fn load_vectors() -> Vec<Vector> {
    let raw = std::fs::read_to_string(data_dir().join("ed25519vectors.json"))
        .expect("read ed25519vectors.json");
    let vectors: Vec<Vector> = serde_json::from_str(&raw).expect("parse ed25519vectors.json");
    assert_eq!(vectors.len(), TOTAL, "unexpected number of vectors");
    for (i, v) in vectors.iter().enumerate() {
        assert_eq!(v.number, i, "vectors are not numbered 0..N-1 in order");
    }
    vectors
}

fn load_openssl() -> BTreeSet<usize> {
    let raw = std::fs::read_to_string(data_dir().join("openssl_accepts.json"))
        .expect("read openssl_accepts.json");
    let o: OpensslAccepts = serde_json::from_str(&raw).expect("parse openssl_accepts.json");
    assert_eq!(o.total, TOTAL);
    assert_eq!(o.accepted.len(), o.accepted_count);
    let set: BTreeSet<usize> = o.accepted.into_iter().collect();
    assert_eq!(
        set.len(),
        o.accepted_count,
        "duplicates in openssl_accepts.json"
    );
    assert_eq!(set.len(), OPENSSL_ACCEPTS);
    set
}

/// The ledger's rule: the key must pass `PublicKey::from_bytes`, then `verify` must succeed.
fn rule(v: &Vector) -> Result<(), RuleError> {
    let key = hex::decode(&v.key).unwrap();
    let sig = hex::decode(&v.sig).unwrap();
    let pk = PublicKey::from_bytes(&key).map_err(RuleError::Key)?;
    pk.verify(v.msg.as_bytes(), &sig).map_err(RuleError::Sig)
}

#[derive(Debug)]
enum RuleError {
    Key(KeyError),
    Sig(SignatureError),
}

fn dalek(v: &Vector, strict: bool) -> bool {
    let key: [u8; 32] = hex::decode(&v.key).unwrap().try_into().unwrap();
    let sig: [u8; 64] = hex::decode(&v.sig).unwrap().try_into().unwrap();
    let Ok(vk) = ed25519_dalek::VerifyingKey::from_bytes(&key) else {
        return false;
    };
    let sig = ed25519_dalek::Signature::from_bytes(&sig);
    if strict {
        vk.verify_strict(v.msg.as_bytes(), &sig).is_ok()
    } else {
        use ed25519_dalek::Verifier as _;
        vk.verify(v.msg.as_bytes(), &sig).is_ok()
    }
}

#[test]
fn rule_accepts_only_what_openssl_accepts() {
    let vectors = load_vectors();
    let openssl = load_openssl();

    let accepted: Vec<&Vector> = vectors.iter().filter(|v| rule(v).is_ok()).collect();
    let accepted_numbers: Vec<usize> = accepted.iter().map(|v| v.number).collect();
    println!(
        "ledger rule accepts {} of {} vectors: {:?}",
        accepted.len(),
        vectors.len(),
        accepted_numbers
    );

    for v in &accepted {
        assert!(
            openssl.contains(&v.number),
            "vector {} is accepted by the ledger rule but not by OpenSSL",
            v.number
        );
    }
    assert_eq!(accepted_numbers, RULE_ACCEPTS);
    assert_eq!(accepted.len(), 1);
}

#[test]
fn rule_rejects_every_flagged_oddity() {
    let vectors = load_vectors();
    for v in vectors.iter().filter(|v| rule(v).is_ok()) {
        assert!(
            v.flags.iter().flatten().next().is_none(),
            "vector {}",
            v.number
        );
        for flag in [
            "low_order_A",
            "low_order_component_A",
            "non_canonical_A",
            "low_order_R",
            "low_order_component_R",
            "non_canonical_R",
            "low_order_residue",
        ] {
            assert!(
                !v.has(flag),
                "vector {} accepted despite flag {flag}",
                v.number
            );
        }
    }
}

#[test]
fn key_errors_match_flags() {
    for v in load_vectors() {
        let key = hex::decode(&v.key).unwrap();
        let res = PublicKey::from_bytes(&key);
        if v.has("non_canonical_A") {
            assert_eq!(
                res.err(),
                Some(KeyError::NonCanonical),
                "vector {}",
                v.number
            );
        } else if v.has("low_order_A") {
            assert_eq!(res.err(), Some(KeyError::SmallOrder), "vector {}", v.number);
        } else if v.has("low_order_component_A") {
            assert_eq!(res.err(), Some(KeyError::MixedOrder), "vector {}", v.number);
        } else {
            assert!(res.is_ok(), "vector {}: {:?}", v.number, res);
            // A valid key: the rule then rejects the signature itself, except for the
            // accepted vectors.
            if !RULE_ACCEPTS.contains(&v.number) {
                assert!(
                    matches!(rule(&v), Err(RuleError::Sig(SignatureError::Invalid))),
                    "vector {}",
                    v.number
                );
            }
        }
    }
}

#[test]
fn reference_counts() {
    // Pins the behaviour of the underlying library so that an upgrade that changes it is
    // noticed: `verify_strict` alone accepts more than the ledger's rule (it allows
    // mixed-order keys), and dalek's non-strict `verify` accepts exactly what OpenSSL does.
    let vectors = load_vectors();
    let openssl = load_openssl();
    let strict: BTreeSet<usize> = vectors
        .iter()
        .filter(|v| dalek(v, true))
        .map(|v| v.number)
        .collect();
    let loose: BTreeSet<usize> = vectors
        .iter()
        .filter(|v| dalek(v, false))
        .map(|v| v.number)
        .collect();
    assert_eq!(strict.len(), VERIFY_STRICT_ACCEPTS);
    assert!(strict.is_subset(&openssl));
    assert_eq!(loose, openssl);
    let rule: BTreeSet<usize> = vectors
        .iter()
        .filter(|v| rule(v).is_ok())
        .map(|v| v.number)
        .collect();
    assert!(rule.is_subset(&strict));
    for n in strict.difference(&rule) {
        let v = &vectors[*n];
        assert!(
            matches!(rule_error(v), Some(RuleError::Key(KeyError::MixedOrder))),
            "vector {n} accepted by verify_strict but refused by the rule for another reason: {:?}",
            rule_error(v)
        );
    }
}

fn rule_error(v: &Vector) -> Option<RuleError> {
    rule(v).err()
}

/// `[scalar]point` by double-and-add, `scalar` little-endian of any length (test code: slow,
/// variable time).
fn times<P: Copy + std::ops::Add<Output = P>>(point: P, zero: P, scalar_le: &[u8]) -> P {
    let mut acc = zero;
    for byte in scalar_le.iter().rev() {
        for bit in (0..8).rev() {
            acc = acc + acc;
            if (byte >> bit) & 1 == 1 {
                acc = acc + point;
            }
        }
    }
    acc
}

/// Why the ledger does not use batch verification.
///
/// ed25519-dalek's `verify_batch` (2.2, `batch` feature) checks, for random 128-bit `z_i`,
/// `Σ z_i·(R_i + [k_i]A_i − [S_i]B) = 0` with each `R_i` only decompressed. For a batch of one,
/// it accepts whenever `D = [S]B − R − [k]A` satisfies `[z]D = 0`: always when `D` is the
/// identity, and for a fraction (1/2 to 1/8) of the random `z` when `D` has small order. The
/// single-signature rule instead requires the encoding of `[S]B − [k]A` to equal the bytes of R
/// and R not to be of small order. This test finds, among the edge-case vectors whose key
/// passes the ledger's key rule and whose S is canonical, signatures that the batch equation
/// accepts (always, or for some `z`) and the rule refuses: a batch fast path would accept
/// what a single verification, and OpenSSL, refuse.
#[test]
fn batch_equation_accepts_what_the_rule_refuses() {
    use sha2::{Digest, Sha512};
    const IDENTITY: [u8; 32] = {
        let mut b = [0u8; 32];
        b[0] = 1;
        b
    };
    const BASEPOINT: [u8; 32] = [
        0x58, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66,
        0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66,
        0x66, 0x66,
    ];
    let decode = |bytes: &[u8]| {
        let bytes: [u8; 32] = bytes.try_into().unwrap();
        ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .ok()
            .map(|vk| vk.to_edwards())
    };
    let zero = decode(&IDENTITY).unwrap();
    let base = decode(&BASEPOINT).unwrap();
    let canonical_scalar = |s: &[u8]| s.iter().rev().lt(ELL.iter().rev());

    let mut always = Vec::new();
    let mut sometimes = Vec::new();
    for v in load_vectors() {
        let key = hex::decode(&v.key).unwrap();
        let sig = hex::decode(&v.sig).unwrap();
        if PublicKey::from_bytes(&key).is_err() || !canonical_scalar(&sig[32..]) {
            continue; // refused before any equation, by both paths
        }
        let (Some(a), Some(r)) = (decode(&key), decode(&sig[..32])) else {
            continue; // R does not decode: refused by both
        };
        let k = Sha512::new()
            .chain_update(&sig[..32])
            .chain_update(&key)
            .chain_update(v.msg.as_bytes())
            .finalize();
        let d = times(base, zero, &sig[32..]) - r - times(a, zero, &k);
        let rule_accepts = rule(&v).is_ok();
        if d.compress().to_bytes() == IDENTITY {
            if !rule_accepts {
                always.push(v.number);
            }
        } else if d.is_small_order() {
            assert!(!rule_accepts, "vector {}", v.number);
            sometimes.push(v.number);
        } else {
            assert!(!rule_accepts, "vector {}", v.number);
        }
    }
    println!("batch equation always accepts, rule refuses: {always:?}");
    println!("batch equation accepts for some z, rule refuses: {sometimes:?}");
    // Measured with ed25519-dalek 2.2: four signatures over a canonical, torsion-free key
    // whose R is small-order or non-canonically encoded satisfy the equation exactly; 17 more
    // (R with a small-order component) satisfy it for a fraction of the random coefficients.
    assert_eq!(always, [304, 316, 319, 322]);
    assert_eq!(
        sometimes,
        [266, 267, 278, 285, 286, 297, 335, 336, 348, 349, 361, 362, 374, 375, 387, 388, 399]
    );
}

/// `PublicKey::verify` skips `verify_strict`'s decompression of R (see "How the rule is
/// checked" in `keys`); it must accept and refuse exactly what `verify_strict` does. On every
/// vector whose key passes the key rule:
#[test]
fn verify_agrees_with_verify_strict_on_every_vector() {
    let mut compared = 0;
    for v in load_vectors() {
        let key = hex::decode(&v.key).unwrap();
        let sig: [u8; 64] = hex::decode(&v.sig).unwrap().try_into().unwrap();
        let Ok(pk) = PublicKey::from_bytes(&key) else {
            continue;
        };
        let strict = pk.verify_with_dalek_strict(v.msg.as_bytes(), &sig).is_ok();
        assert_eq!(
            pk.verify(v.msg.as_bytes(), &sig).is_ok(),
            strict,
            "vector {}",
            v.number
        );
        assert_eq!(
            pk.verify_with_new_table(v.msg.as_bytes(), &sig).is_ok(),
            strict,
            "vector {}, with the key's table",
            v.number
        );
        compared += 1;
    }
    assert!(compared > 0);
}

/// ℓ, the order of the prime-order subgroup, little-endian.
const ELL: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

/// `s + ℓ`, little-endian (fits in 32 bytes for any `s < ℓ`): the same scalar modulo ℓ, in a
/// non-canonical encoding.
fn plus_ell(s: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = u16::from(s[i]) + u16::from(ELL[i]) + carry;
        out[i] = sum as u8;
        carry = sum >> 8;
    }
    assert_eq!(carry, 0);
    out
}

/// ... on every one-bit corruption of real signatures (R, S and the message), and on S + ℓ ...
#[test]
fn verify_agrees_with_verify_strict_on_corrupted_signatures() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for _ in 0..4 {
        let mut seed = [0u8; 32];
        rng.fill(&mut seed);
        let signer = vledger_tlog::keys::SigningKey::from_bytes(&seed);
        let pk = signer.public_key();
        let message: Vec<u8> = (0..rng.gen_range(0..200)).map(|_| rng.gen()).collect();
        let sig = signer.sign(&message);
        assert!(pk.verify(&message, &sig).is_ok());
        assert!(pk.verify_with_new_table(&message, &sig).is_ok());
        for bit in 0..512 {
            let mut bad = sig;
            bad[bit / 8] ^= 1 << (bit % 8);
            let strict = pk.verify_with_dalek_strict(&message, &bad).is_ok();
            assert_eq!(pk.verify(&message, &bad).is_ok(), strict, "bit {bit}");
            assert_eq!(
                pk.verify_with_new_table(&message, &bad).is_ok(),
                strict,
                "bit {bit}, with the key's table"
            );
            assert!(pk.verify(&message, &bad).is_err(), "bit {bit}");
        }
        // S + ℓ satisfies the equation (B has order ℓ) and is refused for its encoding.
        let mut malleated = sig;
        malleated[32..].copy_from_slice(&plus_ell(&sig[32..]));
        assert!(pk.verify_with_dalek_strict(&message, &malleated).is_err());
        assert!(pk.verify(&message, &malleated).is_err());
        assert!(pk.verify_with_new_table(&message, &malleated).is_err());
        if !message.is_empty() {
            let mut bad = message.clone();
            bad[0] ^= 1;
            assert!(pk.verify(&bad, &sig).is_err());
        }
    }
}

/// ... and on the signature a small-order R makes valid under the cofactorless equation alone:
/// with R the identity and S = k·a, `[S]B − [k]A` is the identity, whose encoding is R. The
/// equation holds, `verify_strict` refuses R for its small order, and so must the rule.
#[test]
fn verify_refuses_a_small_order_r_that_satisfies_the_equation() {
    use curve25519_dalek::{constants::ED25519_BASEPOINT_POINT, Scalar};
    use ed25519_dalek::Verifier as _;
    use sha2::{Digest, Sha512};
    let a = Scalar::from(1234567u64);
    let point_a = ED25519_BASEPOINT_POINT * a;
    let key = point_a.compress().to_bytes();
    let pk = PublicKey::from_bytes(&key).expect("a multiple of B passes the key rule");
    let message = b"forged";
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let k = Scalar::from_bytes_mod_order_wide(
        &Sha512::new()
            .chain_update(identity)
            .chain_update(key)
            .chain_update(message)
            .finalize()
            .into(),
    );
    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(&identity);
    sig[32..].copy_from_slice((k * a).as_bytes());
    let vk = ed25519_dalek::VerifyingKey::from_bytes(&key).unwrap();
    assert!(
        vk.verify(message, &ed25519_dalek::Signature::from_bytes(&sig))
            .is_ok(),
        "the cofactorless equation alone accepts it"
    );
    assert!(pk.verify_with_dalek_strict(message, &sig).is_err());
    assert_eq!(pk.verify(message, &sig), Err(SignatureError::Invalid));
    assert_eq!(
        pk.verify_with_new_table(message, &sig),
        Err(SignatureError::Invalid)
    );
}
