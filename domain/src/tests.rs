//! Every refusal of the party rules, triggered on the pure state machine with in-memory state.

use serde_json::json;

use super::*;
use vledger_tlog::keys::SigningKey;

pub(super) struct World {
    pub state: MemoryState,
    pub node: SigningKey,
    pub admin: SigningKey,
    pub next_index: u64,
    pub time_ms: u64,
}

/// What a refusal of the permission table says.
pub(super) fn refusal(command: &'static str, required: &str, signer: &str) -> Refusal {
    Refusal {
        command,
        required: required.into(),
        signer: signer.into(),
    }
}

pub(super) fn key() -> SigningKey {
    SigningKey::generate(&mut rand::rngs::OsRng)
}

impl World {
    pub fn founded() -> Self {
        let mut world = Self {
            state: MemoryState::default(),
            node: key(),
            admin: key(),
            next_index: 0,
            time_ms: 1_700_000_000_000,
        };
        let body = json!({ "region_name": "CQ", "admin_key": world.admin.public_key().to_base64(), "admin_name": "A" });
        let node = world.node.clone();
        world.run(&node, "region.genesis", body).unwrap();
        world
    }

    fn ctx(&self) -> ApplyContext {
        ApplyContext {
            index: self.next_index,
            node_time_ms: self.time_ms,
            region: "cq".try_into().unwrap(),
            node_key: self.node.public_key(),
        }
    }

    pub fn run(
        &mut self,
        signer: &SigningKey,
        command_type: &str,
        body: serde_json::Value,
    ) -> Result<Vec<Event>, Rejection> {
        let command = Command::parse(command_type, &body)?;
        let before = self.state.clone();
        let ctx = self.ctx();
        let result = apply(&mut self.state, &ctx, &signer.public_key(), &command);
        match result {
            Ok(events) => {
                self.next_index += 1;
                Ok(events)
            }
            Err(ApplyError::Rejected(r)) => {
                assert_eq!(
                    self.state, before,
                    "a refused command must not change state"
                );
                Err(r)
            }
            Err(ApplyError::State(e)) => panic!("state error: {e}"),
        }
    }

    pub fn register(&mut self, party: &SigningKey, role: &str) -> Result<Vec<Event>, Rejection> {
        let admin = self.admin.clone();
        let body = json!({ "key": party.public_key().to_base64(), "role": role, "home_region": "cq", "name": "P" });
        self.run(&admin, "party.register", body)
    }

    fn revoke(
        &mut self,
        signer: &SigningKey,
        target: &SigningKey,
    ) -> Result<Vec<Event>, Rejection> {
        let body = json!({ "key": target.public_key().to_base64(), "reason": "r" });
        self.run(signer, "party.revoke_key", body)
    }
}

#[test]
fn genesis_rules() {
    let mut empty = World {
        state: MemoryState::default(),
        node: key(),
        admin: key(),
        next_index: 0,
        time_ms: 1_700_000_000_000,
    };
    let admin = empty.admin.clone();
    let body = json!({ "region_name": "CQ", "admin_key": admin.public_key().to_base64(), "admin_name": "A" });
    assert_eq!(
        empty.run(&admin, "region.genesis", body.clone()),
        Err(Rejection::GenesisSignerNotNode)
    );
    assert_eq!(
        empty.register(&key(), "agency"),
        Err(Rejection::GenesisRequired)
    );
    let node = empty.node.clone();
    let same = json!({ "region_name": "CQ", "admin_key": node.public_key().to_base64(), "admin_name": "A" });
    assert!(matches!(
        empty.run(&node, "region.genesis", same),
        Err(Rejection::InvalidField {
            field: "admin_key",
            ..
        })
    ));
    let blank = json!({ "region_name": " ", "admin_key": admin.public_key().to_base64(), "admin_name": "A" });
    assert!(matches!(
        empty.run(&node, "region.genesis", blank),
        Err(Rejection::InvalidField {
            field: "region_name",
            ..
        })
    ));
    assert_eq!(
        empty
            .run(&node, "region.genesis", body.clone())
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        empty.run(&node, "region.genesis", body),
        Err(Rejection::GenesisAlreadyDone)
    );
}

#[test]
fn registration_rules() {
    let mut w = World::founded();
    let agency = key();
    w.register(&agency, "agency").unwrap();
    assert_eq!(w.register(&agency, "agency"), Err(Rejection::PartyExists));
    assert_eq!(w.register(&key(), "node"), Err(Rejection::NodeRoleReserved));
    let stranger = key();
    let body = json!({ "key": key().public_key().to_base64(), "role": "agency", "home_region": "cq", "name": "P" });
    assert_eq!(
        w.run(&stranger, "party.register", body.clone()),
        Err(Rejection::UnknownSigner)
    );
    assert_eq!(
        w.run(&agency, "party.register", body),
        Err(Rejection::NotAuthorized(refusal(
            "party.register",
            "an admin",
            "an agency"
        )))
    );
    let admin = w.admin.clone();
    let long_name = json!({ "key": key().public_key().to_base64(), "role": "agency", "home_region": "cq", "name": "x".repeat(300) });
    assert!(matches!(
        w.run(&admin, "party.register", long_name),
        Err(Rejection::InvalidField { field: "name", .. })
    ));
    let bad_key = json!({ "key": "AAAA", "role": "agency", "home_region": "cq", "name": "P" });
    assert!(matches!(
        w.run(&admin, "party.register", bad_key),
        Err(Rejection::WeakKey(_))
    ));
    assert!(matches!(
        Command::parse("party.register", &json!({ "key": 1 })),
        Err(Rejection::MalformedBody(_))
    ));
    assert!(matches!(
        Command::parse("nope", &json!({})),
        Err(Rejection::UnknownCommandType(_))
    ));
}

#[test]
fn revocation_rules() {
    let mut w = World::founded();
    let (admin, node) = (w.admin.clone(), w.node.clone());
    let agency = key();
    w.register(&agency, "agency").unwrap();
    let other = key();
    w.register(&other, "agency").unwrap();
    assert_eq!(
        w.revoke(&agency, &other),
        Err(Rejection::NotAuthorized(refusal(
            "party.revoke_key",
            "the party the body names or an admin",
            "an agency that is not the party the body names"
        )))
    );
    assert_eq!(w.revoke(&admin, &node), Err(Rejection::CannotRevokeNodeKey));
    assert_eq!(w.revoke(&admin, &key()), Err(Rejection::PartyNotFound));
    assert_eq!(w.revoke(&admin, &admin), Err(Rejection::LastAdmin));
    // A holder may revoke their own key.
    w.revoke(&agency, &agency).unwrap();
    assert_eq!(w.revoke(&admin, &agency), Err(Rejection::KeyAlreadyRevoked));
    assert!(w.register(&key(), "agency").is_ok());
    let revoked_signer = w.revoke(&agency, &other);
    assert!(matches!(
        revoked_signer,
        Err(Rejection::SignerRevoked { .. })
    ));
    // With a second admin, the first may go.
    let second = key();
    w.register(&second, "admin").unwrap();
    w.revoke(&second, &admin).unwrap();
    assert_eq!(w.revoke(&second, &second), Err(Rejection::LastAdmin));
}

#[test]
fn applying_a_command_checks_only_the_keys_it_brings() {
    // Keys read back from state (the region's node key, the signer's party record) were
    // checked when they were registered; only the new party's key is checked, once.
    let mut world = World::founded();
    world.register(&key(), "agency").unwrap();
    let admin = world.admin.public_key();
    let newcomer = key().public_key().to_base64();
    let body = json!({ "key": newcomer, "role": "agency", "home_region": "cq", "name": "Q" });
    let ctx = world.ctx();
    let before = vledger_tlog::keys::full_key_checks();
    let command = Command::parse("party.register", &body).unwrap();
    apply(&mut world.state, &ctx, &admin, &command).unwrap();
    assert_eq!(vledger_tlog::keys::full_key_checks() - before, 1);
}

#[test]
fn names_and_reasons_are_readable_text() {
    let mut w = World::founded();
    let admin = w.admin.clone();
    let register = |name: &str| json!({ "key": key().public_key().to_base64(), "role": "agency", "home_region": "cq", "name": name });
    for name in [
        "\u{200B}",
        "\u{200B}\u{200C}\u{FEFF}",
        "\0",
        "\0\0\0",
        " \u{3000} ",
        "Lab\u{202E}gnp.exe",
        "Lab\u{2067}x\u{2069}",
        "Lab\u{200F}",
        "Lab\u{7}",
        "Lab\nAdmin",
        "\u{1B}[2JLab",
        "Cafe\u{301}",
    ] {
        assert!(
            matches!(
                w.run(&admin, "party.register", register(name)),
                Err(Rejection::InvalidField { field: "name", .. })
            ),
            "{name:?}"
        );
    }
    let name = "重庆市计量质量检测研究院";
    let events = w.run(&admin, "party.register", register(name)).unwrap();
    assert!(matches!(&events[..], [Event::PartyRegistered { name: n, .. }] if n == name));

    let lost = key();
    w.register(&lost, "agency").unwrap();
    let revoke = json!({ "key": lost.public_key().to_base64(), "reason": "lost\u{202D}" });
    assert!(matches!(
        w.run(&admin, "party.revoke_key", revoke),
        Err(Rejection::InvalidField {
            field: "reason",
            ..
        })
    ));
}

#[test]
fn a_command_whose_events_do_not_fit_an_entry_is_refused_and_changes_nothing() {
    let mut world = World::founded();
    let body = json!({ "key": key().public_key().to_base64(), "role": "agency", "home_region": "cq", "name": "Q" });
    let command = Command::parse("party.register", &body).unwrap();
    let ctx = world.ctx();
    let admin = world.admin.public_key();
    let events = decide(&world.state, &ctx, &admin, &command).unwrap();
    let length = encode_events(&events).len();
    let before = world.state.clone();
    match apply_within(&mut world.state, &ctx, &admin, &command, length - 1) {
        Err(ApplyError::Rejected(rejection)) => {
            assert_eq!(
                rejection,
                Rejection::EntryTooLarge {
                    events_bytes: length,
                    max_events_bytes: length - 1
                }
            );
            assert_eq!(rejection.code(), "entry-too-large");
        }
        other => panic!("expected entry-too-large, got {other:?}"),
    }
    assert_eq!(
        world.state, before,
        "a refused command must not change state"
    );
    // At the bound itself it is accepted, with the bytes an entry records.
    let (applied, bytes) = apply_within(&mut world.state, &ctx, &admin, &command, length).unwrap();
    assert_eq!(applied, events);
    assert_eq!(bytes, encode_events(&events));
    assert_ne!(world.state, before);
}
