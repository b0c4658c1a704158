//! C2SP tlog-cosignature v1 with Ed25519: a witness's timestamped signature over a checkpoint.
//!
//! The key ID is SHA-256(name ‖ "\n" ‖ 0x04 ‖ public key)[..4]; the signature line carries
//! key ID ‖ u64 BE timestamp ‖ 64-byte signature over
//! `cosignature/v1\ntime <timestamp>\n<checkpoint note text>`.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::keys::{PublicKey, SigningKey, PUBLIC_KEY_LEN};
use crate::note::{NoteError, SignedNote};

/// The signature type byte of Ed25519 cosignatures.
pub const COSIGNATURE_TYPE: u8 = 0x04;

/// Why a cosigner key or cosignature is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CosignatureError {
    #[error("malformed cosigner key: {0}")]
    MalformedKey(String),
    #[error(transparent)]
    Note(#[from] NoteError),
    #[error("no cosignature of {0} on the checkpoint")]
    Missing(String),
    #[error("the cosignature of {0} does not verify")]
    Invalid(String),
}

fn key_id(name: &str, key: &PublicKey) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([COSIGNATURE_TYPE]);
    h.update(key.as_bytes());
    let sum = h.finalize();
    [sum[0], sum[1], sum[2], sum[3]]
}

fn message(text: &str, timestamp: u64) -> Vec<u8> {
    format!("cosignature/v1\ntime {timestamp}\n{text}").into_bytes()
}

/// A witness's cosigning key under its name.
#[derive(Debug, Clone)]
pub struct Cosigner {
    pub name: String,
    key: SigningKey,
}

impl Cosigner {
    pub fn new(name: &str, key: SigningKey) -> Result<Self, CosignatureError> {
        if name.is_empty() || name.contains(['+', ' ', '\n']) {
            return Err(CosignatureError::MalformedKey(format!("bad name `{name}`")));
        }
        Ok(Self {
            name: name.into(),
            key,
        })
    }

    /// The matching verifier.
    pub fn verifier(&self) -> CosignatureVerifier {
        CosignatureVerifier {
            name: self.name.clone(),
            key: self.key.public_key(),
        }
    }

    /// The signature line (ending in '\n') cosigning a checkpoint note text at `timestamp`.
    pub fn cosign(&self, text: &str, timestamp: u64) -> String {
        let sig = self.key.sign(&message(text, timestamp));
        let mut raw = key_id(&self.name, &self.key.public_key()).to_vec();
        raw.extend_from_slice(&timestamp.to_be_bytes());
        raw.extend_from_slice(&sig);
        format!("\u{2014} {} {}\n", self.name, B64.encode(raw))
    }
}

/// A known witness: name and Ed25519 public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CosignatureVerifier {
    pub name: String,
    pub key: PublicKey,
}

impl CosignatureVerifier {
    /// The verifier key `<name>+<key ID hex>+<base64(0x04 ‖ key)>`.
    pub fn to_verifier_key(&self) -> String {
        let mut raw = vec![COSIGNATURE_TYPE];
        raw.extend_from_slice(self.key.as_bytes());
        format!(
            "{}+{}+{}",
            self.name,
            hex::encode(key_id(&self.name, &self.key)),
            B64.encode(raw)
        )
    }

    /// Parses a verifier key of signature type 0x04.
    pub fn parse(vkey: &str) -> Result<Self, CosignatureError> {
        let bad = |m: &str| CosignatureError::MalformedKey(format!("`{vkey}`: {m}"));
        let mut parts = vkey.splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("expected <name>+<key ID>+<base64 key>"));
        };
        let raw = B64.decode(key).map_err(|_| bad("the key is not base64"))?;
        if raw.len() != 1 + PUBLIC_KEY_LEN || raw[0] != COSIGNATURE_TYPE {
            return Err(bad(
                "expected a 0x04 (cosignature/v1 Ed25519) key of 32 bytes",
            ));
        }
        let key = PublicKey::from_bytes(&raw[1..]).map_err(|e| bad(&e.to_string()))?;
        if hex::encode(key_id(name, &key)) != id {
            return Err(bad("the key ID does not match the name and key"));
        }
        Ok(Self {
            name: name.into(),
            key,
        })
    }

    /// Finds and verifies this witness's cosignature on a signed note; returns its timestamp.
    pub fn verify(&self, note: &SignedNote) -> Result<u64, CosignatureError> {
        let id = key_id(&self.name, &self.key);
        let sig = note
            .signatures
            .iter()
            .find(|s| s.name == self.name && s.key_id == id)
            .ok_or_else(|| CosignatureError::Missing(self.name.clone()))?;
        if sig.signature.len() != 8 + 64 {
            return Err(CosignatureError::Invalid(self.name.clone()));
        }
        let timestamp = u64::from_be_bytes(sig.signature[..8].try_into().expect("8 bytes"));
        self.key
            .verify(&message(&note.text, timestamp), &sig.signature[8..])
            .map_err(|_| CosignatureError::Invalid(self.name.clone()))?;
        Ok(timestamp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosignatures_verify_and_tampering_fails() {
        let cosigner =
            Cosigner::new("witness.example/w1", SigningKey::from_bytes(&[5; 32])).unwrap();
        let text = "example/log\n3\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";
        let line = cosigner.cosign(text, 1_700_000_000);
        let note = SignedNote::parse(&format!("{text}\n{line}")).unwrap();
        let verifier = CosignatureVerifier::parse(&cosigner.verifier().to_verifier_key()).unwrap();
        assert_eq!(verifier.verify(&note).unwrap(), 1_700_000_000);
        let other = SignedNote::parse(&format!("{}\n{line}", text.replace('3', "4"))).unwrap();
        assert!(verifier.verify(&other).is_err());
    }
}
