//! Receipts: the node's signed statement that it accepted a command at an index.
//!
//! The node signs one note per batch, not one per command. Each accepted command's facts are
//! written as a receipt line
//! ```text
//! <index>
//! <leaf hash, standard base64>
//! <node time, ms since the Unix epoch>
//! <SHA-256 of the DSSE payload, standard base64>
//! ```
//! (each line ending in `\n`); the batch's receipt lines, in index order, are the leaves of an
//! RFC 6962 Merkle tree, and the node signs a C2SP signed note (with its checkpoint key) whose
//! text is
//! ```text
//! vledger/receipts/v1
//! <origin>
//! <index of the batch's first receipt>
//! <number of receipts>
//! <root of the receipts' tree, standard base64>
//! ```
//! A command's receipt is its facts, that note and the inclusion proof of its receipt line
//! (leaf `index − first index`) in the tree. One signature then serves a whole batch, and the
//! receipt proves exactly what a signature over its own line would.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};

use vledger_domain::types::{LogIndex, TimeMs};
use vledger_tlog::merkle::{self, leaf_hash, Hash, MemoryTree, SubtreeSource};
use vledger_tlog::note::{NoteError, NoteSigner, NoteVerifier, SignedNote};

/// First line of every receipts note.
pub const RECEIPTS_HEADER: &str = "vledger/receipts/v1";

/// The facts a receipt states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiptData {
    pub index: LogIndex,
    pub leaf_hash: Hash,
    pub node_time_ms: TimeMs,
    pub command_hash: [u8; 32],
}

impl ReceiptData {
    /// The receipt line: the leaf of the batch's receipts tree.
    pub fn line(&self) -> String {
        format!(
            "{}\n{}\n{}\n{}\n",
            self.index,
            B64.encode(self.leaf_hash),
            self.node_time_ms,
            B64.encode(self.command_hash)
        )
    }
}

/// One batch's receipts: the tree of their lines and the signed note of its root.
#[derive(Debug)]
pub struct BatchReceipts {
    first_index: LogIndex,
    tree: MemoryTree,
    note: String,
}

impl BatchReceipts {
    /// Signs the receipts of `receipts`, which must be of consecutive indices (a batch's
    /// accepted commands, or one command).
    ///
    /// # Panics
    ///
    /// If `receipts` is empty or its indices are not consecutive.
    pub fn sign(origin: &str, signer: &NoteSigner, receipts: &[ReceiptData]) -> Self {
        let first_index = receipts.first().expect("a batch has receipts").index;
        let mut tree = MemoryTree::new();
        for (position, receipt) in receipts.iter().enumerate() {
            assert_eq!(receipt.index, first_index + position as u64, "consecutive");
            tree.append(receipt.line().as_bytes());
        }
        let text = format!(
            "{RECEIPTS_HEADER}\n{origin}\n{first_index}\n{}\n{}\n",
            tree.size(),
            B64.encode(tree.root())
        );
        let note = signer.sign(&text).expect("receipts text is a valid note");
        Self {
            first_index,
            tree,
            note,
        }
    }

    /// The receipt of `data`, one of this batch's.
    ///
    /// # Panics
    ///
    /// If `data` is not one of the batch's receipts.
    pub fn receipt(&self, data: &ReceiptData) -> Receipt {
        let position = data
            .index
            .checked_sub(self.first_index)
            .filter(|&p| p < self.tree.size())
            .expect("the receipt is one of the batch's");
        let proof = merkle::inclusion_proof(&self.tree, position, self.tree.size())
            .expect("a position inside the tree");
        vledger_tlog::self_check_eq!(
            self.tree.perfect_subtree(0, position).ok(),
            Some(leaf_hash(data.line().as_bytes())),
            "the receipt's facts are those the tree holds"
        );
        Receipt {
            index: data.index,
            leaf_hash: B64.encode(data.leaf_hash),
            node_time_ms: data.node_time_ms,
            command_hash: B64.encode(data.command_hash),
            note: self.note.clone(),
            proof: proof.iter().map(|hash| B64.encode(hash)).collect(),
        }
    }
}

/// A receipt as the API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Receipt {
    pub index: LogIndex,
    /// Leaf hash of the entry, standard base64.
    pub leaf_hash: String,
    pub node_time_ms: TimeMs,
    /// SHA-256 of the DSSE payload, standard base64.
    pub command_hash: String,
    /// The batch's receipts note (`vledger/receipts/v1`), verifiable with the node's verifier
    /// key.
    pub note: String,
    /// The inclusion proof of this receipt's line in the tree whose root the note signs,
    /// standard base64 hashes, bottom up.
    pub proof: Vec<String>,
}

/// Why a receipt does not verify.
#[derive(Debug, thiserror::Error)]
pub enum ReceiptError {
    #[error("the receipts note: {0}")]
    Note(#[from] NoteError),
    #[error("the note is not a {RECEIPTS_HEADER} note of origin `{origin}`")]
    NotReceipts { origin: String },
    #[error("the receipt's {0} is not a base64 SHA-256 hash")]
    Hash(&'static str),
    #[error("index {index} is not among the note's receipts ({first} to {first} + {count})")]
    NotInBatch { index: u64, first: u64, count: u64 },
    #[error("the receipt's line is not in the tree the note signs: {0}")]
    Proof(#[from] merkle::ProofError),
}

impl Receipt {
    /// Checks that `verifier` signed the note, for log `origin`, and that the note's tree holds
    /// this receipt's line; returns the facts it proves.
    ///
    /// # Errors
    ///
    /// [`ReceiptError`] says which check failed.
    pub fn verify(
        &self,
        verifier: &NoteVerifier,
        origin: &str,
    ) -> Result<ReceiptData, ReceiptError> {
        let note = SignedNote::parse(&self.note)?;
        note.verify(std::slice::from_ref(verifier))?;
        let not_receipts = || ReceiptError::NotReceipts {
            origin: origin.to_string(),
        };
        let lines: Vec<&str> = note
            .text
            .strip_suffix('\n')
            .ok_or_else(not_receipts)?
            .split('\n')
            .collect();
        let [header, note_origin, first, count, root] = lines[..] else {
            return Err(not_receipts());
        };
        if header != RECEIPTS_HEADER || note_origin != origin {
            return Err(not_receipts());
        }
        let number = |text: &str| {
            text.parse::<u64>()
                .ok()
                .filter(|n| n.to_string() == text)
                .ok_or_else(not_receipts)
        };
        let (first, count) = (number(first)?, number(count)?);
        let root = hash_field(root, "note's root")?;
        let data = ReceiptData {
            index: self.index,
            leaf_hash: hash_field(&self.leaf_hash, "leaf hash")?,
            node_time_ms: self.node_time_ms,
            command_hash: hash_field(&self.command_hash, "command hash")?,
        };
        let position = self.index.checked_sub(first).filter(|&p| p < count).ok_or(
            ReceiptError::NotInBatch {
                index: self.index,
                first,
                count,
            },
        )?;
        let proof = self
            .proof
            .iter()
            .map(|hash| hash_field(hash, "proof"))
            .collect::<Result<Vec<_>, _>>()?;
        merkle::verify_inclusion(
            &leaf_hash(data.line().as_bytes()),
            position,
            count,
            &proof,
            &root,
        )?;
        Ok(data)
    }
}

fn hash_field(text: &str, what: &'static str) -> Result<Hash, ReceiptError> {
    B64.decode(text)
        .ok()
        .and_then(|bytes| Hash::try_from(bytes).ok())
        .ok_or(ReceiptError::Hash(what))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vledger_tlog::keys::SigningKey;

    const ORIGIN: &str = "receipts.test/cq";

    fn signer() -> NoteSigner {
        NoteSigner::new(ORIGIN, SigningKey::generate(&mut rand::rngs::OsRng)).unwrap()
    }

    fn facts(first: u64, count: u64) -> Vec<ReceiptData> {
        (first..first + count)
            .map(|index| ReceiptData {
                index,
                leaf_hash: [index as u8; 32],
                node_time_ms: 1_700_000_000_000 + index,
                command_hash: [(index as u8).wrapping_mul(7); 32],
            })
            .collect()
    }

    #[test]
    fn every_receipt_of_a_batch_proves_its_own_facts() {
        let signer = signer();
        for count in [1, 2, 3, 5, 8, 13] {
            let batch = facts(40, count);
            let receipts = BatchReceipts::sign(ORIGIN, &signer, &batch);
            for data in &batch {
                let receipt = receipts.receipt(data);
                assert_eq!(
                    receipt.verify(&signer.verifier(), ORIGIN).unwrap(),
                    *data,
                    "receipt {} of {count}",
                    data.index
                );
                assert_eq!(receipt.note, receipts.note, "one note per batch");
            }
        }
    }

    #[test]
    fn a_receipt_with_any_fact_changed_is_refused() {
        let signer = signer();
        let batch = facts(7, 5);
        let receipts = BatchReceipts::sign(ORIGIN, &signer, &batch);
        let good = receipts.receipt(&batch[2]);
        let verifier = signer.verifier();
        let mut changed: Vec<(&str, Receipt)> = Vec::new();
        let mut r = good.clone();
        r.index += 1;
        changed.push(("index within the batch", r));
        let mut r = good.clone();
        r.index = 12;
        changed.push(("index past the batch", r));
        let mut r = good.clone();
        r.leaf_hash = B64.encode([0xAB; 32]);
        changed.push(("leaf hash", r));
        let mut r = good.clone();
        r.node_time_ms += 1;
        changed.push(("time", r));
        let mut r = good.clone();
        r.command_hash = B64.encode([1u8; 32]);
        changed.push(("command hash", r));
        let mut r = good.clone();
        r.proof[0] = B64.encode([0u8; 32]);
        changed.push(("proof", r));
        let mut r = good.clone();
        r.proof.pop();
        changed.push(("short proof", r));
        let mut r = good.clone();
        r.note = r.note.replacen("\n7\n5\n", "\n7\n6\n", 1);
        changed.push(("count", r));
        let mut r = good.clone();
        r.note = receipts
            .receipt(&batch[0])
            .note
            .replacen(ORIGIN, "other.test/cq", 1);
        changed.push(("origin", r));
        for (what, receipt) in changed {
            assert!(
                receipt.verify(&verifier, ORIGIN).is_err(),
                "{what} changed, yet the receipt verifies"
            );
        }
        assert!(good.verify(&verifier, ORIGIN).is_ok());
        assert!(good.verify(&verifier, "other.test/cq").is_err());
        assert!(good.verify(&self::signer().verifier(), ORIGIN).is_err());
    }
}
