//! The archive: a self-contained, versioned, streaming export of one node's log (entries,
//! checkpoints and the node's key) that a regulator verifies offline (docs/FORMAT.md,
//! "Archives").
//!
//! One file of newline-delimited JSON: a header line, then one line per entry in index order,
//! each checkpoint right after the entry that completes its tree size, and a trailer line.
//! [`ArchiveWriter`] writes it line by line and [`ArchiveReader`] reads it line by line, so
//! neither holds more than one line in memory.

use std::io::{BufRead, Write};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};

use vledger_tlog::unique_keys::find_duplicate_key;

/// The `format` field of an archive header.
pub const ARCHIVE_FORMAT: &str = "vledger-archive";
/// The archive format version this code writes and reads.
pub const ARCHIVE_VERSION: u32 = 1;
pub use vledger_domain::limits::MAX_ARCHIVE_LINE_BYTES;

/// The first line of an archive: which log it is and who signs its checkpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveHeader {
    /// Always [`ARCHIVE_FORMAT`].
    pub format: String,
    /// Always [`ARCHIVE_VERSION`].
    pub version: u32,
    /// The checkpoint origin (the log's name).
    pub origin: String,
    /// The region the node serves.
    pub region: String,
    /// The node's key as a C2SP verifier key (`name+id+base64`): it signs every checkpoint and
    /// the genesis entry.
    pub node_key: String,
    /// The number of entries the exporter meant to write.
    pub tree_size: u64,
    /// When the archive was made, ms since the Unix epoch (informative).
    pub exported_at_ms: u64,
}

impl ArchiveHeader {
    /// A header of the current format and version.
    pub fn new(origin: &str, region: &str, node_key: &str, tree_size: u64, now_ms: u64) -> Self {
        Self {
            format: ARCHIVE_FORMAT.into(),
            version: ARCHIVE_VERSION,
            origin: origin.into(),
            region: region.into(),
            node_key: node_key.into(),
            tree_size,
            exported_at_ms: now_ms,
        }
    }
}

/// One line after the header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ArchiveLine {
    /// One entry: its index and its canonical bytes in standard base64.
    Entry { index: u64, entry: String },
    /// One signed checkpoint note, as the node signed it.
    Checkpoint { size: u64, note: String },
    /// The last line: how many entries and checkpoints precede it, and, when the archive was
    /// made from a data directory, the digest of the node's stored state (see
    /// [`crate::replay::state_digest`]) in standard base64.
    End {
        entries: u64,
        checkpoints: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        state_digest: Option<String>,
    },
}

/// Why an archive cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("cannot read the archive: {0}")]
    Io(#[from] std::io::Error),
    #[error("line {line}: longer than {MAX_ARCHIVE_LINE_BYTES} bytes")]
    LineTooLong { line: u64 },
    #[error("line {line}: {reason}")]
    Malformed { line: u64, reason: String },
    #[error("the archive is empty: expected a header line")]
    Empty,
    #[error("not a vledger archive (format `{format}`, version {version}; expected `{ARCHIVE_FORMAT}` version {ARCHIVE_VERSION})")]
    WrongFormat { format: String, version: u32 },
}

/// Writes an archive line by line.
pub struct ArchiveWriter<W: Write> {
    out: W,
    entries: u64,
    checkpoints: u64,
}

impl<W: Write> ArchiveWriter<W> {
    /// Starts an archive by writing its header.
    pub fn new(mut out: W, header: &ArchiveHeader) -> std::io::Result<Self> {
        write_json_line(&mut out, header)?;
        Ok(Self {
            out,
            entries: 0,
            checkpoints: 0,
        })
    }

    /// Writes one entry's canonical bytes.
    pub fn entry(&mut self, index: u64, bytes: &[u8]) -> std::io::Result<()> {
        self.entries += 1;
        write_json_line(
            &mut self.out,
            &ArchiveLine::Entry {
                index,
                entry: B64.encode(bytes),
            },
        )
    }

    /// Writes one signed checkpoint note.
    pub fn checkpoint(&mut self, size: u64, note: &str) -> std::io::Result<()> {
        self.checkpoints += 1;
        write_json_line(
            &mut self.out,
            &ArchiveLine::Checkpoint {
                size,
                note: note.to_string(),
            },
        )
    }

    /// Writes the trailer and flushes; returns the output and the number of entries written.
    pub fn finish(mut self, state_digest: Option<[u8; 32]>) -> std::io::Result<(W, u64)> {
        write_json_line(
            &mut self.out,
            &ArchiveLine::End {
                entries: self.entries,
                checkpoints: self.checkpoints,
                state_digest: state_digest.map(|d| B64.encode(d)),
            },
        )?;
        self.out.flush()?;
        Ok((self.out, self.entries))
    }
}

fn write_json_line<W: Write, T: Serialize>(out: &mut W, value: &T) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    out.write_all(b"\n")
}

/// Reads an archive line by line: first [`ArchiveReader::open`] reads the header, then each
/// call of `next` gives one line with its 1-based line number.
pub struct ArchiveReader<R: BufRead> {
    input: R,
    line: u64,
    buf: Vec<u8>,
}

impl<R: BufRead> ArchiveReader<R> {
    /// Reads and checks the header line.
    pub fn open(input: R) -> Result<(ArchiveHeader, Self), ArchiveError> {
        let mut reader = Self {
            input,
            line: 0,
            buf: Vec::new(),
        };
        if !reader.read_line()? {
            return Err(ArchiveError::Empty);
        }
        if let Some(duplicate) = find_duplicate_key(&reader.buf) {
            return Err(ArchiveError::Malformed {
                line: 1,
                reason: format!("the header repeats a key: {duplicate}"),
            });
        }
        let value: serde_json::Value =
            serde_json::from_slice(&reader.buf).map_err(|e| ArchiveError::Malformed {
                line: 1,
                reason: format!("the header is not JSON: {e}"),
            })?;
        let format = value.get("format").and_then(|v| v.as_str()).unwrap_or("");
        let version = value.get("version").and_then(|v| v.as_u64()).unwrap_or(0);
        if format != ARCHIVE_FORMAT || version != u64::from(ARCHIVE_VERSION) {
            return Err(ArchiveError::WrongFormat {
                format: format.to_string(),
                version: version as u32,
            });
        }
        let header: ArchiveHeader =
            serde_json::from_value(value).map_err(|e| ArchiveError::Malformed {
                line: 1,
                reason: format!("header: {e}"),
            })?;
        Ok((header, reader))
    }

    /// Reads the next raw line into `buf` without its newline; false at the end of input.
    fn read_line(&mut self) -> Result<bool, ArchiveError> {
        self.buf.clear();
        self.line += 1;
        let limit = (MAX_ARCHIVE_LINE_BYTES + 1) as u64;
        let read = std::io::Read::take(&mut self.input, limit).read_until(b'\n', &mut self.buf)?;
        if read == 0 {
            return Ok(false);
        }
        if self.buf.last() == Some(&b'\n') {
            self.buf.pop();
        } else if read as u64 == limit {
            return Err(ArchiveError::LineTooLong { line: self.line });
        }
        Ok(true)
    }
}

/// One line of an archive after the header, with its line number.
pub type NumberedLine = (u64, Result<ArchiveLine, String>);

impl<R: BufRead> Iterator for ArchiveReader<R> {
    /// A line that is not valid JSON of a known shape is given as `Err(reason)` with its line
    /// number (the verifier reports it); a read failure ends the iteration with `Err`.
    type Item = Result<NumberedLine, ArchiveError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.read_line() {
            Ok(false) => None,
            Ok(true) => {
                let parsed = match find_duplicate_key(&self.buf) {
                    Some(duplicate) => Err(format!("the line repeats a key: {duplicate}")),
                    None => serde_json::from_slice::<ArchiveLine>(&self.buf)
                        .map_err(|e| format!("not an archive line: {e}")),
                };
                Some(Ok((self.line, parsed)))
            }
            Err(e) => Some(Err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip() {
        let header = ArchiveHeader::new("o/x", "x", "o/x+00000000+AQ==", 1, 5);
        let mut w = ArchiveWriter::new(Vec::new(), &header).unwrap();
        w.entry(0, b"abc").unwrap();
        w.checkpoint(1, "o/x\n1\nroot\n\n- sig\n").unwrap();
        let (bytes, n) = w.finish(Some([7; 32])).unwrap();
        assert_eq!(n, 1);
        let (read_header, reader) = ArchiveReader::open(&bytes[..]).unwrap();
        assert_eq!(read_header, header);
        let lines: Vec<_> = reader.map(|l| l.unwrap().1.unwrap()).collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(
            lines[0],
            ArchiveLine::Entry {
                index: 0,
                entry: B64.encode(b"abc")
            }
        );
        assert!(matches!(lines[2], ArchiveLine::End { entries: 1, .. }));
    }

    #[test]
    fn refuses_another_format() {
        let err = ArchiveReader::open(&b"{\"format\":\"tar\",\"version\":1}\n"[..])
            .err()
            .unwrap();
        assert!(matches!(err, ArchiveError::WrongFormat { .. }), "{err}");
    }

    #[test]
    fn a_header_or_line_that_repeats_a_key_is_refused() {
        let header = ArchiveHeader::new("o/x", "x", "o/x+00000000+AQ==", 1, 5);
        let mut text = serde_json::to_string(&header).unwrap();
        text.pop();
        text.push_str(",\"tree_size\":9}\n");
        let err = ArchiveReader::open(text.as_bytes()).err().unwrap();
        assert!(err.to_string().contains("repeats a key"), "{err}");

        let mut text = serde_json::to_string(&header).unwrap();
        text.push_str("\n{\"type\":\"end\",\"entries\":1,\"checkpoints\":0,\"entries\":2}\n");
        let (_, reader) = ArchiveReader::open(text.as_bytes()).unwrap();
        let lines: Vec<_> = reader.map(|l| l.unwrap().1).collect();
        let reason = lines[0].as_ref().unwrap_err();
        assert!(
            reason.contains("the key `entries` appears twice"),
            "{reason}"
        );
    }
}
