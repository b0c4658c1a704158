//! DSSE envelopes carrying signed commands: parsing at the edge, the pre-authentication encoding
//! (PAE) the signature covers, and the command payload's outer fields.
//!
//! A [`VerifiedEnvelope`] can only be built by [`VerifiedEnvelope::parse_and_verify`], so code that
//! holds one never re-checks the signature.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use vledger_domain::limits::{
    MAX_COMMAND_TYPE_BYTES, MAX_ENVELOPE_BYTES, MAX_NONCE_BYTES, MAX_REGION_ID_BYTES,
    MIN_NONCE_BYTES,
};
use vledger_domain::types::RegionId;
use vledger_tlog::keys::{KeyError, PublicKey, SignatureError};
use vledger_tlog::unique_keys::{find_duplicate_key, DuplicateKey};

/// The only DSSE payload type the ledger accepts.
pub const COMMAND_PAYLOAD_TYPE: &str = "application/vnd.vledger.command+json";

/// The schema of a DSSE envelope's `payloadType`: the one type a node takes.
fn command_payload_type() -> utoipa::openapi::schema::Schema {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some([COMMAND_PAYLOAD_TYPE]))
        .into()
}
/// The command format version this node speaks (the payload's `v`).
pub const COMMAND_FORMAT_VERSION: u32 = 1;

/// Why an envelope was refused before it reached the state machine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("envelope is {len} bytes; the limit is {max}")]
    TooLarge { len: usize, max: usize },
    #[error("envelope is not valid JSON of the DSSE shape: {0}")]
    MalformedJson(String),
    #[error("field `{field}` is not standard base64")]
    BadBase64 { field: &'static str },
    #[error("payloadType is `{0}`; expected `{COMMAND_PAYLOAD_TYPE}`")]
    WrongPayloadType(String),
    #[error("envelope carries {0} signatures; exactly one is required")]
    SignatureCount(usize),
    #[error("command payload is not valid: {0}")]
    MalformedCommand(String),
    #[error("command format version {0} is not supported; this node speaks version {COMMAND_FORMAT_VERSION}")]
    UnsupportedVersion(u64),
    #[error("signer key is not acceptable: {0}")]
    BadSignerKey(KeyError),
    #[error("signature does not verify for the signer in the payload: {0}")]
    BadSignature(SignatureError),
    /// A JSON object of the envelope or of its payload repeats a key: parsers differ on which
    /// value counts, so the command would not mean one thing to every reader.
    #[error("{which}: {duplicate}")]
    DuplicateKey {
        which: &'static str,
        duplicate: DuplicateKey,
    },
}

/// A DSSE envelope as it appears on the wire.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DsseEnvelope {
    /// Always `application/vnd.vledger.command+json`.
    #[schema(schema_with = command_payload_type)]
    pub payload_type: String,
    /// The payload bytes in standard base64; the whole envelope is at most 32,768 bytes.
    #[schema(
        pattern = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/][AQgw]==|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=)?$",
        min_length = 4,
        max_length = 32768
    )]
    pub payload: String,
    /// Exactly one signature.
    #[schema(min_items = 1, max_items = 1)]
    pub signatures: Vec<DsseSignature>,
}

/// One DSSE signature; `keyid` is only a hint, the payload's `signer` is authoritative.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DsseSignature {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyid: Option<String>,
    /// The 64-byte ed25519 signature in standard base64.
    #[schema(
        pattern = r"^[A-Za-z0-9+/]{85}[AQgw]==$",
        min_length = 88,
        max_length = 88
    )]
    pub sig: String,
}

/// The outer fields of a command payload; `body` is parsed by the domain according to `type`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CommandPayload {
    pub v: u64,
    #[serde(rename = "type")]
    pub command_type: String,
    pub region: RegionId,
    pub signer: PublicKey,
    pub nonce: String,
    pub body: serde_json::Value,
}

impl CommandPayload {
    /// The key of its (signer, nonce) pair, under which a node and a replay remember that the
    /// pair was used: the signer's 32 bytes, then the nonce's.
    pub fn nonce_key(&self) -> Vec<u8> {
        let mut key = Vec::with_capacity(32 + self.nonce.len());
        key.extend_from_slice(self.signer.as_bytes());
        key.extend_from_slice(self.nonce.as_bytes());
        key
    }
}

/// DSSE pre-authentication encoding: `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + payload_type.len() + payload.len());
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

/// An envelope whose shape, payload and signature have been checked.
#[derive(Debug, Clone)]
pub struct VerifiedEnvelope {
    /// The envelope bytes exactly as received; these go into the entry.
    pub raw: Vec<u8>,
    /// The decoded payload bytes (what the signature covers, inside the PAE).
    pub payload_bytes: Vec<u8>,
    /// SHA-256 of `payload_bytes`: identifies the command for idempotency and receipts.
    pub command_hash: [u8; 32],
    pub payload: CommandPayload,
}

impl VerifiedEnvelope {
    /// Parses an envelope as received and verifies its one signature against the payload's signer.
    pub fn parse_and_verify(raw: &[u8]) -> Result<Self, EnvelopeError> {
        if raw.len() > MAX_ENVELOPE_BYTES {
            return Err(EnvelopeError::TooLarge {
                len: raw.len(),
                max: MAX_ENVELOPE_BYTES,
            });
        }
        if let Some(duplicate) = find_duplicate_key(raw) {
            return Err(EnvelopeError::DuplicateKey {
                which: "envelope",
                duplicate,
            });
        }
        let envelope: DsseEnvelope =
            serde_json::from_slice(raw).map_err(|e| EnvelopeError::MalformedJson(e.to_string()))?;
        if envelope.payload_type != COMMAND_PAYLOAD_TYPE {
            return Err(EnvelopeError::WrongPayloadType(envelope.payload_type));
        }
        let payload_bytes = B64
            .decode(envelope.payload.as_bytes())
            .map_err(|_| EnvelopeError::BadBase64 { field: "payload" })?;
        if let Some(duplicate) = find_duplicate_key(&payload_bytes) {
            return Err(EnvelopeError::DuplicateKey {
                which: "payload",
                duplicate,
            });
        }
        if envelope.signatures.len() != 1 {
            return Err(EnvelopeError::SignatureCount(envelope.signatures.len()));
        }
        let signature = B64
            .decode(envelope.signatures[0].sig.as_bytes())
            .map_err(|_| EnvelopeError::BadBase64 {
                field: "signatures[0].sig",
            })?;
        let payload = parse_payload(&payload_bytes)?;
        payload
            .signer
            .verify(&pae(COMMAND_PAYLOAD_TYPE, &payload_bytes), &signature)
            .map_err(EnvelopeError::BadSignature)?;
        let command_hash = Sha256::digest(&payload_bytes).into();
        Ok(Self {
            raw: raw.to_vec(),
            payload_bytes,
            command_hash,
            payload,
        })
    }
}

/// The payload's outer fields but the signer, which [`parse_payload`] takes out first so that it
/// goes through the key rule exactly once.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PayloadWithoutSigner {
    v: u64,
    #[serde(rename = "type")]
    command_type: String,
    region: RegionId,
    nonce: String,
    body: serde_json::Value,
}

fn parse_payload(payload_bytes: &[u8]) -> Result<CommandPayload, EnvelopeError> {
    // The signer is parsed with the full key rule; report a bad key as such, not as bad JSON.
    let mut value: serde_json::Value = serde_json::from_slice(payload_bytes)
        .map_err(|e| EnvelopeError::MalformedCommand(format!("payload is not JSON: {e}")))?;
    let signer = match value.get("signer").and_then(|s| s.as_str()) {
        Some(signer) => Some(PublicKey::from_base64(signer).map_err(EnvelopeError::BadSignerKey)?),
        None => None,
    };
    if let Some(v) = value.get("v").and_then(|v| v.as_u64()) {
        if v != u64::from(COMMAND_FORMAT_VERSION) {
            return Err(EnvelopeError::UnsupportedVersion(v));
        }
    }
    let signer_field = value
        .as_object_mut()
        .and_then(|fields| fields.remove("signer"));
    let rest: PayloadWithoutSigner = serde_json::from_value(value)
        .map_err(|e| EnvelopeError::MalformedCommand(e.to_string()))?;
    let signer = match (signer, signer_field) {
        (Some(signer), _) => signer,
        (None, None) => {
            return Err(EnvelopeError::MalformedCommand(
                "missing field `signer`".into(),
            ))
        }
        (None, Some(_)) => {
            return Err(EnvelopeError::MalformedCommand(
                "field `signer` must be a string".into(),
            ))
        }
    };
    let payload = CommandPayload {
        v: rest.v,
        command_type: rest.command_type,
        region: rest.region,
        signer,
        nonce: rest.nonce,
        body: rest.body,
    };
    let nonce_len = payload.nonce.len();
    if !(MIN_NONCE_BYTES..=MAX_NONCE_BYTES).contains(&nonce_len) {
        return Err(EnvelopeError::MalformedCommand(format!(
            "nonce is {nonce_len} bytes; it must be {MIN_NONCE_BYTES} to {MAX_NONCE_BYTES}"
        )));
    }
    if let Err(e) = vledger_domain::text::check_no_control_or_bidi(&payload.nonce) {
        return Err(EnvelopeError::MalformedCommand(format!("nonce {e}")));
    }
    if payload.command_type.is_empty() || payload.command_type.len() > MAX_COMMAND_TYPE_BYTES {
        return Err(EnvelopeError::MalformedCommand(format!(
            "type must be 1 to {MAX_COMMAND_TYPE_BYTES} bytes"
        )));
    }
    vledger_tlog::self_check!(payload.region.as_str().len() <= MAX_REGION_ID_BYTES);
    Ok(payload)
}

/// Builds and signs an envelope for a payload; used by clients, tests and the node's own commands.
pub fn seal(payload: &CommandPayload, key: &vledger_tlog::keys::SigningKey) -> Vec<u8> {
    let payload_bytes = serde_json::to_vec(payload).expect("payload serializes");
    let signature = key.sign(&pae(COMMAND_PAYLOAD_TYPE, &payload_bytes));
    let envelope = DsseEnvelope {
        payload_type: COMMAND_PAYLOAD_TYPE.to_string(),
        payload: B64.encode(&payload_bytes),
        signatures: vec![DsseSignature {
            keyid: Some(key.public_key().to_base64()),
            sig: B64.encode(signature),
        }],
    };
    serde_json::to_vec(&envelope).expect("envelope serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use vledger_tlog::keys::{full_key_checks, SigningKey};

    #[test]
    fn the_signer_goes_through_the_key_rule_exactly_once() {
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        let payload = CommandPayload {
            v: u64::from(COMMAND_FORMAT_VERSION),
            command_type: "party.register".into(),
            region: "cq".try_into().unwrap(),
            signer: key.public_key(),
            nonce: "n-000000000001".into(),
            body: serde_json::json!({}),
        };
        let raw = seal(&payload, &key);
        let before = full_key_checks();
        let verified = VerifiedEnvelope::parse_and_verify(&raw).unwrap();
        assert_eq!(full_key_checks() - before, 1);
        assert_eq!(verified.payload, payload);
    }

    /// An envelope over the payload text `payload`, signed by `key`.
    fn sealed_bytes(payload: &str, key: &SigningKey) -> Vec<u8> {
        let signature = key.sign(&pae(COMMAND_PAYLOAD_TYPE, payload.as_bytes()));
        serde_json::to_vec(&DsseEnvelope {
            payload_type: COMMAND_PAYLOAD_TYPE.into(),
            payload: B64.encode(payload),
            signatures: vec![DsseSignature {
                keyid: None,
                sig: B64.encode(signature),
            }],
        })
        .unwrap()
    }

    #[test]
    fn a_repeated_key_anywhere_is_refused_before_the_signature_is_checked() {
        let key = SigningKey::from_bytes(&[5; 32]);
        let admin = SigningKey::from_bytes(&[6; 32]).public_key().to_base64();
        let signer = key.public_key().to_base64();
        let fields = |middle: &str| {
            format!(r#"{{"v":1,"type":"party.register","region":"cq","nonce":"n-1",{middle}}}"#)
        };
        let cases = [
            (
                fields(&format!(
                    r#""signer":"{admin}","body":{{}},"signer":"{signer}""#
                )),
                "",
                "signer",
            ),
            (
                fields(&format!(
                    r#""signer":"{signer}","body":{{"a":1}},"body":{{"b":2}}"#
                )),
                "",
                "body",
            ),
            (
                fields(&format!(
                    r#""signer":"{signer}","body":{{"name":"a","name":"b"}}"#
                )),
                "/body",
                "name",
            ),
            (
                format!(
                    r#"{{"v":1,"type":"x","type":"party.register","region":"cq","nonce":"n","signer":"{signer}","body":{{}}}}"#
                ),
                "",
                "type",
            ),
        ];
        for (payload, pointer, key_name) in cases {
            match VerifiedEnvelope::parse_and_verify(&sealed_bytes(&payload, &key)) {
                Err(EnvelopeError::DuplicateKey { which, duplicate }) => {
                    assert_eq!(which, "payload");
                    assert_eq!(
                        (duplicate.pointer.as_str(), duplicate.key.as_str()),
                        (pointer, key_name)
                    );
                }
                other => panic!("{payload}: {other:?}"),
            }
        }
        // The same payloads without the repetition are accepted (the test is not vacuous).
        let fine = fields(&format!(r#""signer":"{signer}","body":{{"name":"a"}}"#));
        assert!(VerifiedEnvelope::parse_and_verify(&sealed_bytes(&fine, &key)).is_ok());
        // A repeated key of the envelope itself.
        let mut raw = sealed_bytes(&fine, &key);
        raw.pop();
        raw.extend_from_slice(br#","payloadType":"text/plain"}"#);
        assert!(matches!(
            VerifiedEnvelope::parse_and_verify(&raw),
            Err(EnvelopeError::DuplicateKey {
                which: "envelope",
                ..
            })
        ));
    }

    #[test]
    fn nonces_carry_no_control_or_bidirectional_formatting_character() {
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        let sealed = |nonce: &str| {
            let payload = CommandPayload {
                v: u64::from(COMMAND_FORMAT_VERSION),
                command_type: "party.register".into(),
                region: "cq".try_into().unwrap(),
                signer: key.public_key(),
                nonce: nonce.into(),
                body: serde_json::json!({}),
            };
            VerifiedEnvelope::parse_and_verify(&seal(&payload, &key))
        };
        for nonce in ["n-1", "批次-1", "2026-01-01T00:00:00Z#1"] {
            assert!(sealed(nonce).is_ok(), "{nonce:?}");
        }
        for nonce in [
            "\0",
            "n\0",
            "n\n1",
            "\u{1B}[2J",
            "n\u{202E}1",
            "n\u{2066}",
            "\u{200F}",
        ] {
            assert!(
                matches!(sealed(nonce), Err(EnvelopeError::MalformedCommand(m)) if m.starts_with("nonce contains")),
                "{nonce:?}"
            );
        }
    }
}
