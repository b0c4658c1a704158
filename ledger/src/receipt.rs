//! Receipts: the node's signed statement that it accepted a command at an index.
//!
//! A receipt is a C2SP signed note (signed by the node's checkpoint key) whose text is
//! ```text
//! vledger/receipt/v1
//! <origin>
//! <index>
//! <leaf hash, standard base64>
//! <node time, ms since the Unix epoch>
//! <SHA-256 of the DSSE payload, standard base64>
//! ```

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::merkle::Hash;
use crate::types::{LogIndex, TimeMs};

/// First line of every receipt note.
pub const RECEIPT_HEADER: &str = "vledger/receipt/v1";

/// The facts a receipt states, before signing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiptData {
    pub index: LogIndex,
    pub leaf_hash: Hash,
    pub node_time_ms: TimeMs,
    pub command_hash: [u8; 32],
}

impl ReceiptData {
    /// The note text the node signs.
    pub fn note_text(&self, origin: &str) -> String {
        format!(
            "{RECEIPT_HEADER}\n{origin}\n{}\n{}\n{}\n{}\n",
            self.index,
            B64.encode(self.leaf_hash),
            self.node_time_ms,
            B64.encode(self.command_hash)
        )
    }
}

/// A signed receipt as the API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Receipt {
    pub index: LogIndex,
    /// Leaf hash of the entry, standard base64.
    pub leaf_hash: String,
    pub node_time_ms: TimeMs,
    /// SHA-256 of the DSSE payload, standard base64.
    pub command_hash: String,
    /// The receipt as a signed note, verifiable with the node's verifier key.
    pub note: String,
}

impl Receipt {
    pub fn new(data: &ReceiptData, note: String) -> Self {
        Self {
            index: data.index,
            leaf_hash: B64.encode(data.leaf_hash),
            node_time_ms: data.node_time_ms,
            command_hash: B64.encode(data.command_hash),
            note,
        }
    }
}
