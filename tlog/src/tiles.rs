//! The C2SP tlog-tiles layout (<https://c2sp.org/tlog-tiles>): tile paths and entry bundles.
//!
//! A log is served as tiles of [`TILE_WIDTH`] hashes (levels of the Merkle tree, [`TILE_HEIGHT`]
//! tree levels per tile level) and as entry bundles of up to [`TILE_WIDTH`] entries, each entry
//! prefixed by its length as a big-endian `u16`. A tile or bundle that is not full is served
//! under its partial path (`.p/<W>`, W its width), a full one under its plain path, which never
//! changes once written.

use std::fmt::Write as _;

/// Tree levels per tile level.
pub const TILE_HEIGHT: u8 = 8;
/// Hashes per full tile, entries per full bundle.
pub const TILE_WIDTH: u64 = 1 << TILE_HEIGHT;
/// The largest entry an entry bundle can hold: its length is a `u16`.
pub const MAX_BUNDLED_ENTRY_BYTES: usize = u16::MAX as usize;

/// What a tile path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TilePath {
    /// `tile/<L>/<N>[.p/<W>]`: hashes of tree level `8 L`, subtrees `256 N ..`.
    Hashes { level: u8, index: u64, width: u16 },
    /// `tile/entries/<N>[.p/<W>]`: entries `256 N ..`.
    Entries { index: u64, width: u16 },
}

/// Why a path or a bundle is not one of the layout's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TileError {
    #[error("`{0}` is not a tile path")]
    BadPath(String),
    #[error("entry bundle: {0}")]
    BadBundle(String),
    #[error("entry of {0} bytes does not fit an entry bundle (at most {MAX_BUNDLED_ENTRY_BYTES})")]
    EntryTooLarge(usize),
}

impl TilePath {
    /// The number of hashes or entries the tile holds (1 to 256).
    pub fn width(&self) -> u16 {
        match *self {
            TilePath::Hashes { width, .. } | TilePath::Entries { width, .. } => width,
        }
    }

    /// Whether it is a full tile (its plain path, immutable).
    pub fn is_full(&self) -> bool {
        u64::from(self.width()) == TILE_WIDTH
    }

    /// The path, relative to the log's prefix (no leading `/`).
    pub fn to_path(&self) -> String {
        let (mut out, index, width) = match *self {
            TilePath::Hashes {
                level,
                index,
                width,
            } => (format!("tile/{level}/"), index, width),
            TilePath::Entries { index, width } => ("tile/entries/".to_string(), index, width),
        };
        push_index(&mut out, index);
        if u64::from(width) != TILE_WIDTH {
            write!(out, ".p/{width}").expect("writing to a String");
        }
        out
    }

    /// Parses a path relative to the log's prefix, refusing every spelling but the canonical
    /// one (so that one tile has one path, and caches keep one copy).
    pub fn parse(path: &str) -> Result<TilePath, TileError> {
        let bad = || TileError::BadPath(path.chars().take(200).collect());
        let rest = path.strip_prefix("tile/").ok_or_else(bad)?;
        let (level, rest) = rest.split_once('/').ok_or_else(bad)?;
        let level = match level {
            "entries" => None,
            digits => {
                let level: u8 = parse_decimal(digits).ok_or_else(bad)?;
                if level > 63 {
                    return Err(bad());
                }
                Some(level)
            }
        };
        let (index_part, width) = match rest.split_once(".p/") {
            None => (rest, TILE_WIDTH as u16),
            Some((index_part, width)) => {
                let width: u16 = parse_decimal(width).ok_or_else(bad)?;
                if width == 0 || u64::from(width) >= TILE_WIDTH {
                    return Err(bad());
                }
                (index_part, width)
            }
        };
        let index = parse_index(index_part).ok_or_else(bad)?;
        Ok(match level {
            Some(level) => TilePath::Hashes {
                level,
                index,
                width,
            },
            None => TilePath::Entries { index, width },
        })
    }
}

/// The entry bundle that holds entries `256 index ..` of a tree of `tree_size` leaves, or
/// `None` if the tree holds none of them.
pub fn entry_bundle(index: u64, tree_size: u64) -> Option<TilePath> {
    let start = index.checked_mul(TILE_WIDTH)?;
    if start >= tree_size {
        return None;
    }
    let width = (tree_size - start).min(TILE_WIDTH) as u16;
    Some(TilePath::Entries { index, width })
}

/// The entry bundle a client fetches to read entry `entry` of a tree of `tree_size` leaves.
pub fn entry_bundle_for(entry: u64, tree_size: u64) -> Option<TilePath> {
    entry_bundle(entry / TILE_WIDTH, tree_size)
}

/// An entry bundle's bytes: each entry's length as a big-endian `u16`, then the entry.
pub fn encode_entry_bundle<'a>(
    entries: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Vec<u8>, TileError> {
    let mut out = Vec::new();
    for entry in entries {
        let len = u16::try_from(entry.len()).map_err(|_| TileError::EntryTooLarge(entry.len()))?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(entry);
    }
    Ok(out)
}

/// Splits an entry bundle into its entries; refuses a truncated bundle, trailing bytes, or a
/// count other than `expected`.
pub fn decode_entry_bundle(bytes: &[u8], expected: usize) -> Result<Vec<&[u8]>, TileError> {
    let mut entries = Vec::with_capacity(expected);
    let mut rest = bytes;
    while !rest.is_empty() {
        if rest.len() < 2 {
            return Err(TileError::BadBundle("truncated length prefix".into()));
        }
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        if rest.len() - 2 < len {
            return Err(TileError::BadBundle(format!(
                "entry {} claims {len} bytes, {} remain",
                entries.len(),
                rest.len() - 2
            )));
        }
        entries.push(&rest[2..2 + len]);
        rest = &rest[2 + len..];
        if entries.len() > expected {
            return Err(TileError::BadBundle(format!(
                "more than the {expected} entries expected"
            )));
        }
    }
    if entries.len() != expected {
        return Err(TileError::BadBundle(format!(
            "{} entries, {expected} expected",
            entries.len()
        )));
    }
    Ok(entries)
}

/// `N` written as the spec says: groups of three digits, every group but the last prefixed `x`
/// (`1234067` is `x001/x234/067`).
fn push_index(out: &mut String, index: u64) {
    let digits = format!("{index:03}");
    let pad = (3 - digits.len() % 3) % 3;
    let digits = format!("{}{digits}", "0".repeat(pad));
    let groups: Vec<&str> = (0..digits.len() / 3)
        .map(|i| &digits[3 * i..3 * i + 3])
        .collect();
    for (i, group) in groups.iter().enumerate() {
        if i + 1 < groups.len() {
            out.push('x');
        }
        out.push_str(group);
        if i + 1 < groups.len() {
            out.push('/');
        }
    }
}

fn parse_index(s: &str) -> Option<u64> {
    let groups: Vec<&str> = s.split('/').collect();
    let mut value: u64 = 0;
    for (i, group) in groups.iter().enumerate() {
        let last = i + 1 == groups.len();
        let digits = if last {
            *group
        } else {
            group.strip_prefix('x')?
        };
        if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        value = value
            .checked_mul(1000)?
            .checked_add(digits.parse::<u64>().ok()?)?;
    }
    // Canonical: no leading all-zero group (`x000/001` is `001`).
    if groups.len() > 1 && groups[0] == "x000" {
        return None;
    }
    Some(value)
}

fn parse_decimal<T: std::str::FromStr>(s: &str) -> Option<T> {
    let canonical =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    if canonical {
        s.parse().ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_the_specs() {
        let spec = [
            (1_234_067, "x001/x234/067"),
            (0, "000"),
            (7, "007"),
            (999, "999"),
            (1000, "x001/000"),
        ];
        for (index, expected) in spec {
            let path = TilePath::Entries {
                index,
                width: TILE_WIDTH as u16,
            };
            assert_eq!(path.to_path(), format!("tile/entries/{expected}"));
            assert_eq!(TilePath::parse(&path.to_path()), Ok(path));
        }
        let partial = TilePath::Hashes {
            level: 1,
            index: 1_234_067,
            width: 5,
        };
        assert_eq!(partial.to_path(), "tile/1/x001/x234/067.p/5");
        assert_eq!(TilePath::parse("tile/1/x001/x234/067.p/5"), Ok(partial));
    }

    #[test]
    fn only_canonical_paths_parse() {
        for bad in [
            "tile/entries/1",
            "tile/entries/0001",
            "tile/entries/x000/001",
            "tile/entries/001/002",
            "tile/01/000",
            "tile/64/000",
            "tile/0/000.p/0",
            "tile/0/000.p/256",
            "tile/0/000.p/05",
            "tile/0/x001",
            "tile/0/",
            "tiles/0/000",
            "tile/entries/x18446744073709551/615",
        ] {
            assert!(TilePath::parse(bad).is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn bundles_round_trip_and_refuse_bad_bytes() {
        let entries: Vec<Vec<u8>> = vec![b"a".to_vec(), vec![], vec![7; 300]];
        let bytes = encode_entry_bundle(entries.iter().map(Vec::as_slice)).unwrap();
        let decoded = decode_entry_bundle(&bytes, 3).unwrap();
        assert_eq!(
            decoded,
            entries.iter().map(Vec::as_slice).collect::<Vec<_>>()
        );
        assert!(decode_entry_bundle(&bytes, 2).is_err());
        assert!(decode_entry_bundle(&bytes, 4).is_err());
        assert!(decode_entry_bundle(&bytes[..bytes.len() - 1], 3).is_err());
        let big = vec![0u8; MAX_BUNDLED_ENTRY_BYTES + 1];
        assert_eq!(
            encode_entry_bundle([big.as_slice()]),
            Err(TileError::EntryTooLarge(big.len()))
        );
    }

    #[test]
    fn bundle_widths_follow_the_tree_size() {
        assert_eq!(entry_bundle(0, 0), None);
        assert_eq!(
            entry_bundle(0, 5),
            Some(TilePath::Entries { index: 0, width: 5 })
        );
        assert_eq!(
            entry_bundle_for(300, 1000),
            Some(TilePath::Entries {
                index: 1,
                width: 256
            })
        );
        assert_eq!(
            entry_bundle_for(770, 1000),
            Some(TilePath::Entries {
                index: 3,
                width: 232
            })
        );
    }
}
