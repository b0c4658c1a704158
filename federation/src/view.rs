//! Another region's records as a replay of its log sees them: this node's view of the region
//! (`fed/<region>/...` in the committed state) with the changes of the step being verified on
//! top, keyed as the region itself keys them.

use std::collections::BTreeMap;

use vledger_domain::federation::{view_key, view_prefix, VIEW_NONCE_PREFIX, VIEW_PREFIX};
use vledger_domain::types::RegionId;
use vledger_domain::{merged_scan, ScannedRecords, StateError, StateRead, StateWrite};
use vledger_offline::replay::ReplayState;

/// A region's records for a replay of its next entries: reads see the step's changes, then the
/// view as committed. A decision of that region that reads a third region's records
/// (`fed/...` of its own) fails with [`StateError::ForeignView`]: they are not here.
pub struct RegionView<'a, B: StateRead> {
    committed: &'a B,
    region: RegionId,
    prefix: Vec<u8>,
    changes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl<'a, B: StateRead> RegionView<'a, B> {
    pub fn new(committed: &'a B, region: RegionId) -> Self {
        Self {
            committed,
            prefix: view_prefix(&region),
            region,
            changes: BTreeMap::new(),
        }
    }

    /// The step's changes as keys of this node's state (`fed/<region>/...`).
    pub fn into_view_changes(self) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        let region = self.region;
        self.changes
            .into_iter()
            .map(|(key, value)| (view_key(&region, &key), value))
            .collect()
    }

    fn foreign(&self, key: &[u8]) -> Result<(), StateError> {
        if key.starts_with(VIEW_PREFIX) {
            let region = key[VIEW_PREFIX.len()..]
                .split(|b| *b == b'/')
                .next()
                .unwrap_or_default();
            return Err(StateError::ForeignView {
                region: String::from_utf8_lossy(region).into_owned(),
            });
        }
        Ok(())
    }
}

impl<B: StateRead> StateRead for RegionView<'_, B> {
    fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        self.foreign(key)?;
        match self.changes.get(key) {
            Some(change) => Ok(change.clone()),
            None => self.committed.get_raw(&view_key(&self.region, key)),
        }
    }

    fn scan_prefix_from(
        &self,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
    ) -> Result<ScannedRecords, StateError> {
        self.foreign(prefix)?;
        let mut full_prefix = self.prefix.clone();
        full_prefix.extend_from_slice(prefix);
        merged_scan(&self.changes, prefix, start, limit, |from, limit| {
            let mut full_from = self.prefix.clone();
            full_from.extend_from_slice(from);
            let page = self
                .committed
                .scan_prefix_from(&full_prefix, &full_from, limit)?;
            Ok(page
                .into_iter()
                .map(|(key, value)| (key[self.prefix.len()..].to_vec(), value))
                .collect())
        })
    }
}

impl<B: StateRead> StateWrite for RegionView<'_, B> {
    fn put_raw(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.changes.insert(key, Some(value));
    }
    fn delete(&mut self, key: Vec<u8>) {
        self.changes.insert(key, None);
    }
}

impl<B: StateRead> ReplayState for RegionView<'_, B> {
    fn nonce_used(&self, key: &[u8]) -> Result<bool, StateError> {
        let mut nonce = VIEW_NONCE_PREFIX.to_vec();
        nonce.extend_from_slice(key);
        Ok(self.get_raw(&nonce)?.is_some())
    }
    fn record_nonce(&mut self, key: Vec<u8>) {
        let mut nonce = VIEW_NONCE_PREFIX.to_vec();
        nonce.extend_from_slice(&key);
        self.changes.insert(nonce, Some(Vec::new()));
    }
}
