//! C2SP signed notes (<https://c2sp.org/signed-note>) and transparency-log checkpoints
//! (<https://c2sp.org/tlog-checkpoint>), with Ed25519 keys only.
//!
//! # Signed note format
//!
//! ```text
//! <text line>\n            one or more non-empty lines, each ending in '\n'
//! ...
//! \n                       one blank line
//! — <name> <base64(key ID || signature)>\n      one or more signature lines
//! ```
//!
//! * The signature line starts with U+2014 EM DASH followed by one space.
//! * The signature covers the note text including its final newline (not the blank line).
//! * Key ID = the first 4 bytes of SHA-256(name || 0x0A || 0x01 || 32-byte public key);
//!   0x01 is the signed-note signature type of Ed25519.
//! * A verifier key is written `<name>+<8 lowercase hex digits of key ID>+<base64(0x01 ||
//!   public key)>`, the format of Go's `golang.org/x/mod/sumdb/note`.
//! * Key names are non-empty and contain neither `+` nor Unicode white space (nor, since
//!   notes may not contain them, ASCII control characters).
//! * A note is valid UTF-8 without ASCII control characters other than newline, is at most
//!   [`MAX_NOTE_BYTES`] long and carries at most [`MAX_NOTE_SIGNATURES`] signature lines.
//!
//! The note text accepted here is slightly stricter than the specification, which lets a
//! text contain empty lines: this module refuses empty lines in the text (checkpoints never
//! have any), so every note it accepts is also accepted by Go's `note.Open`.
//!
//! Public keys go through the ledger's key rule ([`PublicKey::from_bytes`]) and signatures
//! through the ledger's signature rule ([`PublicKey::verify`]); see [`crate::keys`].
//!
//! # Verification semantics
//!
//! Signatures whose key name and key ID do not both match a known verifier are ignored, as
//! the specification requires. Every signature line that matches a known verifier must
//! verify, otherwise the whole note is rejected; at least one must verify.
//!
//! # Checkpoints
//!
//! A checkpoint is the text of a signed note: origin line, tree size in decimal (no leading
//! zeros), standard base64 of the 32-byte root hash, then optional non-empty extension
//! lines. Verify the note first, then parse its text:
//!
//! ```
//! use vledger_tlog::note::{Checkpoint, NoteError, NoteVerifier, SignedNote};
//!
//! fn read_checkpoint(signed: &str, log: &NoteVerifier) -> Result<Checkpoint, NoteError> {
//!     let note = SignedNote::parse(signed)?;
//!     note.verify(std::slice::from_ref(log))?;
//!     Checkpoint::parse(&note.text)
//! }
//! ```

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use sha2::{Digest as _, Sha256};

use crate::keys::{KeyError, PublicKey, SigningKey, PUBLIC_KEY_LEN};

pub use crate::limits::MAX_NOTE_BYTES;

pub use crate::limits::MAX_NOTE_SIGNATURES;

/// The signed-note signature type byte of Ed25519.
pub const ED25519_SIGNATURE_TYPE: u8 = 0x01;

/// Prefix of a signature line: U+2014 EM DASH and a space.
const SIG_PREFIX: &str = "\u{2014} ";

/// Why a note, verifier key, signer or checkpoint is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// The note (or checkpoint text) is larger than [`MAX_NOTE_BYTES`].
    #[error("note is {len} bytes long, more than the maximum of {max}")]
    TooLarge {
        /// Size of the input or of the note that would be produced.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The note has (or would have) more than [`MAX_NOTE_SIGNATURES`] signature lines.
    #[error("note has more than {max} signature lines")]
    TooManySignatures {
        /// The limit.
        max: usize,
    },
    /// The note contains an ASCII control character other than newline.
    #[error("note contains ASCII control character 0x{byte:02x} at byte offset {offset}")]
    ControlCharacter {
        /// The offending byte.
        byte: u8,
        /// Its byte offset in the input.
        offset: usize,
    },
    /// The note text is empty.
    #[error("note text is empty")]
    EmptyText,
    /// The note text does not end with a newline.
    #[error("note text does not end with a newline")]
    TextNotNewlineTerminated,
    /// The note text contains an empty line.
    #[error("note text contains an empty line")]
    EmptyLineInText,
    /// There is no blank line separating the text from the signatures.
    #[error("note has no blank line separating the text from the signature lines")]
    MissingBlankLine,
    /// There are no signature lines after the blank line.
    #[error("note has no signature lines")]
    NoSignatures,
    /// The last signature line does not end with a newline.
    #[error("the last signature line does not end with a newline")]
    UnterminatedSignatureLine,
    /// A signature line does not start with an em dash (U+2014) and a space.
    #[error("signature line {line} does not start with an em dash (U+2014) followed by a space")]
    MissingEmDash {
        /// 1-based number of the signature line.
        line: usize,
    },
    /// A signature line has no space between the key name and the signature.
    #[error("signature line {line} is not of the form '— <key name> <base64 signature>'")]
    MalformedSignatureLine {
        /// 1-based number of the signature line.
        line: usize,
    },
    /// A key name is empty or contains '+', white space or a control character.
    #[error("invalid key name {name:?}: must be non-empty without '+', white space or control characters")]
    InvalidKeyName {
        /// The refused name.
        name: String,
    },
    /// The signature of a signature line is not valid standard base64.
    #[error("signature line {line}: signature is not valid standard base64")]
    SignatureBase64 {
        /// 1-based number of the signature line.
        line: usize,
    },
    /// The signature of a signature line is shorter than a key ID and one byte.
    #[error("signature line {line}: signature is {len} bytes, too short to hold a key ID and a signature")]
    SignatureTooShort {
        /// 1-based number of the signature line.
        line: usize,
        /// Decoded length.
        len: usize,
    },
    /// A verifier key string is not `<name>+<8 hex digits>+<base64>`.
    #[error("malformed verifier key: {reason}")]
    MalformedVerifierKey {
        /// What is wrong.
        reason: &'static str,
    },
    /// A verifier key uses a signature type other than Ed25519 (0x01).
    #[error(
        "unsupported signature type 0x{alg:02x} in verifier key (only Ed25519, 0x01, is supported)"
    )]
    UnsupportedAlgorithm {
        /// The signature type byte found.
        alg: u8,
    },
    /// The key ID written in a verifier key is not the one computed from its name and key.
    #[error("verifier key for {name:?} states key ID {} but its name and key give {}", hex::encode(.stated), hex::encode(.computed))]
    KeyIdMismatch {
        /// Key name.
        name: String,
        /// Key ID written in the verifier key.
        stated: [u8; 4],
        /// Key ID computed from the name and key.
        computed: [u8; 4],
    },
    /// The public key violates the ledger's key rule.
    #[error("invalid public key: {0}")]
    Key(#[from] KeyError),
    /// Two different known keys share the same name and key ID.
    #[error("ambiguous verifiers: several different keys are known as {name}+{}", hex::encode(.key_id))]
    AmbiguousVerifier {
        /// Key name.
        name: String,
        /// Key ID.
        key_id: [u8; 4],
    },
    /// A signature by a known key does not verify.
    #[error("invalid signature by known key {name}+{}", hex::encode(.key_id))]
    InvalidSignature {
        /// Key name.
        name: String,
        /// Key ID.
        key_id: [u8; 4],
    },
    /// No signature by a known key was found.
    #[error("note has no signature by a known key")]
    NoVerifiedSignature,
    /// The note already carries a signature line with this signer's name and key ID.
    #[error("note is already signed by {name}+{}", hex::encode(.key_id))]
    AlreadySigned {
        /// Key name.
        name: String,
        /// Key ID.
        key_id: [u8; 4],
    },
    /// A checkpoint text has fewer than three lines.
    #[error(
        "checkpoint has {lines} line(s), at least 3 (origin, tree size, root hash) are required"
    )]
    CheckpointTooShort {
        /// Number of lines found.
        lines: usize,
    },
    /// The tree size line is not a decimal u64 without leading zeros.
    #[error("invalid checkpoint tree size {value:?}: must be a decimal integer without sign or leading zeros that fits in 64 bits")]
    InvalidTreeSize {
        /// The refused line.
        value: String,
    },
    /// The root hash line is not the standard base64 encoding of 32 bytes.
    #[error("invalid checkpoint root hash {value:?}: must be standard base64 of 32 bytes")]
    InvalidRootHash {
        /// The refused line.
        value: String,
    },
}

/// Checks a key name: non-empty, no '+', no Unicode white space, no control characters.
fn check_name(name: &str) -> Result<(), NoteError> {
    if name.is_empty()
        || name
            .chars()
            .any(|c| c == '+' || c.is_whitespace() || c.is_control())
    {
        return Err(NoteError::InvalidKeyName {
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// Refuses ASCII control characters other than newline.
fn check_controls(s: &str) -> Result<(), NoteError> {
    match s.bytes().enumerate().find(|&(_, b)| b < 0x20 && b != b'\n') {
        Some((offset, byte)) => Err(NoteError::ControlCharacter { byte, offset }),
        None => Ok(()),
    }
}

/// Checks a note text: one or more non-empty lines, each ending in '\n', no control
/// characters other than newline.
fn check_text(text: &str) -> Result<(), NoteError> {
    if text.is_empty() {
        return Err(NoteError::EmptyText);
    }
    check_controls(text)?;
    if !text.ends_with('\n') {
        return Err(NoteError::TextNotNewlineTerminated);
    }
    if text.starts_with('\n') || text.contains("\n\n") {
        return Err(NoteError::EmptyLineInText);
    }
    Ok(())
}

/// The key ID of an Ed25519 key: SHA-256(name || 0x0A || 0x01 || key)[..4].
fn compute_key_id(name: &str, key: &PublicKey) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', ED25519_SIGNATURE_TYPE]);
    h.update(key.as_bytes());
    let sum = h.finalize();
    [sum[0], sum[1], sum[2], sum[3]]
}

fn signature_line(name: &str, key_id: &[u8; 4], signature: &[u8]) -> String {
    let mut raw = Vec::with_capacity(4 + signature.len());
    raw.extend_from_slice(key_id);
    raw.extend_from_slice(signature);
    format!("{SIG_PREFIX}{name} {}\n", STANDARD.encode(raw))
}

/// A known note signer: a key name and an Ed25519 public key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NoteVerifier {
    /// Key name (for a log, conventionally its origin, e.g. `example.com/log`).
    pub name: String,
    /// The public key.
    pub key: PublicKey,
}

impl NoteVerifier {
    /// Builds a verifier, checking the key name.
    pub fn new(name: impl Into<String>, key: PublicKey) -> Result<Self, NoteError> {
        let name = name.into();
        check_name(&name)?;
        Ok(NoteVerifier { name, key })
    }

    /// The 4-byte key ID: SHA-256(name || 0x0A || 0x01 || public key)[..4].
    pub fn key_id(&self) -> [u8; 4] {
        compute_key_id(&self.name, &self.key)
    }

    /// The verifier key string `<name>+<8 hex digits of key ID>+<base64(0x01 || key)>`.
    pub fn to_verifier_key(&self) -> String {
        let mut raw = Vec::with_capacity(1 + PUBLIC_KEY_LEN);
        raw.push(ED25519_SIGNATURE_TYPE);
        raw.extend_from_slice(self.key.as_bytes());
        format!(
            "{}+{}+{}",
            self.name,
            hex::encode(self.key_id()),
            STANDARD.encode(raw)
        )
    }

    /// Parses a verifier key string `<name>+<8 hex digits>+<base64(0x01 || key)>`,
    /// checking the name, the signature type, the ledger's key rule and the key ID.
    pub fn parse(verifier_key: &str) -> Result<Self, NoteError> {
        let (name, rest) = verifier_key
            .split_once('+')
            .ok_or(NoteError::MalformedVerifierKey {
                reason: "expected <name>+<key ID>+<key>",
            })?;
        let (id_hex, key_b64) = rest
            .split_once('+')
            .ok_or(NoteError::MalformedVerifierKey {
                reason: "expected <name>+<key ID>+<key>",
            })?;
        check_name(name)?;
        if id_hex.len() != 8 || !id_hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(NoteError::MalformedVerifierKey {
                reason: "key ID must be 8 hexadecimal digits",
            });
        }
        let mut stated = [0u8; 4];
        hex::decode_to_slice(id_hex, &mut stated).map_err(|_| NoteError::MalformedVerifierKey {
            reason: "key ID must be 8 hexadecimal digits",
        })?;
        let raw = STANDARD
            .decode(key_b64)
            .map_err(|_| NoteError::MalformedVerifierKey {
                reason: "key is not valid standard base64",
            })?;
        let (&alg, key) = raw.split_first().ok_or(NoteError::MalformedVerifierKey {
            reason: "key is empty",
        })?;
        if alg != ED25519_SIGNATURE_TYPE {
            return Err(NoteError::UnsupportedAlgorithm { alg });
        }
        let key = PublicKey::from_bytes(key)?;
        let v = NoteVerifier {
            name: name.to_owned(),
            key,
        };
        let computed = v.key_id();
        if computed != stated {
            return Err(NoteError::KeyIdMismatch {
                name: v.name,
                stated,
                computed,
            });
        }
        Ok(v)
    }
}

impl fmt::Display for NoteVerifier {
    /// Writes the verifier key string (see [`NoteVerifier::to_verifier_key`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_verifier_key())
    }
}

/// Signs notes with an Ed25519 key under a key name.
#[derive(Debug, Clone)]
pub struct NoteSigner {
    name: String,
    key: SigningKey,
}

impl NoteSigner {
    /// Builds a signer, checking the key name.
    pub fn new(name: impl Into<String>, key: SigningKey) -> Result<Self, NoteError> {
        let name = name.into();
        check_name(&name)?;
        Ok(NoteSigner { name, key })
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The verifier matching this signer.
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            key: self.key.public_key(),
        }
    }

    /// The signature line of this signer over `text` (no checks on `text`).
    fn line(&self, text: &str) -> (String, [u8; 4]) {
        let key_id = self.verifier().key_id();
        let sig = self.key.sign(text.as_bytes());
        (signature_line(&self.name, &key_id, &sig), key_id)
    }

    /// Signs `text` and returns the whole signed note: `text`, a blank line and one
    /// signature line.
    ///
    /// `text` must be one or more non-empty lines each ending in '\n', without control
    /// characters other than newline, and the result must fit in [`MAX_NOTE_BYTES`].
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        check_text(text)?;
        let (line, _) = self.line(text);
        let len = text.len() + 1 + line.len();
        if len > MAX_NOTE_BYTES {
            return Err(NoteError::TooLarge {
                len,
                max: MAX_NOTE_BYTES,
            });
        }
        let mut out = String::with_capacity(len);
        out.push_str(text);
        out.push('\n');
        out.push_str(&line);
        Ok(out)
    }

    /// Appends this signer's signature line to an already signed note (cosigning) and
    /// returns the new signed note; existing signature lines are kept unchanged.
    ///
    /// The note is only parsed, not verified: verify it before cosigning. Fails with
    /// [`NoteError::AlreadySigned`] if a line with this signer's name and key ID is
    /// present, and if the result would exceed the size or signature-count limits.
    pub fn add_signature(&self, signed_note: &str) -> Result<String, NoteError> {
        let mut note = SignedNote::parse(signed_note)?;
        let key_id = self.verifier().key_id();
        if note
            .signatures
            .iter()
            .any(|s| s.name == self.name && s.key_id == key_id)
        {
            return Err(NoteError::AlreadySigned {
                name: self.name.clone(),
                key_id,
            });
        }
        if note.signatures.len() >= MAX_NOTE_SIGNATURES {
            return Err(NoteError::TooManySignatures {
                max: MAX_NOTE_SIGNATURES,
            });
        }
        let sig = self.key.sign(note.text.as_bytes());
        note.signatures.push(NoteSignature {
            name: self.name.clone(),
            key_id,
            signature: sig.to_vec(),
        });
        let out = note.to_string();
        if out.len() > MAX_NOTE_BYTES {
            return Err(NoteError::TooLarge {
                len: out.len(),
                max: MAX_NOTE_BYTES,
            });
        }
        Ok(out)
    }
}

/// One signature line of a signed note, not yet verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    /// Key name.
    pub name: String,
    /// Key ID (first 4 bytes of the decoded signature).
    pub key_id: [u8; 4],
    /// The signature proper (the decoded bytes after the key ID). For Ed25519 it is 64
    /// bytes; other lengths are kept because signatures of unknown keys may use other
    /// algorithms, and they are ignored.
    pub signature: Vec<u8>,
}

/// A parsed signed note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedNote {
    /// The signed text, including its final newline.
    pub text: String,
    /// The signature lines in order of appearance.
    pub signatures: Vec<NoteSignature>,
}

impl SignedNote {
    /// Parses a signed note without verifying it.
    ///
    /// Rejects notes larger than [`MAX_NOTE_BYTES`], with more than
    /// [`MAX_NOTE_SIGNATURES`] signature lines, with control characters other than
    /// newline, whose text is empty or has empty lines, without the blank separator line,
    /// without signature lines, or with a malformed signature line.
    pub fn parse(signed_note: &str) -> Result<Self, NoteError> {
        if signed_note.len() > MAX_NOTE_BYTES {
            return Err(NoteError::TooLarge {
                len: signed_note.len(),
                max: MAX_NOTE_BYTES,
            });
        }
        check_controls(signed_note)?;
        let split = signed_note
            .rfind("\n\n")
            .ok_or(NoteError::MissingBlankLine)?;
        let (text, sigs) = (&signed_note[..split + 1], &signed_note[split + 2..]);
        check_text(text)?;
        if sigs.is_empty() {
            return Err(NoteError::NoSignatures);
        }
        let Some(sigs) = sigs.strip_suffix('\n') else {
            return Err(NoteError::UnterminatedSignatureLine);
        };

        let mut signatures = Vec::new();
        for (i, line) in sigs.split('\n').enumerate() {
            let line_no = i + 1;
            if line_no > MAX_NOTE_SIGNATURES {
                return Err(NoteError::TooManySignatures {
                    max: MAX_NOTE_SIGNATURES,
                });
            }
            let rest = line
                .strip_prefix(SIG_PREFIX)
                .ok_or(NoteError::MissingEmDash { line: line_no })?;
            let (name, b64) = rest
                .split_once(' ')
                .ok_or(NoteError::MalformedSignatureLine { line: line_no })?;
            check_name(name)?;
            let raw = STANDARD
                .decode(b64)
                .map_err(|_| NoteError::SignatureBase64 { line: line_no })?;
            if raw.len() < 5 {
                return Err(NoteError::SignatureTooShort {
                    line: line_no,
                    len: raw.len(),
                });
            }
            signatures.push(NoteSignature {
                name: name.to_owned(),
                key_id: [raw[0], raw[1], raw[2], raw[3]],
                signature: raw[4..].to_vec(),
            });
        }
        Ok(SignedNote {
            text: text.to_owned(),
            signatures,
        })
    }

    /// Verifies the note against the known `verifiers` and returns the names of the
    /// verifiers whose signature verified (each once, in order of first appearance).
    ///
    /// Signature lines whose name and key ID do not both match a known verifier are
    /// ignored. Every line that matches a known verifier must verify under the ledger's
    /// signature rule ([`NoteError::InvalidSignature`] otherwise). Fails with
    /// [`NoteError::NoVerifiedSignature`] if no known verifier signed the note, and with
    /// [`NoteError::AmbiguousVerifier`] if a signature matches two different known keys.
    pub fn verify(&self, verifiers: &[NoteVerifier]) -> Result<Vec<String>, NoteError> {
        let known: Vec<(&NoteVerifier, [u8; 4])> =
            verifiers.iter().map(|v| (v, v.key_id())).collect();
        let mut verified: Vec<String> = Vec::new();
        for sig in &self.signatures {
            let mut matching = known
                .iter()
                .filter(|(v, id)| v.name == sig.name && *id == sig.key_id)
                .map(|(v, _)| v.key);
            let Some(key) = matching.next() else {
                continue;
            };
            if matching.any(|other| other != key) {
                return Err(NoteError::AmbiguousVerifier {
                    name: sig.name.clone(),
                    key_id: sig.key_id,
                });
            }
            if key.verify(self.text.as_bytes(), &sig.signature).is_err() {
                return Err(NoteError::InvalidSignature {
                    name: sig.name.clone(),
                    key_id: sig.key_id,
                });
            }
            if !verified.contains(&sig.name) {
                verified.push(sig.name.clone());
            }
        }
        if verified.is_empty() {
            return Err(NoteError::NoVerifiedSignature);
        }
        Ok(verified)
    }
}

impl fmt::Display for SignedNote {
    /// Writes the note in signed-note format: text, blank line, signature lines.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)?;
        f.write_str("\n")?;
        for s in &self.signatures {
            f.write_str(&signature_line(&s.name, &s.key_id, &s.signature))?;
        }
        Ok(())
    }
}

/// A transparency-log checkpoint (the text of a signed note).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Checkpoint {
    /// Origin: the unique identity of the log (non-empty, one line).
    pub origin: String,
    /// Tree size: number of leaves.
    pub size: u64,
    /// RFC 6962 Merkle tree root hash at `size`.
    pub root_hash: [u8; 32],
    /// Optional extension lines (each non-empty, one line, without the newline).
    pub extensions: Vec<String>,
}

impl Checkpoint {
    /// The checkpoint as note text: origin, size and base64 root hash lines, then the
    /// extension lines, each ending in '\n'.
    ///
    /// The result is only a valid note text if `origin` and every extension are non-empty
    /// and contain no newline or other control character; [`NoteSigner::sign`] refuses it
    /// otherwise.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root_hash)
        );
        for ext in &self.extensions {
            out.push_str(ext);
            out.push('\n');
        }
        out
    }

    /// Parses a checkpoint from a note text (for example [`SignedNote::text`]).
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        if text.len() > MAX_NOTE_BYTES {
            return Err(NoteError::TooLarge {
                len: text.len(),
                max: MAX_NOTE_BYTES,
            });
        }
        check_text(text)?;
        let lines: Vec<&str> = text[..text.len() - 1].split('\n').collect();
        if lines.len() < 3 {
            return Err(NoteError::CheckpointTooShort { lines: lines.len() });
        }
        let size_line = lines[1];
        let size = if size_line.bytes().all(|b| b.is_ascii_digit())
            && (size_line == "0" || !size_line.starts_with('0'))
        {
            size_line.parse::<u64>().ok()
        } else {
            None
        }
        .ok_or_else(|| NoteError::InvalidTreeSize {
            value: size_line.to_owned(),
        })?;
        let root_hash: [u8; 32] = STANDARD
            .decode(lines[2])
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| NoteError::InvalidRootHash {
                value: lines[2].to_owned(),
            })?;
        Ok(Checkpoint {
            origin: lines[0].to_owned(),
            size,
            root_hash,
            extensions: lines[3..].iter().map(|s| (*s).to_owned()).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh_signer(name: &str) -> NoteSigner {
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        NoteSigner::new(name, key).unwrap()
    }

    // Example key pair, note and cosignature from Go's golang.org/x/mod/sumdb/note
    // (package documentation in note.go, and TestSign / TestOpen in note_test.go).
    const GO_SKEY: &str =
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const GO_PETER_VKEY: &str =
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const GO_ENOCH_VKEY: &str = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
    const GO_TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                           then you don't know what your problem is.\n";
    const GO_PETER_SIG: &str = "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
    const GO_ENOCH_SIG: &str = "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";

    // A sum.golang.org checkpoint and the Go checksum database's verifier key, from
    // github.com/transparency-dev/formats, log/note_test.go (TestSumDBNoteParsing).
    const SUMDB_VKEY: &str = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8";
    const SUMDB_NOTE: &str = "go.sum database tree\n\
                              6476701\n\
                              mb8QLQIs0Z0yP5Cstq6guj87oXWeC9gEM8oVikmm9Wk=\n\
                              \n\
                              — sum.golang.org Az3grsLX85Gz+s1SiTbgkuqxgItqFq7gsMUEyVnrsa9LM7Us9S+1xbFIGu95949rj4nPRYfvimWEPWL+o3GeoWwOoAw=\n";

    fn go_signer() -> NoteSigner {
        // Go's signer key: PRIVATE+KEY+<name>+<key ID>+base64(0x01 || 32-byte seed).
        let b64 = GO_SKEY.splitn(5, '+').nth(4).unwrap();
        let raw = STANDARD.decode(b64).unwrap();
        assert_eq!(raw[0], ED25519_SIGNATURE_TYPE);
        let seed: [u8; 32] = raw[1..].try_into().unwrap();
        NoteSigner::new("PeterNeumann", SigningKey::from_bytes(&seed)).unwrap()
    }

    #[test]
    fn go_vectors_verify() {
        let peter = NoteVerifier::parse(GO_PETER_VKEY).unwrap();
        let enoch = NoteVerifier::parse(GO_ENOCH_VKEY).unwrap();
        assert_eq!(peter.to_verifier_key(), GO_PETER_VKEY);
        assert_eq!(enoch.to_verifier_key(), GO_ENOCH_VKEY);
        assert_eq!(peter.key_id(), [0xc7, 0x4f, 0x20, 0xa3]);

        let msg = format!("{GO_TEXT}\n{GO_PETER_SIG}{GO_ENOCH_SIG}");
        let note = SignedNote::parse(&msg).unwrap();
        assert_eq!(note.text, GO_TEXT);
        assert_eq!(note.signatures.len(), 2);
        assert_eq!(note.to_string(), msg);
        // One known verifier: Enoch's signature is ignored.
        assert_eq!(
            note.verify(std::slice::from_ref(&peter)).unwrap(),
            ["PeterNeumann"]
        );
        assert_eq!(
            note.verify(&[enoch.clone(), peter.clone()]).unwrap(),
            ["PeterNeumann", "EnochRoot"]
        );
        assert_eq!(note.verify(&[]), Err(NoteError::NoVerifiedSignature));
        // Identical duplicate verifiers are harmless.
        assert!(note.verify(&[peter.clone(), peter.clone()]).is_ok());
    }

    #[test]
    fn go_signing_matches_byte_for_byte() {
        let signer = go_signer();
        assert_eq!(signer.verifier().to_verifier_key(), GO_PETER_VKEY);
        let signed = signer.sign(GO_TEXT).unwrap();
        assert_eq!(signed, format!("{GO_TEXT}\n{GO_PETER_SIG}"));
    }

    #[test]
    fn sumdb_checkpoint_verifies() {
        let v = NoteVerifier::parse(SUMDB_VKEY).unwrap();
        assert_eq!(v.to_verifier_key(), SUMDB_VKEY);
        let note = SignedNote::parse(SUMDB_NOTE).unwrap();
        assert_eq!(note.verify(&[v]).unwrap(), ["sum.golang.org"]);
        let cp = Checkpoint::parse(&note.text).unwrap();
        assert_eq!(cp.origin, "go.sum database tree");
        assert_eq!(cp.size, 6476701);
        assert!(cp.extensions.is_empty());
        assert_eq!(cp.to_text(), note.text);
    }

    #[test]
    fn round_trip_and_cosign() {
        let log = fresh_signer("example.com/log");
        let witness = fresh_signer("witness.example/w1");
        let cp = Checkpoint {
            origin: "example.com/log".into(),
            size: 42,
            root_hash: [7u8; 32],
            extensions: vec!["ext one".into()],
        };
        let text = cp.to_text();
        let signed = log.sign(&text).unwrap();
        let note = SignedNote::parse(&signed).unwrap();
        assert_eq!(note.text, text);
        assert_eq!(note.verify(&[log.verifier()]).unwrap(), ["example.com/log"]);
        assert_eq!(Checkpoint::parse(&note.text).unwrap(), cp);

        // Verifier keys round-trip.
        let vk = log.verifier().to_verifier_key();
        assert_eq!(NoteVerifier::parse(&vk).unwrap(), log.verifier());

        // Cosigning appends a line; both verify; the log alone still verifies.
        let cosigned = witness.add_signature(&signed).unwrap();
        assert!(cosigned.starts_with(&signed));
        let note2 = SignedNote::parse(&cosigned).unwrap();
        assert_eq!(
            note2.verify(&[witness.verifier(), log.verifier()]).unwrap(),
            ["example.com/log", "witness.example/w1"]
        );
        assert_eq!(
            note2.verify(&[log.verifier()]).unwrap(),
            ["example.com/log"]
        );
        assert_eq!(
            witness.add_signature(&cosigned),
            Err(NoteError::AlreadySigned {
                name: witness.name().into(),
                key_id: witness.verifier().key_id()
            })
        );
    }

    #[test]
    fn tampered_text_is_rejected() {
        let s = fresh_signer("log");
        let signed = s.sign("hello\nworld\n").unwrap();
        let tampered = signed.replacen("world", "World", 1);
        let note = SignedNote::parse(&tampered).unwrap();
        assert_eq!(
            note.verify(&[s.verifier()]),
            Err(NoteError::InvalidSignature {
                name: "log".into(),
                key_id: s.verifier().key_id()
            })
        );
        // Go's note: a tampered signature is rejected.
        let peter = NoteVerifier::parse(GO_PETER_VKEY).unwrap();
        let bad = format!(
            "{GO_TEXT}\n{}ABCD{}",
            &GO_PETER_SIG[..60],
            &GO_PETER_SIG[60..]
        );
        assert!(matches!(
            SignedNote::parse(&bad).unwrap().verify(&[peter]),
            Err(NoteError::InvalidSignature { .. })
        ));
    }

    #[test]
    fn wrong_key_is_rejected() {
        let s = fresh_signer("log");
        let other = fresh_signer("log");
        let note = SignedNote::parse(&s.sign("hello\n").unwrap()).unwrap();
        // Same name, different key: different key ID, so the signature is ignored.
        assert_eq!(
            note.verify(&[other.verifier()]),
            Err(NoteError::NoVerifiedSignature)
        );
        // A verifier claiming the signer's name and key ID with another key (forged
        // verifier entry): the signature is checked and fails.
        let mut forged = note.clone();
        forged.signatures[0].key_id = other.verifier().key_id();
        assert!(matches!(
            forged.verify(&[other.verifier()]),
            Err(NoteError::InvalidSignature { .. })
        ));
    }

    #[test]
    fn bad_key_id_is_rejected() {
        let s = fresh_signer("log");
        let signed = s.sign("hello\n").unwrap();
        let mut note = SignedNote::parse(&signed).unwrap();
        note.signatures[0].key_id[0] ^= 1;
        // Re-encoded note with a wrong key ID: not a signature by a known key.
        let reparsed = SignedNote::parse(&note.to_string()).unwrap();
        assert_eq!(
            reparsed.verify(&[s.verifier()]),
            Err(NoteError::NoVerifiedSignature)
        );
        // Verifier key with a wrong key ID.
        let vk = s.verifier().to_verifier_key();
        let (name, rest) = vk.split_once('+').unwrap();
        let (_, key) = rest.split_once('+').unwrap();
        let mut id = s.verifier().key_id();
        id[3] ^= 1;
        assert_eq!(
            NoteVerifier::parse(&format!("{name}+{}+{key}", hex::encode(id))),
            Err(NoteError::KeyIdMismatch {
                name: "log".into(),
                stated: id,
                computed: s.verifier().key_id()
            })
        );
    }

    #[test]
    fn malformed_notes_are_rejected() {
        let s = fresh_signer("log");
        let signed = s.sign("hello\n").unwrap();
        let sig_line = signed.strip_prefix("hello\n\n").unwrap();

        // Missing blank line.
        assert_eq!(
            SignedNote::parse(&format!("hello\n{sig_line}")),
            Err(NoteError::MissingBlankLine)
        );
        // Signature line without the em dash (ASCII hyphen, en dash, double hyphen).
        for dash in ["-", "\u{2013}", "--"] {
            let bad = format!("hello\n\n{}", sig_line.replacen('\u{2014}', dash, 1));
            assert_eq!(
                SignedNote::parse(&bad),
                Err(NoteError::MissingEmDash { line: 1 }),
                "{dash}"
            );
        }
        // Em dash without the space.
        let bad = format!("hello\n\n{}", sig_line.replacen("\u{2014} ", "\u{2014}", 1));
        assert_eq!(
            SignedNote::parse(&bad),
            Err(NoteError::MissingEmDash { line: 1 })
        );
        // Text only, or text and blank line only.
        assert_eq!(
            SignedNote::parse("hello\n"),
            Err(NoteError::MissingBlankLine)
        );
        assert_eq!(SignedNote::parse("hello\n\n"), Err(NoteError::NoSignatures));
        // Unterminated last line.
        assert_eq!(
            SignedNote::parse(signed.trim_end_matches('\n')),
            Err(NoteError::UnterminatedSignatureLine)
        );
        // Empty text, empty line in text.
        assert_eq!(
            SignedNote::parse(&format!("\n\n{sig_line}")),
            Err(NoteError::EmptyLineInText)
        );
        assert_eq!(
            SignedNote::parse(&format!("a\n\nb\n\n{sig_line}")),
            Err(NoteError::EmptyLineInText)
        );
        // Control characters.
        assert_eq!(
            SignedNote::parse(&format!("he\rllo\n\n{sig_line}")),
            Err(NoteError::ControlCharacter {
                byte: b'\r',
                offset: 2
            })
        );
        // Trailing garbage line after the signatures.
        assert_eq!(
            SignedNote::parse(&format!("{signed}Unexpected line.\n")),
            Err(NoteError::MissingEmDash { line: 2 })
        );
        // Bad name, no space, bad base64, too short.
        assert!(matches!(
            SignedNote::parse("hello\n\n\u{2014} a+b AAAAAAA=\n"),
            Err(NoteError::InvalidKeyName { .. })
        ));
        assert_eq!(
            SignedNote::parse("hello\n\n\u{2014} name\n"),
            Err(NoteError::MalformedSignatureLine { line: 1 })
        );
        assert_eq!(
            SignedNote::parse("hello\n\n\u{2014} name !!!!\n"),
            Err(NoteError::SignatureBase64 { line: 1 })
        );
        assert_eq!(
            SignedNote::parse("hello\n\n\u{2014} name AAAAAA==\n"),
            Err(NoteError::SignatureTooShort { line: 1, len: 4 })
        );
        // The sample bad messages of Go's TestOpen are all refused.
        let go_bad = [
            GO_TEXT.to_string(),
            format!("{GO_TEXT}\n"),
            format!("{GO_TEXT}\n{}", &GO_PETER_SIG[..GO_PETER_SIG.len() - 1]),
            format!("\x01{GO_TEXT}\n{GO_PETER_SIG}"),
            format!("{GO_TEXT}\n\u{2014} Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="),
            format!("{GO_TEXT}\n{GO_PETER_SIG}Unexpected line.\n"),
        ];
        for m in &go_bad {
            assert!(SignedNote::parse(m).is_err(), "{m:?}");
        }
    }

    #[test]
    fn limits() {
        let s = fresh_signer("log");
        let signed = s.sign("hello\n").unwrap();
        let sig_line = signed.strip_prefix("hello\n\n").unwrap();
        let ok = format!("hello\n\n{}", sig_line.repeat(MAX_NOTE_SIGNATURES));
        let note = SignedNote::parse(&ok).unwrap();
        assert_eq!(note.verify(&[s.verifier()]).unwrap(), ["log"]);
        let too_many = format!("hello\n\n{}", sig_line.repeat(MAX_NOTE_SIGNATURES + 1));
        assert_eq!(
            SignedNote::parse(&too_many),
            Err(NoteError::TooManySignatures {
                max: MAX_NOTE_SIGNATURES
            })
        );
        let big_text = "x".repeat(MAX_NOTE_BYTES) + "\n";
        assert!(matches!(
            SignedNote::parse(&format!("{big_text}\n{sig_line}")),
            Err(NoteError::TooLarge { .. })
        ));
        assert!(matches!(s.sign(&big_text), Err(NoteError::TooLarge { .. })));
        // Many different signers: the 101st cosignature is refused.
        let mut note = ok;
        note = note.replace(sig_line, "");
        note.push_str(sig_line);
        for i in 1..MAX_NOTE_SIGNATURES {
            note = fresh_signer(&format!("w{i}")).add_signature(&note).unwrap();
        }
        assert_eq!(
            fresh_signer("last").add_signature(&note),
            Err(NoteError::TooManySignatures {
                max: MAX_NOTE_SIGNATURES
            })
        );
    }

    #[test]
    fn names_and_verifier_keys() {
        let key = SigningKey::from_bytes(&[1u8; 32]);
        for bad in [
            "",
            "a+b",
            "a b",
            "a\tb",
            "a\u{a0}b",
            "a\u{2003}b",
            "a\u{7}b",
        ] {
            assert!(
                matches!(
                    NoteSigner::new(bad, key.clone()),
                    Err(NoteError::InvalidKeyName { .. })
                ),
                "{bad:?}"
            );
        }
        assert!(NoteSigner::new("example.com/log-1", key.clone()).is_ok());
        assert!(NoteSigner::new("sum.golang.org", key).is_ok());

        // Mangled versions of Go's verifier key are refused (as in Go's TestNewVerifier).
        let b = GO_PETER_VKEY.as_bytes();
        for i in 0..b.len() {
            let mut m = b.to_vec();
            m[i] = m[i].wrapping_add(1);
            if let Ok(s) = std::str::from_utf8(&m) {
                assert!(NoteVerifier::parse(s).is_err(), "{s}");
            }
        }
        for i in 0..=b.len() {
            for j in i + 1..=b.len() {
                if i != 0 || j != b.len() {
                    let s = &GO_PETER_VKEY[i..j];
                    assert!(NoteVerifier::parse(s).is_err(), "{s}");
                }
            }
        }
        // Wrong length key and unknown algorithm, with adjusted key IDs (from Go's tests).
        assert!(NoteVerifier::parse(
            "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY=="
        )
        .is_err());
        assert_eq!(
            NoteVerifier::parse(
                "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
            ),
            Err(NoteError::UnsupportedAlgorithm { alg: 0x65 })
        );
        // A weak key is refused by the key rule.
        let mut raw = vec![ED25519_SIGNATURE_TYPE];
        raw.extend_from_slice(&[0u8; 32]);
        let mut h = Sha256::new();
        h.update(b"w\n");
        h.update(&raw);
        let id = &h.finalize()[..4];
        let vk = format!("w+{}+{}", hex::encode(id), STANDARD.encode(&raw));
        assert_eq!(
            NoteVerifier::parse(&vk),
            Err(NoteError::Key(KeyError::SmallOrder))
        );
    }

    #[test]
    fn same_name_different_keys_are_distinct() {
        let a = fresh_signer("log");
        let note = SignedNote::parse(&a.sign("hello\n").unwrap()).unwrap();
        let other = NoteVerifier::new("log", fresh_signer("x").verifier().key).unwrap();
        assert_ne!(other.key_id(), a.verifier().key_id());
        assert_eq!(
            note.verify(&[other.clone(), a.verifier()]).unwrap(),
            ["log"]
        );
        assert_eq!(note.verify(&[other]), Err(NoteError::NoVerifiedSignature));
    }

    #[test]
    fn checkpoints() {
        let root = STANDARD.encode([9u8; 32]);
        let cp = Checkpoint::parse(&format!("origin\n0\n{root}\n")).unwrap();
        assert_eq!(cp.size, 0);
        let cp = Checkpoint::parse(&format!("o\n18446744073709551615\n{root}\na\nb\n")).unwrap();
        assert_eq!(cp.size, u64::MAX);
        assert_eq!(cp.extensions, ["a", "b"]);

        for size in [
            "01",
            "00",
            "",
            "+1",
            "-1",
            " 1",
            "1 ",
            "0x10",
            "18446744073709551616",
            "1e3",
        ] {
            let text = format!("origin\n{size}\n{root}\n");
            let err = Checkpoint::parse(&text).unwrap_err();
            assert!(
                matches!(
                    err,
                    NoteError::InvalidTreeSize { .. } | NoteError::EmptyLineInText
                ),
                "{size:?}: {err:?}"
            );
        }
        assert_eq!(
            Checkpoint::parse(&format!("origin\n01\n{root}\n")),
            Err(NoteError::InvalidTreeSize { value: "01".into() })
        );
        for bad_root in [
            STANDARD.encode([9u8; 31]),
            STANDARD.encode([9u8; 33]),
            STANDARD.encode([9u8; 32]).trim_end_matches('=').to_string(),
            "not base64!".to_string(),
        ] {
            assert_eq!(
                Checkpoint::parse(&format!("origin\n1\n{bad_root}\n")),
                Err(NoteError::InvalidRootHash {
                    value: bad_root.clone()
                }),
                "{bad_root}"
            );
        }
        assert_eq!(
            Checkpoint::parse("origin\n1\n"),
            Err(NoteError::CheckpointTooShort { lines: 2 })
        );
        assert_eq!(
            Checkpoint::parse(&format!("origin\n1\n{root}")),
            Err(NoteError::TextNotNewlineTerminated)
        );
        assert_eq!(
            Checkpoint::parse(&format!("\n1\n{root}\n")),
            Err(NoteError::EmptyLineInText)
        );
        assert_eq!(
            Checkpoint::parse(&format!("o\n1\n{root}\n\next\n")),
            Err(NoteError::EmptyLineInText)
        );
    }

    #[test]
    fn error_messages_are_useful() {
        let e = NoteError::InvalidSignature {
            name: "log".into(),
            key_id: [0xc7, 0x4f, 0x20, 0xa3],
        };
        assert_eq!(e.to_string(), "invalid signature by known key log+c74f20a3");
        let e = NoteError::MissingEmDash { line: 2 };
        assert!(e.to_string().contains("U+2014"));
    }
}
