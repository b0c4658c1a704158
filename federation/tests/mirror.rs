//! The mirror against real nodes in one process: adoption, one identity, resuming after a
//! restart, catching up in steps, and a forked region caught with evidence.

mod common;

use common::{key, Region};
use serde_json::json;
use vledger_domain::federation::{find_party, load_adopted};
use vledger_domain::limits::MAX_MIRROR_STEP_ENTRIES;
use vledger_federation::source::LocalSource;
use vledger_federation::{Mirror, StepOutcome};
use vledger_node::writer::SubmitError;

fn mirror(of: &Region, into: &Region) -> (Mirror, LocalSource) {
    let mirror = Mirror::new(into.node.clone(), of.as_peer(), None);
    let source = LocalSource {
        node: of.node.clone(),
    };
    (mirror, source)
}

/// Steps until the mirror is up to date; the number of adoptions.
fn catch_up(mirror: &mut Mirror, source: &mut LocalSource) -> u64 {
    let mut adoptions = 0;
    loop {
        match mirror.step(source, 1_000) {
            StepOutcome::Adopted { .. } => adoptions += 1,
            StepOutcome::UpToDate => return adoptions,
            other => panic!("mirror step: {other:?}"),
        }
    }
}

fn rejection_code(result: Result<vledger_node::writer::Accepted, SubmitError>) -> &'static str {
    match result {
        Err(SubmitError::Rejected(r)) => r.code(),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[test]
fn a_party_of_one_region_is_known_in_another_after_adoption_and_its_standing_follows_it() {
    let cq = Region::found("cq", 1);
    let sc = Region::found("sc", 2);
    let (agency, admin) = (key(30), key(31));
    sc.register(&agency, "agency");
    sc.register(&admin, "admin");

    assert!(find_party(&cq.node.state(), &agency.public_key())
        .unwrap()
        .is_none());
    let (mut mirror, mut source) = mirror(&sc, &cq);
    assert_eq!(catch_up(&mut mirror, &mut source), 1);
    let known = find_party(&cq.node.state(), &agency.public_key())
        .unwrap()
        .expect("the agency is known after adoption");
    assert_eq!(known.party.home_region, sc.id);
    let adopted = known.adopted.expect("read from sc's view");
    assert_eq!(adopted.size, sc.node.tree_size());
    assert_eq!(
        load_adopted(&cq.node.state(), &sc.id)
            .unwrap()
            .unwrap()
            .size,
        sc.node.tree_size()
    );

    // An admin of Sichuan is no admin in Chongqing.
    let body = json!({ "key": key(40).public_key().to_base64(), "role": "agency",
                       "home_region": "cq", "name": "lab" });
    assert_eq!(
        rejection_code(cq.submit(&admin, "party.register", body)),
        "foreign-authority"
    );

    // Suspended at home, suspended everywhere once adopted.
    sc.submit(
        &sc.admin,
        "party.suspend",
        json!({ "key": agency.public_key().to_base64(), "reason": "inspection" }),
    )
    .unwrap();
    let demand = json!({ "demand_id": "d1", "category": "testing", "title": "T",
                         "description": "D", "currency": "CNY" });
    // Known and in good standing as of the size adopted: only the role is wrong.
    assert_eq!(
        rejection_code(cq.submit(&agency, "demand.post", demand)),
        "not-authorized"
    );
    assert_eq!(catch_up(&mut mirror, &mut source), 1);
    let demand = json!({ "demand_id": "d2", "category": "testing", "title": "T",
                         "description": "D", "currency": "CNY" });
    assert_eq!(
        rejection_code(cq.submit(&agency, "demand.post", demand)),
        "signer-suspended"
    );
}

#[test]
fn adoption_is_refused_from_anyone_but_the_mirror() {
    let cq = Region::found("cq", 1);
    let sc = Region::found("sc", 2);
    let body = json!({ "region": "sc",
                       "verifier_key": sc.as_peer().verifier.to_verifier_key(),
                       "checkpoint": sc.node.checkpoint().to_string() });
    // Signed by the node's own key, but submitted as a command: no verified entries come with it.
    assert_eq!(
        rejection_code(cq.submit(&cq.node_key.clone(), "federation.adopt", body.clone())),
        "invalid-adoption"
    );
    assert_eq!(
        rejection_code(cq.submit(&cq.admin, "federation.adopt", body)),
        "not-authorized"
    );
}

#[test]
fn a_mirror_far_behind_catches_up_in_steps_and_resumes_after_a_restart_with_no_gap() {
    let cq = Region::found("cq", 1);
    let sc = Region::found("sc", 2);
    for i in 0..(MAX_MIRROR_STEP_ENTRIES as usize + 500) {
        sc.register(&key_for(i), "enterprise");
    }
    let (mut mirror, mut source) = mirror(&sc, &cq);
    // One step, then a restart of the mirroring node in the middle of the catch-up.
    assert!(matches!(
        mirror.step(&mut source, 1_000),
        StepOutcome::Adopted { .. }
    ));
    let first = load_adopted(&cq.node.state(), &sc.id)
        .unwrap()
        .unwrap()
        .size;
    assert!(first < sc.node.tree_size());
    assert!(first <= MAX_MIRROR_STEP_ENTRIES);
    drop(mirror);
    drop(source);
    let cq = cq.restart(1);
    let (mut mirror, mut source) = self::mirror(&sc, &cq);
    assert!(catch_up(&mut mirror, &mut source) >= 1);
    let state = cq.node.state();
    assert_eq!(
        load_adopted(&state, &sc.id).unwrap().unwrap().size,
        sc.node.tree_size()
    );
    // Every entry mirrored exactly once, in order, as the region has it.
    let store = cq.node.store();
    let mirrored = store.peer_entries(&sc.id, 0, usize::MAX).unwrap();
    let theirs = sc.node.entries(0, sc.node.tree_size()).unwrap();
    assert_eq!(mirrored, theirs);
    for i in [0, MAX_MIRROR_STEP_ENTRIES as usize + 499] {
        assert!(find_party(&state, &key_for(i).public_key())
            .unwrap()
            .is_some());
    }
}

fn key_for(i: usize) -> vledger_tlog::keys::SigningKey {
    let mut seed = [7u8; 32];
    seed[..8].copy_from_slice(&(i as u64).to_be_bytes());
    vledger_tlog::keys::SigningKey::from_bytes(&seed)
}

#[test]
fn a_forked_region_is_caught_with_evidence_that_verifies_and_adoption_stops() {
    let cq = Region::found("cq", 1);
    let sc = Region::found("sc", 2);
    sc.register(&key(50), "agency");
    sc.register(&key(53), "agency");
    let (mut mirror, mut source) = mirror(&sc, &cq);
    catch_up(&mut mirror, &mut source);
    let adopted = sc.node.tree_size();

    // A second node from a copy of sc's store, under the same key, with other later entries.
    drop(source);
    let (sc, fork) = sc.fork(2);
    let source = LocalSource {
        node: sc.node.clone(),
    };
    fork.register(&key(51), "agency");
    fork.register(&key(52), "agency");
    let mut fork_source = LocalSource {
        node: fork.node.clone(),
    };
    // Consistent so far: the fork extends what was adopted, and is adopted.
    catch_up(&mut mirror, &mut fork_source);
    drop(fork_source);
    drop(mirror);
    drop(source);
    sc.register(&key(60), "agency");
    sc.register(&key(61), "agency");
    sc.register(&key(62), "agency");
    assert!(adopted < sc.node.tree_size());

    let dir = tempfile::tempdir().unwrap();
    let mut mirror = Mirror::new(
        cq.node.clone(),
        sc.as_peer(),
        Some(dir.path().to_path_buf()),
    );
    let mut source = LocalSource {
        node: sc.node.clone(),
    };
    let before = load_adopted(&cq.node.state(), &sc.id).unwrap().unwrap();
    assert!(matches!(
        mirror.step(&mut source, 1_000),
        StepOutcome::Halted
    ));
    let evidence = mirror
        .status()
        .read()
        .unwrap()
        .equivocation
        .clone()
        .expect("evidence");
    evidence.check().expect("the evidence proves the fork");
    let written = std::fs::read_to_string(dir.path().join("sc.json")).unwrap();
    let written: vledger_tlog::evidence::Evidence = serde_json::from_str(&written).unwrap();
    written.check().unwrap();
    // Nothing more is adopted, even after a restart of the mirror.
    assert!(matches!(
        mirror.step(&mut source, 2_000),
        StepOutcome::Halted
    ));
    let mut again = Mirror::new(
        cq.node.clone(),
        sc.as_peer(),
        Some(dir.path().to_path_buf()),
    );
    assert!(matches!(
        again.step(&mut source, 3_000),
        StepOutcome::Halted
    ));
    assert_eq!(
        load_adopted(&cq.node.state(), &sc.id).unwrap().unwrap(),
        before
    );
}
