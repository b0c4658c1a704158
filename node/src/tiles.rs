//! The log as C2SP tlog-tiles resources (<https://c2sp.org/tlog-tiles>): hash tiles read from
//! the stored perfect subtrees, entry bundles from the stored entries.
//!
//! The hash tile (level L, index N, width W) is the W hashes of tree level `8 L`, nodes
//! `256 N .. 256 N + W - 1`: each the root of a perfect subtree of `256^L` leaves, which the store
//! holds as soon as the tree holds all its leaves. The entry bundle (index N, width W) is entries
//! `256 N .. 256 N + W - 1`, each prefixed by its length as a `u16`. Neither ever changes once
//! the tree holds it, so a partial tile of a tree that has grown past it is still served as it
//! was; a tile the tree does not wholly hold at its width is not found.

use vledger_tlog::tiles::{encode_entry_bundle, TilePath, TILE_HEIGHT, TILE_WIDTH};

use crate::node::{Node, ReadError};
use crate::store::Store;

/// Whether a tree of `size` leaves holds every hash or entry of `tile`.
pub fn tree_holds(tile: &TilePath, size: u64) -> bool {
    let (available, index) = match *tile {
        TilePath::Hashes { level, index, .. } => {
            // Nodes of tree level 8 L: one per 256^L leaves (none past level 63 of the tree).
            let tree_level = u32::from(level) * u32::from(TILE_HEIGHT);
            (size.checked_shr(tree_level).unwrap_or(0), index)
        }
        TilePath::Entries { index, .. } => (size, index),
    };
    index
        .checked_mul(TILE_WIDTH)
        .and_then(|start| start.checked_add(u64::from(tile.width())))
        .is_some_and(|end| end <= available)
}

/// The bytes of `tile` in the tree of `size` leaves that `store` holds (at least that size), or
/// `None` if that tree does not hold all of it: for a hash tile, its hashes one after the other
/// (32 bytes each); for an entry bundle, each entry's length as a big-endian `u16`, then the
/// entry's canonical bytes.
pub fn read_tile(store: &Store, tile: &TilePath, size: u64) -> Result<Option<Vec<u8>>, ReadError> {
    if !tree_holds(tile, size) {
        return Ok(None);
    }
    let width = usize::from(tile.width());
    let bytes = match *tile {
        TilePath::Hashes { level, index, .. } => {
            // Held by the tree, so below its 2^40 leaves: tree level 8 L is at most 40.
            let tree_level = level * TILE_HEIGHT;
            let hashes = store
                .subtree_run(tree_level, index * TILE_WIDTH, width)
                .map_err(|e| ReadError::Storage(e.to_string()))?;
            hashes.concat()
        }
        TilePath::Entries { index, .. } => {
            let start = index * TILE_WIDTH;
            let rows = store
                .entries(start, start + width as u64)
                .map_err(|e| ReadError::Storage(e.to_string()))?;
            for (position, (stored, _)) in rows.iter().enumerate() {
                if *stored != start + position as u64 {
                    return Err(ReadError::Storage(format!(
                        "entry {} is missing below the tree size {size}",
                        start + position as u64
                    )));
                }
            }
            if rows.len() != width {
                return Err(ReadError::Storage(format!(
                    "entry {} is missing below the tree size {size}",
                    start + rows.len() as u64
                )));
            }
            encode_entry_bundle(rows.iter().map(|(_, bytes)| bytes.as_slice()))
                .map_err(|e| ReadError::Storage(format!("entry bundle {}: {e}", tile.to_path())))?
        }
    };
    Ok(Some(bytes))
}

impl Node {
    /// The bytes of `tile` in the tree of the latest checkpoint (see [`read_tile`]), or `None`
    /// if that tree does not hold all of it at its width.
    pub fn tile(&self, tile: &TilePath) -> Result<Option<Vec<u8>>, ReadError> {
        read_tile(self.store(), tile, self.checkpoint_size())
    }

    /// The tree size of the latest checkpoint. The checkpoint is published before the tree size
    /// is, both after the batch's write: a client that has just read a checkpoint finds every
    /// tile of its size.
    fn checkpoint_size(&self) -> u64 {
        let published = self.tree_size();
        self.checkpoint()
            .lines()
            .nth(1)
            .and_then(|line| line.parse::<u64>().ok())
            .map_or(published, |size| size.max(published))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::CommitBatch;
    use vledger_tlog::merkle::{self, Frontier, Hash, MemoryTree, SubtreeSource};

    /// A store and a reference tree grown together with synthetic leaves, through the writer's
    /// path (the nodes each append completes, committed in batches).
    struct Grown {
        store: Store,
        tree: MemoryTree,
        frontier: Frontier,
        _dir: tempfile::TempDir,
    }

    impl Grown {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            Self {
                store: Store::open(dir.path()).unwrap(),
                tree: MemoryTree::new(),
                frontier: Frontier::empty(),
                _dir: dir,
            }
        }

        fn grow_to(&mut self, size: u64) {
            while self.frontier.size() < size {
                let mut batch = CommitBatch::default();
                let end = size.min(self.frontier.size() + 4096);
                while self.frontier.size() < end {
                    let leaf = merkle::leaf_hash(&self.frontier.size().to_be_bytes());
                    self.tree.append_leaf_hash(leaf);
                    batch.tree_nodes.extend(self.frontier.append(leaf));
                }
                batch.new_tree_size = self.frontier.size();
                self.store.commit(&batch).unwrap();
            }
        }
    }

    /// Every tile of a tree of `size` leaves, as tlog-tiles lists them: per level, the full
    /// tiles and then the partial one, if any.
    fn tiles_of(size: u64) -> Vec<TilePath> {
        let mut tiles = Vec::new();
        for level in 0..=63u8 {
            let nodes = size.checked_shr(u32::from(level) * 8).unwrap_or(0);
            if nodes == 0 {
                break;
            }
            for index in 0..nodes / TILE_WIDTH {
                tiles.push(TilePath::Hashes {
                    level,
                    index,
                    width: TILE_WIDTH as u16,
                });
            }
            let partial = (nodes % TILE_WIDTH) as u16;
            if partial > 0 {
                tiles.push(TilePath::Hashes {
                    level,
                    index: nodes / TILE_WIDTH,
                    width: partial,
                });
            }
        }
        tiles
    }

    /// The perfect subtrees of a tree read from its tiles alone: node (l, i) is hashed up from
    /// the hashes of the tile of level l / 8 that covers it.
    struct FromTiles(std::collections::HashMap<(u8, u64), Vec<Hash>>);

    impl SubtreeSource for FromTiles {
        type Error = std::convert::Infallible;
        fn perfect_subtree(&self, level: u8, index: u64) -> Result<Hash, Self::Error> {
            let (tile_level, above) = (level / 8, level % 8);
            let first = index << above;
            let tile = &self.0[&(tile_level, first / TILE_WIDTH)];
            let at = (first % TILE_WIDTH) as usize;
            let mut row: Vec<Hash> = tile[at..at + (1 << above)].to_vec();
            while row.len() > 1 {
                row = row
                    .chunks(2)
                    .map(|pair| merkle::node_hash(&pair[0], &pair[1]))
                    .collect();
            }
            Ok(row[0])
        }
    }

    #[test]
    fn hash_tiles_of_every_level_hold_the_trees_nodes_and_fold_to_its_root() {
        let mut grown = Grown::new();
        // A partial level-0 tile only; a full one; one leaf of the next; the example of the
        // spec (273 full level-0 tiles, a level-1 tile of 17, a level-2 tile of 1); level 2
        // with a full level-1 tile below a partial one of two.
        for size in [
            1,
            255,
            256,
            257,
            65_535,
            65_536,
            65_537,
            70_000,
            2 * 65_536 + 4_321,
        ] {
            grown.grow_to(size);
            let tiles = tiles_of(size);
            if size == 70_000 {
                let count = |level: u8, full: bool| {
                    tiles
                        .iter()
                        .filter(|t| {
                            matches!(t, TilePath::Hashes { level: l, .. } if *l == level)
                                && t.is_full() == full
                        })
                        .count()
                };
                assert_eq!((count(0, true), count(0, false)), (273, 1));
                assert_eq!((count(1, true), count(1, false)), (1, 1));
                assert_eq!((count(2, true), count(2, false)), (0, 1));
                assert!(tiles.contains(&TilePath::Hashes {
                    level: 1,
                    index: 1,
                    width: 17
                }));
            }
            let mut by_position = std::collections::HashMap::new();
            for tile in &tiles {
                let TilePath::Hashes {
                    level,
                    index,
                    width,
                } = *tile
                else {
                    unreachable!()
                };
                let bytes = read_tile(&grown.store, tile, size).unwrap().unwrap();
                assert_eq!(bytes.len(), 32 * usize::from(width), "{}", tile.to_path());
                let hashes: Vec<Hash> = bytes.chunks(32).map(|h| h.try_into().unwrap()).collect();
                for (i, hash) in hashes.iter().enumerate() {
                    let node = grown
                        .tree
                        .perfect_subtree(level * 8, index * TILE_WIDTH + i as u64)
                        .unwrap();
                    assert_eq!(*hash, node, "{} hash {i}", tile.to_path());
                }
                // One more hash than the tree holds is not found; a narrower tile is.
                let wider = TilePath::Hashes {
                    level,
                    index,
                    width: width + 1,
                };
                if !tile.is_full() {
                    assert_eq!(read_tile(&grown.store, &wider, size).unwrap(), None);
                }
                if width > 1 {
                    let narrower = TilePath::Hashes {
                        level,
                        index,
                        width: width - 1,
                    };
                    let prefix = read_tile(&grown.store, &narrower, size).unwrap().unwrap();
                    assert_eq!(prefix, bytes[..bytes.len() - 32]);
                }
                by_position.insert((level, index), hashes);
            }
            // The tiles alone give the root of the tree, and of every smaller tree they cover.
            let from_tiles = FromTiles(by_position);
            assert_eq!(merkle::root(&from_tiles, size).unwrap(), grown.tree.root());
            for smaller in [1, size / 2, size - 1].into_iter().filter(|s| *s > 0) {
                assert_eq!(
                    merkle::root(&from_tiles, smaller).unwrap(),
                    merkle::root(&grown.tree, smaller).unwrap()
                );
            }
            // Nothing past the tree: the next tile of each level, or any of a level above.
            let levels = tiles
                .iter()
                .map(|t| match t {
                    TilePath::Hashes { level, .. } => *level,
                    TilePath::Entries { .. } => unreachable!(),
                })
                .max()
                .unwrap();
            for level in 0..=levels + 1 {
                let nodes = size.checked_shr(u32::from(level) * 8).unwrap_or(0);
                let beyond = TilePath::Hashes {
                    level,
                    index: nodes / TILE_WIDTH + 1,
                    width: 1,
                };
                assert_eq!(read_tile(&grown.store, &beyond, size).unwrap(), None);
            }
        }
        // The partial tiles of a smaller tree are still served, and are prefixes of the full
        // tiles that replaced them.
        let size = grown.frontier.size();
        let partial = TilePath::Hashes {
            level: 0,
            index: 0,
            width: 255,
        };
        let full = TilePath::Hashes {
            level: 0,
            index: 0,
            width: 256,
        };
        let partial = read_tile(&grown.store, &partial, size).unwrap().unwrap();
        let full = read_tile(&grown.store, &full, size).unwrap().unwrap();
        assert_eq!(partial, full[..255 * 32]);
    }

    #[test]
    fn a_tile_is_held_only_when_its_last_hash_or_entry_is_in_the_tree() {
        let hashes = |level, index, width| TilePath::Hashes {
            level,
            index,
            width,
        };
        assert!(!tree_holds(&hashes(0, 0, 1), 0));
        assert!(tree_holds(&hashes(0, 0, 1), 1));
        assert!(tree_holds(&hashes(0, 0, 256), 256));
        assert!(!tree_holds(&hashes(0, 1, 1), 256));
        assert!(tree_holds(&hashes(1, 0, 1), 256));
        assert!(!tree_holds(&hashes(1, 0, 2), 511));
        assert!(tree_holds(&hashes(1, 0, 2), 512));
        assert!(tree_holds(&hashes(5, 0, 1), 1 << 40));
        assert!(!tree_holds(&hashes(5, 0, 1), (1 << 40) - 1));
        assert!(!tree_holds(&hashes(63, 0, 1), u64::MAX));
        assert!(!tree_holds(&hashes(0, u64::MAX, 256), u64::MAX));
        let entries = |index, width| TilePath::Entries { index, width };
        assert!(tree_holds(&entries(0, 5), 5));
        assert!(!tree_holds(&entries(0, 6), 5));
        assert!(tree_holds(&entries(1, 256), 512));
        assert!(!tree_holds(&entries(u64::MAX / 256 + 1, 1), u64::MAX));
    }
}
