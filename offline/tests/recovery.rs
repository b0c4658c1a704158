//! A node refuses to start when its stored tree size, last entry and latest checkpoint disagree,
//! and says which; an intact store reopens where it left off.

use serde_json::json;
use vledger_domain::GenesisBody;
use vledger_node::node::{Node, NodeConfig, OpenError};
use vledger_node::store::{families, Store};
use vledger_tlog::keys::SigningKey;
use vledger_tlog::note::{Checkpoint, NoteSigner};
use vledger_wire::envelope::{seal, CommandPayload, VerifiedEnvelope};

struct Fixture {
    dir: tempfile::TempDir,
    node_key: SigningKey,
    admin: SigningKey,
}

impl Fixture {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            node_key: SigningKey::generate(&mut rand::rngs::OsRng),
            admin: SigningKey::generate(&mut rand::rngs::OsRng),
        }
    }

    fn config(&self) -> NodeConfig {
        NodeConfig {
            data_dir: self.dir.path().join("db"),
            region: "cq".try_into().unwrap(),
            origin: "vledger.test/cq".into(),
            node_key: self.node_key.clone(),
            max_batch_commands: vledger_domain::limits::MAX_BATCH_COMMANDS,
            genesis: Some(GenesisBody {
                region_name: "Chongqing".into(),
                admin_key: self.admin.public_key(),
                admin_name: "admin".into(),
                time_zone: "Asia/Shanghai".into(),
            }),
        }
    }

    /// Opens a node, registers `n` parties, and closes it.
    fn populate(&self, n: usize) {
        let node = Node::open(self.config()).unwrap();
        for i in 0..n {
            let party = SigningKey::generate(&mut rand::rngs::OsRng);
            let payload = CommandPayload {
                v: 1,
                command_type: "party.register".into(),
                region: "cq".try_into().unwrap(),
                signer: self.admin.public_key(),
                nonce: format!("n{i}"),
                body: json!({ "key": party.public_key().to_base64(), "role": "agency", "home_region": "cq", "name": "lab" }),
            };
            let envelope =
                VerifiedEnvelope::parse_and_verify(&seal(&payload, &self.admin)).unwrap();
            node.submit_and_wait(envelope).unwrap();
        }
        node.shutdown();
    }

    fn damage(&self, family: &str, key: &[u8], value: Option<&[u8]>) {
        let store = Store::open(&self.dir.path().join("db")).unwrap();
        store.damage_for_tests(family, key, value);
    }

    fn open_error(&self) -> String {
        match Node::open(self.config()) {
            Ok(_) => panic!("a damaged store must not open"),
            Err(e) => e.to_string(),
        }
    }
}

#[test]
fn an_intact_store_reopens_at_its_size() {
    let f = Fixture::new();
    f.populate(5);
    let node = Node::open(f.config()).unwrap();
    assert_eq!(node.tree_size(), 6);
}

#[test]
fn refuses_when_the_tree_size_record_is_lost() {
    let f = Fixture::new();
    f.populate(3);
    f.damage(families::META, families::TREE_SIZE_KEY, None);
    assert!(f
        .open_error()
        .contains("entry 0 exists but the recorded tree size is 0"));
}

#[test]
fn refuses_when_the_last_entry_is_missing() {
    let f = Fixture::new();
    f.populate(3);
    f.damage(families::ENTRIES, &3u64.to_be_bytes(), None);
    assert!(f.open_error().contains("entry 3 is missing"));
}

#[test]
fn refuses_when_an_entry_lies_past_the_tree_size() {
    let f = Fixture::new();
    f.populate(3);
    f.damage(families::ENTRIES, &9u64.to_be_bytes(), Some(b"stray"));
    assert!(f
        .open_error()
        .contains("entry 9 exists but the recorded tree size is 4"));
}

#[test]
fn refuses_when_the_last_entry_differs_from_the_tree() {
    let f = Fixture::new();
    f.populate(3);
    let store = Store::open(&f.dir.path().join("db")).unwrap();
    let mut bytes = store.entry(3).unwrap().unwrap();
    drop(store);
    let last = bytes.len() - 2;
    bytes[last] ^= 1;
    f.damage(families::ENTRIES, &3u64.to_be_bytes(), Some(&bytes));
    assert!(f
        .open_error()
        .contains("is not the leaf the stored tree holds"));
}

#[test]
fn refuses_a_checkpoint_signed_by_another_key() {
    let f = Fixture::new();
    f.populate(2);
    let store = Store::open(&f.dir.path().join("db")).unwrap();
    let note = store.checkpoint(3).unwrap().unwrap();
    drop(store);
    let text = &note[..note.find("\n\n").unwrap() + 1];
    let forger = NoteSigner::new(
        "vledger.test/cq",
        SigningKey::generate(&mut rand::rngs::OsRng),
    )
    .unwrap();
    let forged = forger.sign(text).unwrap();
    f.damage(
        families::CHECKPOINTS,
        &3u64.to_be_bytes(),
        Some(forged.as_bytes()),
    );
    assert!(f.open_error().contains("is not signed by this node's key"));
}

#[test]
fn refuses_a_checkpoint_whose_root_disagrees() {
    let f = Fixture::new();
    f.populate(2);
    let signer = NoteSigner::new("vledger.test/cq", f.node_key.clone()).unwrap();
    let lie = Checkpoint {
        origin: "vledger.test/cq".into(),
        size: 3,
        root_hash: [7; 32],
        extensions: vec![],
    };
    let note = signer.sign(&lie.to_text()).unwrap();
    f.damage(
        families::CHECKPOINTS,
        &3u64.to_be_bytes(),
        Some(note.as_bytes()),
    );
    assert!(f
        .open_error()
        .contains("does not match the stored tree's root"));
}

#[test]
fn refuses_another_node_key() {
    let f = Fixture::new();
    f.populate(1);
    let mut config = f.config();
    config.node_key = SigningKey::generate(&mut rand::rngs::OsRng);
    let error = Node::open(config).err().expect("must refuse").to_string();
    assert!(error.contains("not signed by this node's key"), "{error}");
}

#[test]
fn a_batch_limit_of_zero_is_refused() {
    let f = Fixture::new();
    let mut config = f.config();
    config.max_batch_commands = 0;
    let error = Node::open(config).err().expect("must refuse").to_string();
    assert!(error.contains("at least one command"), "{error}");
}

#[test]
fn an_empty_store_without_genesis_is_refused() {
    let f = Fixture::new();
    let mut config = f.config();
    config.genesis = None;
    assert!(matches!(Node::open(config), Err(OpenError::NoGenesis)));
}

#[test]
fn rebuild_from_the_log_reproduces_the_stored_state_and_repairs_it() {
    use vledger_offline::rebuild::{rebuild, RebuildMode};
    let f = Fixture::new();
    let scratches = tempfile::tempdir().unwrap();
    let mut made = 0;
    let mut scratch = || {
        made += 1;
        scratches.path().join(format!("state-{made}"))
    };
    f.populate(4);
    let store = Store::open(&f.dir.path().join("db")).unwrap();
    for mode in [RebuildMode::Replay, RebuildMode::Events] {
        let report = rebuild(&store, mode, false, &scratch()).unwrap();
        assert_eq!(report.entries, 5);
        assert!(
            report.records >= 6,
            "region + node + admin + 4 parties: {report:?}"
        );
        assert!(report.differing_keys.is_empty(), "{mode:?}: {report:?}");
    }

    for mode in [RebuildMode::Replay, RebuildMode::Events] {
        store.damage_for_tests(families::STATE, b"region", Some(b"{\"garbage\":1}"));
        store.damage_for_tests(families::STATE, b"stray", Some(b"1"));
        let report = rebuild(&store, mode, true, &scratch()).unwrap();
        assert_eq!(report.differing_keys.len(), 2, "{mode:?}");
        assert!(
            rebuild(&store, mode, false, &scratch())
                .unwrap()
                .differing_keys
                .is_empty(),
            "{mode:?}: --write repairs the state"
        );
    }
}

#[test]
fn replay_names_the_entry_whose_events_were_altered() {
    use vledger_offline::replay::{ReplayFailure, Replayer};
    use vledger_wire::entry::Entry;
    let f = Fixture::new();
    f.populate(3);
    let store = Store::open(&f.dir.path().join("db")).unwrap();
    let entries = store.entries(0, 4).unwrap();
    let mut replayer = Replayer::in_memory();
    for (_, bytes) in &entries[..2] {
        replayer.apply_entry(bytes).unwrap();
    }
    let mut entry = Entry::decode(&entries[2].1).unwrap();
    let altered = String::from_utf8(entry.events.clone())
        .unwrap()
        .replace("\"lab\"", "\"lax\"");
    assert_ne!(altered.as_bytes(), entry.events.as_slice());
    entry.events = altered.into_bytes();
    let error = replayer.apply_entry(&entry.encode()).unwrap_err();
    assert_eq!(error.index, 2);
    assert_eq!(error.failure, ReplayFailure::EventsDiffer, "{error}");
    // Skipping an entry breaks the chain.
    let error = replayer.apply_entry(&entries[3].1).unwrap_err();
    assert!(
        matches!(error.failure, ReplayFailure::WrongIndex(3)),
        "{error}"
    );
}

#[test]
fn a_store_with_records_in_an_older_encoding_opens_after_a_rebuild() {
    use vledger_domain::{PartyRecord, StateRead};
    use vledger_offline::rebuild::{rebuild, RebuildMode};
    let f = Fixture::new();
    f.populate(2);
    let store = Store::open(&f.dir.path().join("db")).unwrap();
    // What an earlier version left: no recorded encoding and JSON records.
    let parties = store.scan_state(b"party/", 10).unwrap();
    // The node, the admin and the two registered parties.
    assert_eq!(parties.len(), 4);
    for (key, _) in &parties {
        let party: PartyRecord = store.get(key).unwrap().unwrap();
        let json = serde_json::to_vec(&party).unwrap();
        store.damage_for_tests(families::STATE, key, Some(&json));
    }
    store.damage_for_tests(families::META, families::STATE_ENCODING_KEY, None);
    drop(store);
    let error = f.open_error();
    assert!(
        error.contains("the state records are in the JSON encoding")
            && error.contains("vledger rebuild --write"),
        "{error}"
    );

    let store = Store::open(&f.dir.path().join("db")).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let report = rebuild(
        &store,
        RebuildMode::Events,
        true,
        &scratch.path().join("state"),
    )
    .unwrap();
    assert_eq!(report.differing_keys.len(), parties.len());
    drop(store);
    let node = Node::open(f.config()).unwrap();
    assert_eq!(node.tree_size(), 3);
}
