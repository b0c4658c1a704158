//! Equivocation evidence: two checkpoints of one log, both validly signed by its key, that
//! cannot both be true — the same size with different roots, or a consistency proof showing
//! that the larger tree does not contain the smaller one. The document is self-contained:
//! [`Evidence::check`] needs nothing else (docs/FORMAT.md, "Equivocation evidence").

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::merkle::{node_hash, verify_consistency, Hash};
use crate::note::{Checkpoint, NoteVerifier, SignedNote};

/// The `format` of an evidence document.
pub const EVIDENCE_FORMAT: &str = "vledger-equivocation";

/// Two signed checkpoints of one log that contradict each other, and the proof that they do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    pub format: String,
    pub version: u32,
    /// The log's checkpoint origin.
    pub origin: String,
    /// The log's C2SP verifier key: both checkpoints verify under it.
    pub log_key: String,
    /// The checkpoint of the smaller (or equal) size, as signed.
    pub first: String,
    /// The other checkpoint, as signed.
    pub second: String,
    /// For different sizes: an RFC 9162 consistency proof from `first`'s size to `second`'s
    /// (standard base64), valid for `second`'s root and [`Evidence::implied_first_root`].
    #[serde(default)]
    pub proof: Vec<String>,
    /// For different sizes: the root that `second`'s tree has at `first`'s size, as the proof
    /// shows; it differs from `first`'s root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub implied_first_root: Option<String>,
    /// Who found it and how (informative, not checked).
    pub observed_by: String,
}

/// Why an evidence document proves nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the evidence proves nothing: {0}")]
pub struct EvidenceError(pub String);

impl Evidence {
    /// Evidence of two checkpoints of the same size with different roots.
    pub fn same_size(
        verifier: &NoteVerifier,
        first: &str,
        second: &str,
        observed_by: &str,
    ) -> Self {
        Self::new(verifier, first, second, Vec::new(), None, observed_by)
    }

    /// Evidence of a larger checkpoint that does not extend a smaller one.
    pub fn diverging(
        verifier: &NoteVerifier,
        smaller: &str,
        larger: &str,
        proof: &[Hash],
        implied_root: Hash,
        observed_by: &str,
    ) -> Self {
        Self::new(
            verifier,
            smaller,
            larger,
            proof.iter().map(|h| B64.encode(h)).collect(),
            Some(B64.encode(implied_root)),
            observed_by,
        )
    }

    fn new(
        verifier: &NoteVerifier,
        first: &str,
        second: &str,
        proof: Vec<String>,
        implied_first_root: Option<String>,
        observed_by: &str,
    ) -> Self {
        Self {
            format: EVIDENCE_FORMAT.into(),
            version: 1,
            origin: verifier.name.clone(),
            log_key: verifier.to_verifier_key(),
            first: first.into(),
            second: second.into(),
            proof,
            implied_first_root,
            observed_by: observed_by.into(),
        }
    }

    /// Checks the evidence on its own; on success says what it proves.
    pub fn check(&self) -> Result<String, EvidenceError> {
        let err = |m: String| EvidenceError(m);
        if self.format != EVIDENCE_FORMAT || self.version != 1 {
            return Err(err(format!("not a {EVIDENCE_FORMAT} version 1 document")));
        }
        let verifier =
            NoteVerifier::parse(&self.log_key).map_err(|e| err(format!("log_key: {e}")))?;
        let open = |note: &str, which: &str| -> Result<Checkpoint, EvidenceError> {
            let signed = SignedNote::parse(note).map_err(|e| err(format!("{which}: {e}")))?;
            signed
                .verify(std::slice::from_ref(&verifier))
                .map_err(|e| err(format!("{which} is not signed by the log key: {e}")))?;
            let cp = Checkpoint::parse(&signed.text).map_err(|e| err(format!("{which}: {e}")))?;
            if cp.origin != self.origin {
                return Err(err(format!(
                    "{which} is of log `{}`, not `{}`",
                    cp.origin, self.origin
                )));
            }
            Ok(cp)
        };
        let first = open(&self.first, "first")?;
        let second = open(&self.second, "second")?;
        if first.size == second.size {
            if first.root_hash == second.root_hash {
                return Err(err("both checkpoints have the same size and root".into()));
            }
            return Ok(format!(
                "log `{}` signed two different trees of size {}: roots {} and {}",
                self.origin,
                first.size,
                B64.encode(first.root_hash),
                B64.encode(second.root_hash)
            ));
        }
        if first.size > second.size {
            return Err(err("`first` must be the smaller checkpoint".into()));
        }
        let implied: Hash = self
            .implied_first_root
            .as_deref()
            .and_then(|r| B64.decode(r).ok())
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| err("implied_first_root is missing or not 32 bytes of base64".into()))?;
        let proof = self
            .proof
            .iter()
            .map(|h| B64.decode(h).ok().and_then(|v| v.try_into().ok()))
            .collect::<Option<Vec<Hash>>>()
            .ok_or_else(|| err("a proof hash is not 32 bytes of base64".into()))?;
        verify_consistency(first.size, second.size, &implied, &second.root_hash, &proof).map_err(
            |e| {
                err(format!(
                    "the proof does not tie the implied root to the second checkpoint: {e}"
                ))
            },
        )?;
        if implied == first.root_hash {
            return Err(err(
                "the implied root is the first checkpoint's root: they are consistent".into(),
            ));
        }
        Ok(format!(
            "log `{}` signed a tree of size {} with root {}, and a tree of size {} whose first {} leaves have root {}: the larger tree does not extend the smaller",
            self.origin,
            first.size,
            B64.encode(first.root_hash),
            second.size,
            first.size,
            B64.encode(implied)
        ))
    }
}

/// The root of the old tree that a consistency proof from `old_size` to `new_size` implies,
/// if the proof leads to `new_root`. Only defined when `old_size` is not a power of two: then
/// the proof itself carries the old tree's rightmost subtree; for a power of two the old root
/// is an input of the proof, not an output.
pub fn implied_old_root(
    old_size: u64,
    new_size: u64,
    new_root: &Hash,
    proof: &[Hash],
) -> Option<Hash> {
    if old_size == 0 || old_size >= new_size || old_size.is_power_of_two() || proof.is_empty() {
        return None;
    }
    let (seed, rest) = (proof[0], &proof[1..]);
    let (mut fnode, mut snode) = (old_size - 1, new_size - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (seed, seed);
    for c in rest {
        if snode == 0 {
            return None;
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    (snode == 0
        && &sr == new_root
        && verify_consistency(old_size, new_size, &fr, new_root, proof).is_ok())
    .then_some(fr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SigningKey;
    use crate::merkle::{consistency_proof, MemoryTree};
    use crate::note::NoteSigner;

    fn signed(signer: &NoteSigner, size: u64, root: Hash) -> String {
        let cp = Checkpoint {
            origin: signer.name().into(),
            size,
            root_hash: root,
            extensions: vec![],
        };
        signer.sign(&cp.to_text()).unwrap()
    }

    #[test]
    fn a_fork_is_proven_and_a_consistent_pair_is_not() {
        let signer = NoteSigner::new("example/log", SigningKey::from_bytes(&[9; 32])).unwrap();
        let (mut honest, mut fork) = (MemoryTree::new(), MemoryTree::new());
        for i in 0..5u8 {
            honest.append(&[i]);
            fork.append(&[if i == 2 { 99 } else { i }]);
        }
        let small = signed(&signer, 3, {
            let mut t = MemoryTree::new();
            (0..3u8).for_each(|i| {
                t.append(&[i]);
            });
            t.root()
        });
        let large_fork = signed(&signer, 5, fork.root());
        let proof = consistency_proof(&fork, 3, 5).unwrap();
        let implied = implied_old_root(3, 5, &fork.root(), &proof).unwrap();
        let evidence = Evidence::diverging(
            &signer.verifier(),
            &small,
            &large_fork,
            &proof,
            implied,
            "test",
        );
        assert!(evidence.check().is_ok(), "{:?}", evidence.check());

        let large_honest = signed(&signer, 5, honest.root());
        let proof = consistency_proof(&honest, 3, 5).unwrap();
        let implied = implied_old_root(3, 5, &honest.root(), &proof).unwrap();
        let not_evidence = Evidence::diverging(
            &signer.verifier(),
            &small,
            &large_honest,
            &proof,
            implied,
            "test",
        );
        assert!(not_evidence.check().is_err());

        let same = Evidence::same_size(
            &signer.verifier(),
            &signed(&signer, 5, honest.root()),
            &large_fork,
            "t",
        );
        assert!(same.check().is_ok());
        let other = NoteSigner::new("example/log", SigningKey::from_bytes(&[8; 32])).unwrap();
        let forged = Evidence::same_size(
            &signer.verifier(),
            &signed(&other, 5, honest.root()),
            &large_fork,
            "t",
        );
        assert!(forged.check().is_err());
    }
}
