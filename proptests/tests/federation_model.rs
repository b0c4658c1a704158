//! Model-based test of the federation: three regions (`cq`, `sc`, `cd`), each its own state
//! machine (`vledger_domain::apply` on a `MemoryState`) writing real signed entries into its own
//! log, driven by random commands across regions and checked after every step against a
//! reference model of the money.
//!
//! Each region is founded by `region.genesis`, with its own admin, two enterprises, an accredited
//! agency whose listing lives in the agency's home log, an escrow provider, and two programs whose
//! `spend_regions` are all three regions: `pi` (`cross_region_payer: issuing_region`: the voucher's
//! region pays a foreign agency itself) and `pa` (`agency_region`: the agency's region advances the
//! payout, and the voucher's region owes it through settlement).
//!
//! Adoption is done through the real command path without a node: "adopt R into S" signs R's
//! checkpoint (its real Merkle root, with an RFC 9162 consistency proof from the size S adopted
//! before) with R's node key, and applies `federation.adopt` signed by S's node key to S's state;
//! the entry that records it then writes R's records under S's view (`fed/R/<R's key>`, from
//! `view_key`), as the node's writer installs a mirror step's view changes after the command's
//! events. The view changes are made as the node's mirror makes them: R's entries past the size
//! S adopted, replayed by the offline replayer onto S's view of R (`RegionView`), the decisions
//! that read a third region's records folded from their recorded events; after each adoption the
//! view is checked to hold exactly R's records, and at the end every region's events are checked
//! to fold into its state.
//!
//! The random steps: adoptions, voucher issues, orders placed with a voucher of region X on a
//! listing of region Y (read from X's view of Y), the enterprise share paid directly or through
//! the escrow provider of any region, delivery and claims by Y's agency signing on X, reviews and
//! `claim.pay` by the payer's admin (X's, or Y's when Y advances), disputes and cancels, and
//! settlement statements: proposed by X's admin from the draft query
//! (`queries::statement_draft`), signed by X's and Y's admins (Y's admin known on X through the
//! adoption), their payment recorded.
//!
//! After every step:
//! - every program's budget buckets equal the model's and add up to its budget, and each
//!   program's outstanding value is exactly its vouchers' balances plus their committed shares;
//! - every voucher's balance equals the model's, every escrow's funds add up;
//! - positions: a position `settle/X/Y` lives only in its debtor X's log, and equals both the
//!   model's (payouts Y advanced for X's claims, less X's statements to Y paid) and, from X's
//!   state alone, the sum of X's advanced payouts owed to Y less the nets of X's paid statements
//!   to Y; summed over the regions, what each is owed less what it owes is zero;
//! - no value is created or lost across regions: every program's buckets add up to its budget
//!   (issued = held in buckets + paid to agencies + receivables + recovered), and what the
//!   agencies were paid over all regions (the programs' `spent`, `clawed_back` and `recovered`
//!   buckets: a clawback makes a payout a receivable from the agency, it does not undo the
//!   advance) equals what the funding regions paid them directly, plus what the agencies'
//!   regions advanced: the statements paid back and the positions still open.
//!
//! The claims are reviewed at one level with no notice period, and the programs' caps per
//! enterprise and group are the budget, so that most lives reach their payout; the single-region
//! test (`domain_model.rs`) covers the caps, the reviews, freezes, expiries and the replay.

use std::collections::{BTreeMap, BTreeSet};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use proptest::prelude::*;
use serde_json::{json, Value};
use vledger_domain::claims::{load_claim, ClaimStatus, SettlementPosition, SETTLEMENT_PREFIX};
use vledger_domain::federation::{load_adopted, view_prefix, VIEW_NONCE_PREFIX, VIEW_PREFIX};
use vledger_domain::money::AmountMinor;
use vledger_domain::orders::{load_order, quote_order, EscrowStatus, ListingRef, OrderRecord};
use vledger_domain::programs::{load_program, BudgetBuckets};
use vledger_domain::queries::statement_draft;
use vledger_domain::settlement::{
    AdvancedPayout, ProposeStatementBody, StatementRecord, StatementStatus, STATEMENT_PREFIX,
};
use vledger_domain::types::RegionId;
use vledger_domain::vouchers::load_voucher;
use vledger_domain::{
    self as domain, ApplyContext, ApplyError, Command, Event, MemoryState, Rejection, StateWrite,
};
use vledger_federation::view::RegionView;
use vledger_offline::replay::{EventFolder, ReplayPosition, Replayer};
use vledger_tlog::keys::SigningKey;
use vledger_tlog::merkle::{consistency_proof, leaf_hash, MemoryTree};
use vledger_tlog::note::{Checkpoint, NoteSigner};
use vledger_wire::entry::Entry;
use vledger_wire::envelope::{seal, CommandPayload, VerifiedEnvelope};

const DAY_MS: u64 = 86_400_000;
const START_MS: u64 = 1_767_225_600_000;
const BUDGET: u64 = 2_000_000;
const PER_VOUCHER: u64 = 300_000;
const PER_ORDER: u64 = 100_000;
const RATIO_BPS: u64 = 6000;
const LISTING_PRICE: u64 = 100_000;
const VALID_UNTIL_MS: u64 = START_MS + 300 * DAY_MS;
const REGIONS: [&str; 3] = ["cq", "sc", "cd"];
const N: usize = REGIONS.len();
/// The two programs of every region: the funding region pays, or the agency's region advances.
const PROGRAMS: [&str; 2] = ["pi", "pa"];
const PAYERS: [&str; 2] = ["issuing_region", "agency_region"];
/// The payouts that need settling live under this prefix (`settlement::PAYOUT_PREFIX`).
const PAYOUT_PREFIX: &[u8] = b"spayout/";

fn rid(r: usize) -> RegionId {
    REGIONS[r].try_into().unwrap()
}

fn b64(k: &SigningKey) -> String {
    k.public_key().to_base64()
}

fn key() -> SigningKey {
    SigningKey::generate(&mut rand_core::OsRng)
}

/// One region: its state, its log (entries and tree) and its parties' keys.
#[derive(Clone)]
struct Region {
    index: usize,
    state: MemoryState,
    entries: Vec<Vec<u8>>,
    tree: MemoryTree,
    node: SigningKey,
    nonce: u64,
    admin: SigningKey,
    enterprises: [SigningKey; 2],
    agency: SigningKey,
    escrow: SigningKey,
}

type ViewChanges = Vec<(Vec<u8>, Option<Vec<u8>>)>;

impl Region {
    fn origin(&self) -> String {
        format!("vledger.test/{}", REGIONS[self.index])
    }

    fn note_signer(&self) -> NoteSigner {
        NoteSigner::new(self.origin(), self.node.clone()).unwrap()
    }

    /// Applies a signed command as the writer does; `view_changes` are written with the entry,
    /// after its events, as the writer installs a mirror step's. Returns the events and the
    /// entry's index.
    fn submit(
        &mut self,
        signer: &SigningKey,
        time_ms: u64,
        command_type: &str,
        body: Value,
        view_changes: ViewChanges,
    ) -> Result<(Vec<Event>, u64), Rejection> {
        self.nonce += 1;
        let payload = CommandPayload {
            v: 1,
            command_type: command_type.into(),
            region: rid(self.index),
            signer: signer.public_key(),
            nonce: format!("n{}", self.nonce),
            body,
        };
        let envelope = VerifiedEnvelope::parse_and_verify(&seal(&payload, signer)).unwrap();
        let command = Command::parse(command_type, &envelope.payload.body)?;
        let index = self.entries.len() as u64;
        let ctx = ApplyContext {
            index,
            node_time_ms: time_ms,
            region: rid(self.index),
            node_key: self.node.public_key(),
        };
        match domain::apply(&mut self.state, &ctx, &signer.public_key(), &command) {
            Ok(events) => {
                let prefix = view_prefix(&rid(self.index));
                for (key, value) in view_changes {
                    assert!(!key.starts_with(&prefix));
                    match value {
                        Some(value) => self.state.put_raw(key, value),
                        None => self.state.delete(key),
                    }
                }
                let prev_leaf_hash = self.entries.last().map(|e| leaf_hash(e)).unwrap_or([0; 32]);
                let entry = Entry {
                    index,
                    node_time_ms: time_ms,
                    prev_leaf_hash,
                    envelope: envelope.raw,
                    events: domain::encode_events(&events),
                };
                let bytes = entry.encode();
                self.tree.append(&bytes);
                self.entries.push(bytes);
                Ok((events, index))
            }
            Err(ApplyError::Rejected(r)) => Err(r),
            Err(ApplyError::State(e)) => panic!("state error in {}: {e}", REGIONS[self.index]),
        }
    }

    fn run(&mut self, signer: &SigningKey, time_ms: u64, command_type: &str, body: Value) {
        if let Err(r) = self.submit(signer, time_ms, command_type, body, Vec::new()) {
            panic!("{command_type} in {}: {r:?}", REGIONS[self.index]);
        }
    }

    fn order(&self, id: &str) -> OrderRecord {
        load_order(&self.state, &id.try_into().unwrap())
            .unwrap()
            .unwrap()
    }
}

#[derive(Debug, Clone)]
struct VoucherM {
    holder: usize,
    balance: u64,
    program: usize,
}

#[derive(Debug, Clone)]
struct OrderM {
    voucher: String,
    share: u64,
    listing_region: usize,
    program: usize,
    escrow_region: Option<usize>,
}

#[derive(Debug, Clone)]
struct StatementM {
    creditor: usize,
    net: u64,
    signed: BTreeSet<usize>,
    status: StatementStatus,
}

/// An advanced payout not yet named by a statement: (order, amount, paid at, entry).
type OpenPayout = (String, u64, u64, u64);

/// The reference model: where the money of the federation should be.
#[derive(Debug, Clone, Default)]
struct Model {
    /// (region, program) -> buckets.
    buckets: BTreeMap<(usize, usize), BudgetBuckets>,
    /// (region, voucher id) -> voucher.
    vouchers: BTreeMap<(usize, String), VoucherM>,
    /// (funding region, order id) -> order.
    orders: BTreeMap<(usize, String), OrderM>,
    /// (debtor, statement id) -> statement.
    statements: BTreeMap<(usize, String), StatementM>,
    /// [into][from]: the size of `from`'s log that `into` adopted.
    adopted: [[u64; N]; N],
    /// Per funding region: claims it paid the agency itself.
    paid_directly: [u64; N],
    /// [debtor][creditor]: payouts the creditor advanced for the debtor's claims.
    advanced: [[u64; N]; N],
    /// [debtor][creditor]: statements the debtor paid the creditor.
    settled: [[u64; N]; N],
    /// [debtor][creditor]: advanced payouts no statement names yet, in the order they were paid.
    open: [[Vec<OpenPayout>; N]; N],
}

#[derive(Clone)]
struct World {
    regions: Vec<Region>,
    time_ms: u64,
    model: Model,
    next_id: u64,
}

impl World {
    fn new() -> Self {
        let time_ms = START_MS;
        let mut regions = Vec::new();
        let mut model = Model::default();
        for (r, name) in REGIONS.iter().enumerate() {
            let mut region = Region {
                index: r,
                state: MemoryState::default(),
                entries: Vec::new(),
                tree: MemoryTree::new(),
                node: key(),
                nonce: 0,
                admin: key(),
                enterprises: [key(), key()],
                agency: key(),
                escrow: key(),
            };
            let (node, admin) = (region.node.clone(), region.admin.clone());
            let genesis = json!({ "region_name": name.to_uppercase(), "admin_key": b64(&admin), "admin_name": "A" });
            region.run(&node, time_ms, "region.genesis", genesis);
            let parties = [
                (region.enterprises[0].clone(), "enterprise"),
                (region.enterprises[1].clone(), "enterprise"),
                (region.agency.clone(), "agency"),
                (region.escrow.clone(), "escrow"),
            ];
            for (k, role) in parties {
                let body =
                    json!({ "key": b64(&k), "role": role, "home_region": name, "name": role });
                region.run(&admin, time_ms, "party.register", body);
            }
            let accredit =
                json!({ "agency": b64(&region.agency), "expires_at_ms": START_MS + 400 * DAY_MS });
            region.run(&admin, time_ms, "agency.accredit", accredit);
            for (p, (program, payer)) in PROGRAMS.iter().zip(PAYERS).enumerate() {
                let body = json!({
                    "program_id": program, "name": program, "kind": "resource_sharing", "currency": "CNY",
                    "budget_minor": BUDGET, "subsidy_ratio_bps": RATIO_BPS,
                    "caps": { "per_voucher_minor": PER_VOUCHER, "per_order_minor": PER_ORDER,
                              "per_enterprise_year_minor": BUDGET, "per_group_year_minor": BUDGET },
                    "eligible_categories": ["testing"], "valid_from_ms": START_MS, "valid_until_ms": VALID_UNTIL_MS,
                    "claim_deadline_ms": START_MS + 360 * DAY_MS, "spend_regions": REGIONS,
                    "cross_region_payer": payer, "use_mode": "multi", "review_levels": 1, "notice_period_ms": 0
                });
                region.run(&admin, time_ms, "program.create", body);
                model.buckets.insert(
                    (r, p),
                    BudgetBuckets {
                        unissued_minor: BUDGET,
                        ..BudgetBuckets::default()
                    },
                );
                for e in region.enterprises.clone() {
                    let body = json!({ "program_id": program, "enterprise": b64(&e), "expires_at_ms": VALID_UNTIL_MS });
                    region.run(&admin, time_ms, "enterprise.qualify", body);
                }
            }
            // The listing lives in its agency's home log.
            let listing = json!({ "listing_id": format!("l{name}"), "pool": "instruments_equipment",
                "category": "testing", "title": "检测", "description": "testing",
                "price_minor": LISTING_PRICE, "currency": "CNY" });
            let agency = region.agency.clone();
            region.run(&agency, time_ms, "catalog.list", listing);
            regions.push(region);
        }
        let mut w = World {
            regions,
            time_ms,
            model,
            next_id: 0,
        };
        // A voucher of each program to start with, so that short sequences reach the payouts.
        for r in 0..N {
            for p in 0..PROGRAMS.len() {
                w.issue(r, p, p, PER_VOUCHER);
            }
        }
        w
    }

    fn fresh_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}{}", self.next_id)
    }

    fn nth<K: Clone, V>(map: &BTreeMap<K, V>, n: usize, keep: impl Fn(&K) -> bool) -> Option<K> {
        let keys: Vec<&K> = map.keys().filter(|k| keep(k)).collect();
        (!keys.is_empty()).then(|| keys[n % keys.len()].clone())
    }

    /// "Adopt `from` into `into`": `federation.adopt` of `from`'s latest checkpoint, with the
    /// view changes the writer installs with it.
    fn adopt(&mut self, from: usize, into: usize) -> Result<(), Rejection> {
        let source = &self.regions[from];
        let size = source.entries.len() as u64;
        let checkpoint = Checkpoint {
            origin: source.origin(),
            size,
            root_hash: source.tree.root(),
            extensions: Vec::new(),
        };
        let signer = source.note_signer();
        let note = signer.sign(&checkpoint.to_text()).unwrap();
        let before = load_adopted(&self.regions[into].state, &rid(from)).unwrap();
        assert_eq!(
            before.as_ref().map_or(0, |b| b.size),
            self.model.adopted[into][from]
        );
        let proof = match &before {
            Some(b) if b.size <= size => consistency_proof(&source.tree, b.size, size).unwrap(),
            _ => Vec::new(),
        };
        // The view changes as the node's mirror makes them: R's entries past the size adopted,
        // replayed by the same state machine onto S's view of R (the decisions that read a
        // third region's records folded from their recorded events).
        let adopted = self.model.adopted[into][from];
        let position = match adopted {
            0 => ReplayPosition::start(),
            n => {
                let last = &source.entries[n as usize - 1];
                ReplayPosition {
                    next_index: n,
                    prev_leaf: leaf_hash(last),
                    last_time_ms: Entry::decode(last).unwrap().node_time_ms,
                    origin: Some((rid(from), source.node.public_key())),
                }
            }
        };
        let view = RegionView::new(&self.regions[into].state, rid(from));
        let mut replayer = Replayer::resume(view, position).folding_foreign_decisions();
        for (i, entry) in source.entries.iter().enumerate().skip(adopted as usize) {
            replayer
                .apply_entry(entry)
                .unwrap_or_else(|e| panic!("entry {i} of {from} fails the mirror's replay: {e}"));
        }
        let changes = replayer.into_state().into_view_changes();
        let body = json!({
            "region": REGIONS[from], "verifier_key": signer.verifier().to_verifier_key(),
            "checkpoint": note, "consistency": proof.iter().map(|h| B64.encode(h)).collect::<Vec<_>>(),
        });
        let node = self.regions[into].node.clone();
        let result =
            self.regions[into].submit(&node, self.time_ms, "federation.adopt", body, changes);
        let newer = self.model.adopted[into][from] < size;
        match &result {
            Ok((events, _)) => {
                assert!(newer, "size {size} of {from} adopted twice");
                assert!(
                    matches!(&events[..], [Event::RegionAdopted { size: s, .. }] if *s == size)
                );
                self.model.adopted[into][from] = size;
                self.check_view(from, into);
            }
            Err(r) => assert!(
                !newer && matches!(r, Rejection::InvalidAdoption(_)),
                "adoption of {from} into {into} at size {size}: {r:?}"
            ),
        }
        result.map(|_| ())
    }

    /// Just after an adoption, `into`'s view of `from` holds exactly `from`'s records: all but
    /// its own views of third regions (its adoption records, folded, are there), with the
    /// (signer, nonce) pairs it used.
    fn check_view(&self, from: usize, into: usize) {
        let prefix = view_prefix(&rid(from));
        let nonces = [prefix.as_slice(), VIEW_NONCE_PREFIX].concat();
        let view: BTreeMap<&[u8], &Vec<u8>> = self.regions[into]
            .state
            .records
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter(|(k, _)| !k.starts_with(&nonces))
            .map(|(k, v)| (&k[prefix.len()..], v))
            .collect();
        let own: BTreeMap<&[u8], &Vec<u8>> = self.regions[from]
            .state
            .records
            .iter()
            .filter(|(k, _)| !k.starts_with(VIEW_PREFIX))
            .map(|(k, v)| (k.as_slice(), v))
            .collect();
        assert_eq!(view, own, "{into}'s view of {from} is not {from}'s state");
    }

    /// Each region's log, its recorded events folded from nothing, gives the region's state but
    /// for the views of other regions, which the writer adds beside the adoptions' events. (A
    /// replay that decides again needs those views, from the other regions' archives: the
    /// federation's verification does that, not this test.)
    fn check_folded(&self) {
        for (r, region) in self.regions.iter().enumerate() {
            let mut folder = EventFolder::default();
            for (i, entry) in region.entries.iter().enumerate() {
                folder
                    .fold(entry)
                    .unwrap_or_else(|e| panic!("folding entry {i} of {r}: {e}"));
            }
            let own = |state: &MemoryState| -> BTreeMap<Vec<u8>, Vec<u8>> {
                state
                    .records
                    .iter()
                    .filter(|(k, _)| !k.starts_with(VIEW_PREFIX))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            };
            assert_eq!(
                own(&folder.state().state),
                own(&region.state),
                "{r}'s events do not fold into its state"
            );
        }
    }

    fn issue(&mut self, r: usize, program: usize, holder: usize, face: u64) {
        let id = self.fresh_id("v");
        let region = &mut self.regions[r];
        let body = json!({ "voucher_id": id, "program_id": PROGRAMS[program],
            "holder": b64(&region.enterprises[holder]), "face_value_minor": face });
        let admin = region.admin.clone();
        let result = region.submit(&admin, self.time_ms, "voucher.issue", body, Vec::new());
        let buckets = self.model.buckets.get_mut(&(r, program)).unwrap();
        let expected =
            self.time_ms < VALID_UNTIL_MS && face <= PER_VOUCHER && face <= buckets.unissued_minor;
        assert_eq!(result.is_ok(), expected, "issue {face}: {result:?}");
        if result.is_ok() {
            buckets.unissued_minor -= face;
            buckets.outstanding_minor += face;
            self.model.vouchers.insert(
                (r, id),
                VoucherM {
                    holder,
                    balance: face,
                    program,
                },
            );
        }
    }

    fn place(&mut self, voucher: usize, y: usize, price: u64, escrow: Option<usize>) {
        let Some((x, voucher_id)) = Self::nth(&self.model.vouchers, voucher, |_| true) else {
            return;
        };
        let VoucherM {
            holder,
            balance,
            program,
        } = self.model.vouchers[&(x, voucher_id.clone())].clone();
        let id = self.fresh_id("o");
        let listing_id = format!("l{}", REGIONS[y]);
        let listing_region = (y != x).then(|| rid(y));
        let quote = quote_order(
            &self.regions[x].state,
            self.time_ms,
            &voucher_id.as_str().try_into().unwrap(),
            ListingRef {
                id: &listing_id.as_str().try_into().unwrap(),
                region: listing_region.as_ref(),
            },
            AmountMinor::new(price).unwrap(),
        );
        let payment = match escrow {
            Some(z) => {
                json!({ "mode": "escrow", "escrow_provider": b64(&self.regions[z].escrow), "fee_minor": 10 })
            }
            None => json!({ "mode": "direct" }),
        };
        let mut body = json!({ "order_id": id, "listing_id": listing_id, "voucher_id": voucher_id,
            "price_minor": price, "payment": payment, "auto_confirm_after_ms": 3 * DAY_MS });
        if y != x {
            body["listing_region"] = json!(REGIONS[y]);
        }
        let enterprise = self.regions[x].enterprises[holder].clone();
        let result =
            self.regions[x].submit(&enterprise, self.time_ms, "order.place", body, Vec::new());
        match (&quote, &result) {
            (Ok(q), Ok((events, _))) => assert!(
                matches!(events[0], Event::OrderPlaced { voucher_share_minor, enterprise_share_minor, .. }
                    if voucher_share_minor == q.voucher_share_minor && enterprise_share_minor == q.enterprise_share_minor),
                "placement differs from its quote {q:?}: {events:?}"
            ),
            (Err(ApplyError::Rejected(q)), Err(r)) => {
                assert_eq!(q, r, "the quote and placement refuse differently")
            }
            // The quote does not read the payment plan: an unknown escrow provider.
            (Ok(_), Err(Rejection::PartyNotFound)) if escrow.is_some() => {}
            (q, r) => panic!("quote {q:?} and placement {r:?} disagree"),
        }
        // The listing of another region is read only as adopted.
        let known = |w: &World, z: usize| z == x || w.model.adopted[x][z] > 0;
        match result {
            Ok((events, _)) => {
                assert!(known(self, y), "an order on a listing {x} never adopted");
                assert!(escrow.is_none_or(|z| known(self, z)));
                let Event::OrderPlaced {
                    voucher_share_minor: share,
                    enterprise_share_minor: rest,
                    ref agency_region,
                    ..
                } = events[0]
                else {
                    panic!("{events:?}")
                };
                assert_eq!(*agency_region, rid(y));
                assert!(share > 0 && share <= balance && share <= PER_ORDER);
                assert!(share <= price * RATIO_BPS / 10_000);
                assert_eq!(share + rest, price);
                let v = self
                    .model
                    .vouchers
                    .get_mut(&(x, voucher_id.clone()))
                    .unwrap();
                v.balance -= share;
                self.model.orders.insert(
                    (x, id),
                    OrderM {
                        voucher: voucher_id,
                        share,
                        listing_region: y,
                        program,
                        escrow_region: escrow,
                    },
                );
            }
            Err(Rejection::ListingNotFound(_)) => {
                assert!(
                    !known(self, y),
                    "a listing of {y} adopted into {x} not found"
                )
            }
            Err(Rejection::PartyNotFound) => {
                assert!(escrow.is_some_and(|z| !known(self, z)))
            }
            Err(r) => assert!(
                matches!(
                    r,
                    Rejection::NoSubsidyLeft { .. } | Rejection::ProgramNotOpen { .. }
                ) || matches!(r, Rejection::PriceAboveListing { .. } if price > LISTING_PRICE),
                "{r:?}"
            ),
        }
    }

    /// The next step of an order's life, as its parties would take it.
    fn next_action(&self, x: usize, id: &str) -> Option<Action> {
        use vledger_domain::orders::OrderStatus::*;
        let order = self.regions[x].order(id);
        match order.status {
            Placed => match &order.escrow {
                Some(e) if e.status == EscrowStatus::AwaitingFunds => Some(Action::Fund),
                Some(_) => Some(Action::Deliver),
                None => match order
                    .installments
                    .iter()
                    .position(|i| i.paid_at_ms.is_none())
                {
                    Some(i) => Some(Action::Acknowledge(i as u32)),
                    None => Some(Action::Deliver),
                },
            },
            Delivered => Some(Action::Confirm),
            Disputed => Some(Action::Resolve(true)),
            Confirmed => match load_claim(&self.regions[x].state, &id.try_into().unwrap())
                .unwrap()
                .map(|c| c.status)
            {
                None => Some(Action::Claim),
                Some(ClaimStatus::InReview) => Some(Action::Review(true)),
                Some(ClaimStatus::InNotice) => Some(Action::Pay),
                Some(_) => None,
            },
            Cancelled => None,
        }
    }

    fn order_step(&mut self, order: usize, action: Action) {
        // The next natural step is taken on an order that has one; any other on any order.
        let live = |(x, id): &(usize, String)| self.next_action(*x, id).is_some();
        let picked = match action {
            Action::Next => Self::nth(&self.model.orders, order, live),
            _ => Self::nth(&self.model.orders, order, |_| true),
        };
        let Some((x, order_id)) = picked else {
            return;
        };
        let action = match action {
            Action::Next => match self.next_action(x, &order_id) {
                Some(a) => a,
                None => return,
            },
            a => a,
        };
        let m = self.model.orders[&(x, order_id.clone())].clone();
        let region = &self.regions[x];
        let record = region.order(&order_id);
        let enterprise = region
            .enterprises
            .iter()
            .find(|k| k.public_key() == record.enterprise)
            .unwrap()
            .clone();
        // The agency of the listing's region signs on the order's region.
        let agency = self.regions[m.listing_region].agency.clone();
        assert_eq!(agency.public_key(), record.agency);
        let admin = region.admin.clone();
        let node = region.node.clone();
        let body = json!({ "order_id": order_id, "reason": "r" });
        let (signer, command, body) = match action {
            Action::Next => unreachable!(),
            Action::Fund => {
                let Some(z) = m.escrow_region else { return };
                let fund = json!({ "order_id": order_id, "amount_minor": record.enterprise_share_minor, "reference": "R" });
                (self.regions[z].escrow.clone(), "escrow.fund", fund)
            }
            Action::Acknowledge(i) => (
                agency,
                "payment.acknowledge",
                json!({ "order_id": order_id, "installment": i, "reference": "B" }),
            ),
            Action::Deliver => {
                let evidence = json!([{ "kind": "report", "sha256": "ab".repeat(32) }]);
                (
                    agency,
                    "order.deliver",
                    json!({ "order_id": order_id, "evidence": evidence }),
                )
            }
            Action::Confirm => (enterprise, "order.confirm", body),
            Action::Dispute => (enterprise, "order.dispute", body),
            Action::Cancel => (enterprise, "order.cancel", body),
            Action::AgencyCancel => (agency, "order.cancel", body),
            Action::AutoConfirm => (node, "order.auto_confirm", body),
            Action::Resolve(release) => {
                let outcome = if release { "release" } else { "refund" };
                (
                    admin,
                    "dispute.resolve",
                    json!({ "order_id": order_id, "outcome": outcome, "reason": "r" }),
                )
            }
            Action::Claim => (agency, "claim.submit", json!({ "order_id": order_id })),
            Action::Review(approve) => {
                let decision = if approve { "approve" } else { "reject" };
                (
                    admin,
                    "claim.review",
                    json!({ "order_id": order_id, "level": 1, "decision": decision }),
                )
            }
            // The payout's payer signs it: the agency's region's admin when it advances.
            Action::Pay => (
                if m.listing_region != x && PAYERS[m.program] == "agency_region" {
                    self.regions[m.listing_region].admin.clone()
                } else {
                    admin
                },
                "claim.pay",
                json!({ "order_id": order_id, "reference": "T" }),
            ),
            Action::Clawback => (
                admin,
                "claim.clawback",
                json!({ "order_id": order_id, "reason": "forged invoice" }),
            ),
            Action::Recover(amount) => (
                admin,
                "claim.recover",
                json!({ "order_id": order_id, "amount_minor": amount, "reference": "B" }),
            ),
        };
        let result =
            self.regions[x].submit(&signer, self.time_ms, command, body.clone(), Vec::new());
        let Ok((events, index)) = result else { return };
        for event in events {
            self.model_order_event(x, &order_id, index, &event);
        }
    }

    fn return_share(&mut self, x: usize, order_id: &str) {
        let m = &self.model.orders[&(x, order_id.to_string())];
        let (voucher, share) = (m.voucher.clone(), m.share);
        self.model.vouchers.get_mut(&(x, voucher)).unwrap().balance += share;
    }

    fn model_order_event(&mut self, x: usize, order_id: &str, index: u64, event: &Event) {
        match event {
            Event::OrderCancelled { .. } | Event::ClaimRejected { .. } => {
                self.return_share(x, order_id)
            }
            Event::ClaimPaid {
                amount_minor,
                advanced_by,
                ..
            } => {
                let m = self.model.orders[&(x, order_id.to_string())].clone();
                assert_eq!(*amount_minor, m.share);
                let b = self.model.buckets.get_mut(&(x, m.program)).unwrap();
                b.outstanding_minor -= amount_minor;
                b.spent_minor += amount_minor;
                let y = m.listing_region;
                let advances = y != x && PAYERS[m.program] == "agency_region";
                assert_eq!(
                    advanced_by.clone(),
                    advances.then(|| rid(y)),
                    "who pays order {order_id} of {x} with an agency of {y}"
                );
                if advances {
                    self.model.advanced[x][y] += amount_minor;
                    self.model.open[x][y].push((
                        order_id.to_string(),
                        *amount_minor,
                        self.time_ms,
                        index,
                    ));
                } else {
                    self.model.paid_directly[x] += amount_minor;
                }
            }
            // A clawback makes the paid amount a receivable from the agency; the position the
            // payout's advance opened stays: the funding region still owes the agency's region.
            Event::ClaimClawedBack {
                receivable_minor, ..
            } => {
                let m = &self.model.orders[&(x, order_id.to_string())];
                assert_eq!(*receivable_minor, m.share);
                let b = self.model.buckets.get_mut(&(x, m.program)).unwrap();
                b.spent_minor -= receivable_minor;
                b.clawed_back_minor += receivable_minor;
            }
            Event::ClaimRecovered { amount_minor, .. } => {
                let m = &self.model.orders[&(x, order_id.to_string())];
                let b = self.model.buckets.get_mut(&(x, m.program)).unwrap();
                b.clawed_back_minor -= amount_minor;
                b.recovered_minor += amount_minor;
            }
            _ => {}
        }
    }

    /// `settlement.propose` by `x`'s admin of every open payout owed to `creditor` from the
    /// start to now, as the draft query gives them.
    fn propose(&mut self, x: usize, creditor: usize) {
        if creditor == x || self.time_ms <= START_MS {
            return;
        }
        let id = self.fresh_id("s");
        let period: ProposeStatementBody = serde_json::from_value(json!({
            "statement_id": id, "creditor": REGIONS[creditor], "from_ms": START_MS,
            "until_ms": self.time_ms, "lines": [], "gross_debtor_to_creditor_minor": 0,
            "gross_creditor_to_debtor_minor": 0, "net_minor": 0 }))
        .unwrap();
        let region = &self.regions[x];
        let draft = statement_draft(&region.state, self.time_ms, &rid(creditor), &period).unwrap();
        let model_open: Vec<&OpenPayout> = self.model.open[x][creditor]
            .iter()
            .filter(|(_, _, at, _)| *at < self.time_ms)
            .collect();
        assert_eq!(
            draft
                .payouts
                .iter()
                .map(|p| (p.order_id.to_string(), p.amount_minor, p.log_index))
                .collect::<Vec<_>>(),
            model_open
                .iter()
                .map(|(o, a, _, i)| (o.clone(), *a, *i))
                .collect::<Vec<_>>(),
            "the draft of {x} to {creditor} differs from the model's open payouts"
        );
        let lines: Vec<Value> = draft
            .payouts
            .iter()
            .map(|p| {
                json!({ "region": REGIONS[x], "log_index": p.log_index,
                    "leaf_hash": B64.encode(leaf_hash(&region.entries[p.log_index as usize])),
                    "order_id": p.order_id, "amount_minor": p.amount_minor, "direction": "debtor_to_creditor" })
            })
            .collect();
        let gross: u64 = draft.payouts.iter().map(|p| p.amount_minor).sum();
        let body = json!({ "statement_id": id, "creditor": REGIONS[creditor], "from_ms": START_MS,
            "until_ms": self.time_ms, "lines": lines, "gross_debtor_to_creditor_minor": gross,
            "gross_creditor_to_debtor_minor": 0, "net_minor": gross });
        let admin = region.admin.clone();
        let result =
            self.regions[x].submit(&admin, self.time_ms, "settlement.propose", body, Vec::new());
        let expected = !draft.payouts.is_empty();
        assert_eq!(result.is_ok(), expected, "proposal: {result:?}");
        if result.is_ok() {
            let named: BTreeSet<String> = draft
                .payouts
                .iter()
                .map(|p| p.order_id.to_string())
                .collect();
            self.model.open[x][creditor].retain(|(o, _, _, _)| !named.contains(o));
            self.model.statements.insert(
                (x, id),
                StatementM {
                    creditor,
                    net: gross,
                    signed: BTreeSet::new(),
                    status: StatementStatus::Proposed,
                },
            );
        }
    }

    fn sign(&mut self, statement: usize, by_creditor: bool) {
        let Some((x, id)) = Self::nth(&self.model.statements, statement, |k| {
            self.model.statements[k].status != StatementStatus::Paid
        }) else {
            return;
        };
        let m = self.model.statements[&(x, id.clone())].clone();
        let by = if by_creditor { m.creditor } else { x };
        let admin = self.regions[by].admin.clone();
        let body = json!({ "statement_id": id });
        let result =
            self.regions[x].submit(&admin, self.time_ms, "settlement.sign", body, Vec::new());
        // The creditor's admin is known on the debtor's node through an adoption (any: the admin
        // was founded with the creditor's log).
        let expected = m.status == StatementStatus::Proposed
            && !m.signed.contains(&by)
            && (by == x || self.model.adopted[x][by] > 0);
        assert_eq!(result.is_ok(), expected, "signature of {by}: {result:?}");
        if let Ok((events, _)) = result {
            let s = self.model.statements.get_mut(&(x, id)).unwrap();
            s.signed.insert(by);
            let in_effect = s.signed.len() == 2;
            assert!(
                matches!(events[0], Event::StatementSigned { in_effect: e, .. } if e == in_effect)
            );
            if in_effect {
                s.status = StatementStatus::Signed;
            }
        }
    }

    fn record_payment(&mut self, statement: usize) {
        let Some((x, id)) = Self::nth(&self.model.statements, statement, |k| {
            self.model.statements[k].status != StatementStatus::Paid
        }) else {
            return;
        };
        let m = self.model.statements[&(x, id.clone())].clone();
        let admin = self.regions[x].admin.clone();
        let body = json!({ "statement_id": id, "amount_minor": m.net, "reference": "TREASURY" });
        let result = self.regions[x].submit(
            &admin,
            self.time_ms,
            "settlement.record_payment",
            body,
            Vec::new(),
        );
        assert_eq!(
            result.is_ok(),
            m.status == StatementStatus::Signed,
            "payment of {m:?}: {result:?}"
        );
        if result.is_ok() {
            self.model.statements.get_mut(&(x, id)).unwrap().status = StatementStatus::Paid;
            self.model.settled[x][m.creditor] += m.net;
        }
    }

    fn step(&mut self, op: &Op) {
        match *op {
            Op::Adopt { from, offset } => {
                let into = (from + offset) % N;
                let _ = self.adopt(from, into);
            }
            Op::Issue {
                region,
                program,
                holder,
                face,
            } => self.issue(region, program, holder, face),
            Op::Place {
                voucher,
                listing_region,
                price,
                escrow,
            } => self.place(voucher, listing_region, price, escrow),
            Op::OrderStep { order, action } => self.order_step(order, action),
            Op::Drive { order } => {
                // An order's whole life at once, every invariant checked at each step.
                for _ in 0..8 {
                    self.order_step(order, Action::Next);
                    self.check();
                }
            }
            Op::Propose {
                debtor,
                offset,
                owed,
            } => {
                // Mostly a pair with payouts to settle, a moment after the last of them.
                let pairs: Vec<(usize, usize)> = (0..N)
                    .flat_map(|d| (0..N).map(move |c| (d, c)))
                    .filter(|&(d, c)| !self.model.open[d][c].is_empty())
                    .collect();
                match (owed, pairs.is_empty()) {
                    (true, false) => {
                        let (d, c) = pairs[(debtor * N + offset) % pairs.len()];
                        self.time_ms += 1;
                        self.propose(d, c)
                    }
                    _ => self.propose(debtor, (debtor + offset) % N),
                }
            }
            Op::Sign {
                statement,
                by_creditor,
            } => self.sign(statement, by_creditor),
            Op::RecordPayment { statement } => self.record_payment(statement),
            Op::Advance { ms } => self.time_ms += ms,
        }
    }

    /// Every invariant, after every step.
    fn check(&self) {
        let mut owed_to = [0i128; N];
        let mut owing = [0i128; N];
        let mut paid_total = 0u64;
        let mut positions_total = 0u64;
        for (x, region) in self.regions.iter().enumerate() {
            let state = &region.state;
            for (p, program) in PROGRAMS.iter().enumerate() {
                let buckets = load_program(state, &(*program).try_into().unwrap())
                    .unwrap()
                    .unwrap()
                    .buckets;
                assert_eq!(
                    buckets,
                    self.model.buckets[&(x, p)],
                    "program {program} of {x} differs from the model"
                );
                assert_eq!(buckets.total(), Some(BUDGET), "value is not conserved");
                // Paid to agencies: still spent, clawed back (a receivable) or recovered.
                paid_total +=
                    buckets.spent_minor + buckets.clawed_back_minor + buckets.recovered_minor;
            }
            // Outstanding is exactly the vouchers' balances and their committed shares.
            let mut outstanding = [0u64; 2];
            for ((vr, id), v) in &self.model.vouchers {
                if *vr != x {
                    continue;
                }
                let record = load_voucher(state, &id.as_str().try_into().unwrap())
                    .unwrap()
                    .unwrap();
                assert_eq!(record.balance_minor, v.balance, "voucher {id} of {x}");
                outstanding[v.program] += record.balance_minor + record.committed_minor;
            }
            for (p, held) in outstanding.iter().enumerate() {
                assert_eq!(
                    *held,
                    self.model.buckets[&(x, p)].outstanding_minor,
                    "program {p} of {x}: balances and committed shares"
                );
            }
            for (or, id) in self.model.orders.keys() {
                if *or != x {
                    continue;
                }
                if let Some(e) = &region.order(id).escrow {
                    assert_eq!(
                        e.funded_minor,
                        e.held_minor + e.released_minor + e.refunded_minor
                    );
                }
            }
            // Positions, as recorded in the debtor's log.
            let mut position = [0u64; N];
            for (k, v) in state.records.range(SETTLEMENT_PREFIX.to_vec()..) {
                if !k.starts_with(SETTLEMENT_PREFIX) {
                    break;
                }
                let p: SettlementPosition = domain::decode_record(k, v).unwrap();
                assert_eq!(
                    p.debtor,
                    rid(x),
                    "a position of another debtor in {x}'s log"
                );
                let c = REGIONS
                    .iter()
                    .position(|r| *r == p.creditor.as_str())
                    .unwrap();
                position[c] = p.amount_minor;
            }
            // The same from the debtor's records: advanced payouts less paid statements.
            let mut advanced = [0u64; N];
            for (k, v) in state.records.range(PAYOUT_PREFIX.to_vec()..) {
                if !k.starts_with(PAYOUT_PREFIX) {
                    break;
                }
                let p: AdvancedPayout = domain::decode_record(k, v).unwrap();
                assert_eq!(p.debtor, rid(x));
                let c = REGIONS
                    .iter()
                    .position(|r| *r == p.creditor.as_str())
                    .unwrap();
                advanced[c] += p.amount_minor;
            }
            let mut paid = [0u64; N];
            for (k, v) in state.records.range(STATEMENT_PREFIX.to_vec()..) {
                if !k.starts_with(STATEMENT_PREFIX) {
                    break;
                }
                let s: StatementRecord = domain::decode_record(k, v).unwrap();
                let c = REGIONS
                    .iter()
                    .position(|r| *r == s.creditor.as_str())
                    .unwrap();
                if s.status == StatementStatus::Paid {
                    paid[c] += s.net_minor;
                }
                let m = &self.model.statements[&(x, s.statement_id.to_string())];
                assert_eq!(s.status, m.status, "statement {}", s.statement_id);
            }
            for c in 0..N {
                let model = self.model.advanced[x][c] - self.model.settled[x][c];
                assert_eq!(
                    position[c], model,
                    "position settle/{x}/{c} differs from the model"
                );
                assert_eq!(
                    position[c],
                    advanced[c] - paid[c],
                    "position settle/{x}/{c} is not its payouts less its statements paid"
                );
                owing[x] += i128::from(position[c]);
                owed_to[c] += i128::from(position[c]);
                positions_total += position[c];
            }
            // Adoptions as the model has them.
            for from in 0..N {
                if from != x {
                    let size = load_adopted(state, &rid(from))
                        .unwrap()
                        .map_or(0, |a| a.size);
                    assert_eq!(size, self.model.adopted[x][from]);
                }
            }
        }
        let net: i128 = (0..N).map(|r| owed_to[r] - owing[r]).sum();
        assert_eq!(net, 0, "the federation's positions do not net to zero");
        // What the agencies were paid came from the funding region, or was advanced by the
        // agency's: paid back by a statement, or still owed.
        let settled: u64 = self.model.settled.iter().flatten().sum();
        let direct: u64 = self.model.paid_directly.iter().sum();
        assert_eq!(
            paid_total,
            direct + settled + positions_total,
            "value created or lost across regions"
        );
    }
}

#[derive(Debug, Clone, Copy)]
enum Action {
    /// The order's next natural step.
    Next,
    Fund,
    Acknowledge(u32),
    Deliver,
    Confirm,
    Dispute,
    Cancel,
    AgencyCancel,
    AutoConfirm,
    Resolve(bool),
    Claim,
    Review(bool),
    Pay,
    Clawback,
    Recover(u64),
}

#[derive(Debug, Clone)]
enum Op {
    Adopt {
        from: usize,
        offset: usize,
    },
    Issue {
        region: usize,
        program: usize,
        holder: usize,
        face: u64,
    },
    Place {
        voucher: usize,
        listing_region: usize,
        price: u64,
        escrow: Option<usize>,
    },
    OrderStep {
        order: usize,
        action: Action,
    },
    /// The next natural steps of one order, until its claim is paid or it ends.
    Drive {
        order: usize,
    },
    Propose {
        debtor: usize,
        offset: usize,
        /// A pair that has payouts to settle, if any.
        owed: bool,
    },
    Sign {
        statement: usize,
        by_creditor: bool,
    },
    RecordPayment {
        statement: usize,
    },
    Advance {
        ms: u64,
    },
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        20 => Just(Action::Next),
        1 => Just(Action::Fund),
        1 => (0u32..2).prop_map(Action::Acknowledge),
        1 => Just(Action::Deliver),
        1 => Just(Action::Confirm),
        1 => Just(Action::Dispute),
        1 => Just(Action::Cancel),
        1 => Just(Action::AgencyCancel),
        1 => Just(Action::AutoConfirm),
        1 => any::<bool>().prop_map(Action::Resolve),
        1 => Just(Action::Claim),
        1 => prop::bool::weighted(0.7).prop_map(Action::Review),
        1 => Just(Action::Pay),
        1 => Just(Action::Clawback),
        1 => (1u64..=60_000).prop_map(Action::Recover),
    ]
}

fn adopt() -> impl Strategy<Value = Op> {
    (0..N, 1..N).prop_map(|(from, offset)| Op::Adopt { from, offset })
}

/// A few adoptions first, then the commands of every kind: about 60 steps.
fn ops() -> impl Strategy<Value = Vec<Op>> {
    (
        prop::collection::vec(adopt(), 0..6),
        prop::collection::vec(op(), 40..60),
    )
        .prop_map(|(mut first, rest)| {
            first.extend(rest);
            first
        })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => adopt(),
        1 => (0..N, 0usize..2, 0usize..2, 1u64..=320_000)
            .prop_map(|(region, program, holder, face)| Op::Issue { region, program, holder, face }),
        7 => (any::<usize>(), 0..N, 1u64..=110_000, prop::option::weighted(0.3, 0..N))
            .prop_map(|(voucher, listing_region, price, escrow)| Op::Place { voucher, listing_region, price, escrow }),
        24 => (any::<usize>(), action()).prop_map(|(order, action)| Op::OrderStep { order, action }),
        3 => any::<usize>().prop_map(|order| Op::Drive { order }),
        4 => (0..N, 1..N, prop::bool::weighted(0.8)).prop_map(|(debtor, offset, owed)| Op::Propose { debtor, offset, owed }),
        6 => (any::<usize>(), any::<bool>()).prop_map(|(statement, by_creditor)| Op::Sign { statement, by_creditor }),
        3 => any::<usize>().prop_map(|statement| Op::RecordPayment { statement }),
        2 => (1u64..=5 * DAY_MS).prop_map(|ms| Op::Advance { ms }),
    ]
}

fn setup() -> &'static World {
    static SETUP: std::sync::OnceLock<World> = std::sync::OnceLock::new();
    SETUP.get_or_init(World::new)
}

/// 256 cases by default, about two seconds in the release profile (CI runs them);
/// `PROPTEST_CASES` for a longer run.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), max_shrink_iters: 1_000, ..ProptestConfig::default() })]

    #[test]
    fn random_commands_across_regions_keep_the_federations_money(ops in ops()) {
        let mut world = setup().clone();
        world.check();
        for op in &ops {
            world.step(op);
            world.check();
        }
        world.check_folded();
    }
}

/// One cross-region life from end to end, so that the random test's path is known to be
/// reachable: `cq`'s voucher of the advancing program on `sc`'s listing, paid by `cq` with the
/// payout advanced by `sc`, netted into a statement signed by both admins and paid.
#[test]
fn a_payout_advanced_by_the_agencys_region_is_settled_by_a_statement() {
    let mut w = setup().clone();
    let (cq, sc) = (0, 1);
    let voucher = w
        .model
        .vouchers
        .iter()
        .position(|((r, _), v)| *r == cq && v.program == 1)
        .unwrap();
    // Before `cq` adopted `sc`, `sc`'s listing is not known on `cq`.
    w.place(voucher, sc, 50_000, None);
    assert!(w.model.orders.is_empty());
    w.adopt(sc, cq).unwrap();
    w.check();
    w.place(voucher, sc, 50_000, Some(sc));
    assert_eq!(w.model.orders.len(), 1);
    for _ in 0..6 {
        w.order_step(0, Action::Next);
        w.check();
    }
    assert_eq!(w.model.advanced[cq][sc], 30_000);
    w.time_ms += DAY_MS;
    w.propose(cq, sc);
    assert_eq!(w.model.statements.len(), 1);
    w.sign(0, false);
    w.sign(0, true);
    w.record_payment(0);
    w.check();
    assert_eq!(w.model.settled[cq][sc], 30_000);
    // Listings live in their agency's home log: `sc`'s agency cannot list on `cq`.
    let agency = w.regions[sc].agency.clone();
    let listing = json!({ "listing_id": "l2", "pool": "instruments_equipment", "category": "testing",
        "title": "检测", "description": "testing", "price_minor": LISTING_PRICE, "currency": "CNY" });
    let refused = w.regions[cq].submit(&agency, w.time_ms, "catalog.list", listing, Vec::new());
    assert!(
        matches!(&refused, Err(r) if r.code() == "home-region-mismatch"),
        "{refused:?}"
    );
}
