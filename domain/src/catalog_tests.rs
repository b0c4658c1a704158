//! The catalog on the pure state machine: every refusal of listings and demands, each search
//! filter, text search in Chinese, cursor paging and its scan bound, demand matching order, and
//! the state scan that the queries stand on.

use serde_json::{json, Value};

use super::catalog::{
    load_demand, load_listing, match_demand, search, CatalogQuery, DemandStatus, Industry,
    ListingBody, ListingStatus, Pool, QueryError,
};
use super::tests::{key, refusal, World};
use super::vouchers_tests::program_body;
use super::*;
use crate::limits::{MAX_CATALOG_PAGE, MAX_CATALOG_SCAN, MAX_CATALOG_TAGS};
use crate::types::RecordId;
use vledger_tlog::keys::SigningKey;

const DAY_MS: u64 = 86_400_000;
const NOW: u64 = 1_700_000_000_000;

fn b64(k: &SigningKey) -> String {
    k.public_key().to_base64()
}

fn id(s: &str) -> RecordId {
    s.try_into().unwrap()
}

fn listing(id: &str, category: &str, price: u64) -> Value {
    json!({
        "listing_id": id, "pool": "instruments_equipment", "category": category,
        "title": "扫描电镜机时", "description": "Scanning electron microscope time",
        "price_minor": price, "currency": "CNY", "unit": "每小时", "tags": ["电镜", "SEM"]
    })
}

fn demand(id: &str, category: &str, budget: Option<u64>) -> Value {
    json!({
        "demand_id": id, "category": category, "title": "需要材料检测",
        "description": "Tensile tests of 20 samples", "budget_max_minor": budget, "currency": "CNY"
    })
}

/// A founded region with two agencies and two enterprises.
struct Catalog {
    w: World,
    admin: SigningKey,
    agency: SigningKey,
    other_agency: SigningKey,
    enterprise: SigningKey,
    other_enterprise: SigningKey,
}

impl Catalog {
    fn new() -> Self {
        let mut w = World::founded();
        w.time_ms = NOW;
        let admin = w.admin.clone();
        let (agency, other_agency, enterprise, other_enterprise) = (key(), key(), key(), key());
        w.register(&agency, "agency").unwrap();
        w.register(&other_agency, "agency").unwrap();
        w.register(&enterprise, "enterprise").unwrap();
        w.register(&other_enterprise, "enterprise").unwrap();
        Self {
            w,
            admin,
            agency,
            other_agency,
            enterprise,
            other_enterprise,
        }
    }

    fn list(&mut self, body: Value) -> Result<Vec<Event>, Rejection> {
        let agency = self.agency.clone();
        self.w.run(&agency, "catalog.list", body)
    }

    fn update(&mut self, signer: &SigningKey, body: Value) -> Result<Vec<Event>, Rejection> {
        self.w.run(signer, "catalog.update", body)
    }

    fn withdraw(&mut self, signer: &SigningKey, id: &str) -> Result<Vec<Event>, Rejection> {
        let body = json!({ "listing_id": id, "reason": "设备维修" });
        self.w.run(signer, "catalog.withdraw", body)
    }

    fn post(&mut self, body: Value) -> Result<Vec<Event>, Rejection> {
        let enterprise = self.enterprise.clone();
        self.w.run(&enterprise, "demand.post", body)
    }

    /// Folds a listing of another region into the state, as a mirrored entry would.
    fn list_elsewhere(&mut self, region: &str, body: Value) {
        let ctx = ApplyContext {
            index: self.w.next_index,
            node_time_ms: self.w.time_ms,
            region: region.try_into().unwrap(),
            node_key: self.w.node.public_key(),
        };
        let listing: ListingBody = serde_json::from_value(body).unwrap();
        let event = Event::ListingAdded {
            agency: key().public_key(),
            region: region.try_into().unwrap(),
            listing,
        };
        evolve(&mut self.w.state, &ctx, &event).unwrap();
    }

    fn listing(&self, listing_id: &str) -> catalog::ListingRecord {
        load_listing(&self.w.state, &id(listing_id))
            .unwrap()
            .unwrap()
    }

    fn search(&self, query: CatalogQuery) -> Vec<String> {
        let page = search(&self.w.state, &query).unwrap();
        page.listings
            .iter()
            .map(|l| l.listing_id.to_string())
            .collect()
    }

    fn matches(&self, demand_id: &str, limit: usize) -> Vec<String> {
        match_demand(&self.w.state, &id(demand_id), limit)
            .unwrap()
            .iter()
            .map(|l| l.listing_id.to_string())
            .collect()
    }
}

fn invalid_field(result: Result<Vec<Event>, Rejection>) -> &'static str {
    match result {
        Err(Rejection::InvalidField { field, .. }) => field,
        other => panic!("expected invalid-field, got {other:?}"),
    }
}

#[test]
fn listing_rules() {
    let mut c = Catalog::new();
    let enterprise = c.enterprise.clone();
    assert_eq!(
        c.w.run(&enterprise, "catalog.list", listing("l1", "testing", 1)),
        Err(Rejection::NotAuthorized(refusal(
            "catalog.list",
            "an agency",
            "an enterprise"
        )))
    );

    let cases: Vec<(&str, Value, &str)> = vec![
        ("pool", json!("industry"), "industry"),
        ("industry", json!("automotive"), "industry"),
        ("title", json!("  "), "title"),
        ("title", json!("检".repeat(86)), "title"),
        (
            "description",
            json!("x".repeat(8 * 1024 + 1)),
            "description",
        ),
        ("category", json!(""), "category"),
        ("category", json!("c".repeat(65)), "category"),
        ("currency", json!("cny"), "currency"),
        ("unit", json!("u".repeat(65)), "unit"),
        ("tags", json!(vec!["t"; MAX_CATALOG_TAGS + 1]), "tags"),
        ("tags", json!(["ok", ""]), "tags"),
        ("tags", json!(["t".repeat(65)]), "tags"),
        ("tags", json!(["电镜", "电镜"]), "tags"),
    ];
    for (field, value, refused) in cases {
        let mut body = listing("l1", "testing", 1000);
        body[field] = value;
        assert_eq!(invalid_field(c.list(body)), refused, "{field}");
    }
    for (field, value) in [
        ("pool", json!("equipment")),
        ("industry", json!("Automotive")),
        ("industry", json!("a")),
        ("industry", json!("i".repeat(33))),
        ("region", json!("sc")),
    ] {
        let mut body = listing("l1", "testing", 1000);
        body[field] = value;
        if field == "industry" {
            body["pool"] = json!("industry");
        }
        assert!(
            matches!(c.list(body), Err(Rejection::MalformedBody(_))),
            "{field}"
        );
    }
    // An amount past 2^53 - 1 is a value out of its bound, named by its field.
    let mut body = listing("l1", "testing", 1000);
    body["price_minor"] = json!(1u64 << 53);
    assert!(matches!(
        c.list(body),
        Err(Rejection::InvalidValue { field, .. }) if field == "price_minor"
    ));

    c.w.time_ms = NOW + 5;
    let events = c.list(listing("l1", "testing", 1000)).unwrap();
    assert!(matches!(&events[..], [Event::ListingAdded { .. }]));
    let record = c.listing("l1");
    assert_eq!(record.agency, c.agency.public_key());
    assert_eq!(record.region.as_str(), "cq");
    assert_eq!(record.status, ListingStatus::Active);
    assert_eq!(
        (record.listed_at_ms, record.updated_at_ms),
        (NOW + 5, NOW + 5)
    );
    assert_eq!(record.unit.as_deref(), Some("每小时"));
    assert_eq!(
        c.list(listing("l1", "testing", 1)),
        Err(Rejection::ListingExists("l1".into()))
    );

    // Any well-formed industry name opens an industry pool; a free listing is allowed.
    let mut body = listing("l2", "testing", 0);
    body["pool"] = json!("industry");
    body["industry"] = json!("hydrogen_energy2");
    c.list(body).unwrap();
    assert_eq!(
        c.listing("l2").industry,
        Some(Industry::try_from("hydrogen_energy2").unwrap())
    );

    // A revoked agency lists nothing.
    let (admin, agency) = (c.admin.clone(), c.agency.clone());
    c.w.run(
        &admin,
        "party.revoke_key",
        json!({ "key": b64(&agency), "reason": "left" }),
    )
    .unwrap();
    assert!(matches!(
        c.list(listing("l3", "testing", 1)),
        Err(Rejection::SignerRevoked { .. })
    ));
}

#[test]
fn update_rules() {
    let mut c = Catalog::new();
    let (agency, other, admin) = (c.agency.clone(), c.other_agency.clone(), c.admin.clone());
    c.list(listing("l1", "testing", 1000)).unwrap();
    let change = json!({ "listing_id": "l1", "price_minor": 900 });
    let update = |signer| refusal("catalog.update", "the listing's agency", signer);
    assert_eq!(
        c.update(&other, change.clone()),
        Err(Rejection::NotListingOwner(update(
            "an agency that is not the listing's agency"
        )))
    );
    assert_eq!(
        c.update(&admin, change.clone()),
        Err(Rejection::NotListingOwner(update("an admin")))
    );
    assert_eq!(
        c.update(&agency, json!({ "listing_id": "nope", "price_minor": 1 })),
        Err(Rejection::ListingNotFound("nope".into()))
    );
    assert_eq!(
        invalid_field(c.update(&agency, json!({ "listing_id": "l1" }))),
        "listing_id"
    );
    for (field, value) in [
        ("title", json!("")),
        ("description", json!(" ")),
        ("category", json!("c".repeat(65))),
        ("tags", json!(["a", "a"])),
    ] {
        let mut body = json!({ "listing_id": "l1" });
        body[field] = value;
        assert_eq!(invalid_field(c.update(&agency, body)), field);
    }
    // Pool, industry, currency and unit are fixed at listing.
    assert!(matches!(
        c.update(&agency, json!({ "listing_id": "l1", "currency": "USD" })),
        Err(Rejection::MalformedBody(_))
    ));

    c.w.time_ms = NOW + 10;
    c.update(
        &agency,
        json!({ "listing_id": "l1", "price_minor": 900, "title": "场发射电镜", "tags": [] }),
    )
    .unwrap();
    let record = c.listing("l1");
    assert_eq!(record.price_minor, 900);
    assert_eq!(record.title, "场发射电镜");
    assert!(record.tags.is_empty());
    assert_eq!(record.description, "Scanning electron microscope time");
    assert_eq!((record.listed_at_ms, record.updated_at_ms), (NOW, NOW + 10));

    c.withdraw(&agency, "l1").unwrap();
    assert_eq!(
        c.update(&agency, change),
        Err(Rejection::ListingWithdrawn("l1".into()))
    );
}

#[test]
fn withdrawal_rules() {
    let mut c = Catalog::new();
    let (agency, other, admin, enterprise) = (
        c.agency.clone(),
        c.other_agency.clone(),
        c.admin.clone(),
        c.enterprise.clone(),
    );
    c.list(listing("l1", "testing", 1000)).unwrap();
    c.list(listing("l2", "testing", 1000)).unwrap();
    let withdraw = |signer| {
        Rejection::NotListingOwner(refusal(
            "catalog.withdraw",
            "the listing's agency or an admin of the listing's region",
            signer,
        ))
    };
    assert_eq!(
        c.withdraw(&other, "l1"),
        Err(withdraw("an agency that is not the listing's agency"))
    );
    assert_eq!(
        c.withdraw(&enterprise, "l1"),
        Err(withdraw("an enterprise"))
    );
    assert_eq!(
        c.withdraw(&agency, "nope"),
        Err(Rejection::ListingNotFound("nope".into()))
    );
    let blank = json!({ "listing_id": "l1", "reason": "" });
    assert_eq!(
        invalid_field(c.w.run(&agency, "catalog.withdraw", blank)),
        "reason"
    );

    c.withdraw(&agency, "l1").unwrap();
    assert_eq!(c.listing("l1").status, ListingStatus::Withdrawn);
    assert_eq!(
        c.withdraw(&agency, "l1"),
        Err(Rejection::ListingWithdrawn("l1".into()))
    );
    // An admin of the listing's region may withdraw it; an admin of another region may not.
    let events = c.withdraw(&admin, "l2").unwrap();
    assert!(
        matches!(&events[..], [Event::ListingWithdrawn { by, .. }] if *by == admin.public_key())
    );
    c.list_elsewhere("sc", listing("sc-1", "testing", 1000));
    assert_eq!(
        c.withdraw(&admin, "sc-1"),
        Err(withdraw(
            "an admin that is not an admin of the listing's region"
        ))
    );

    // Withdrawn listings leave the search and the price index.
    assert_eq!(c.search(CatalogQuery::default()), ["sc-1"]);
    let index_keys =
        c.w.state
            .records
            .keys()
            .filter(|k| k.starts_with(catalog::PRICE_INDEX_PREFIX))
            .count();
    assert_eq!(index_keys, 1);
}

#[test]
fn demand_rules() {
    let mut c = Catalog::new();
    let (agency, enterprise, other) = (
        c.agency.clone(),
        c.enterprise.clone(),
        c.other_enterprise.clone(),
    );
    assert!(matches!(
        c.w.run(&agency, "demand.post", demand("d1", "testing", None)),
        Err(Rejection::NotAuthorized(r)) if r == refusal("demand.post", "an enterprise", "an agency")
    ));
    let cases: Vec<(&str, Value, &str)> = vec![
        ("industry", json!("automotive"), "industry"),
        ("budget_max_minor", json!(0), "budget_max_minor"),
        ("currency", json!("RMB1"), "currency"),
        ("title", json!(""), "title"),
        (
            "description",
            json!("d".repeat(8 * 1024 + 1)),
            "description",
        ),
        ("category", json!(" "), "category"),
    ];
    for (field, value, refused) in cases {
        let mut body = demand("d1", "testing", Some(1000));
        body[field] = value;
        assert_eq!(invalid_field(c.post(body)), refused, "{field}");
    }
    let mut body = demand("d1", "testing", Some(1000));
    body["pool"] = json!("nowhere");
    assert!(matches!(c.post(body), Err(Rejection::MalformedBody(_))));

    c.post(demand("d1", "testing", Some(1000))).unwrap();
    let record = load_demand(&c.w.state, &id("d1")).unwrap().unwrap();
    assert_eq!(record.enterprise, enterprise.public_key());
    assert_eq!(record.region.as_str(), "cq");
    assert_eq!(record.budget_max_minor, Some(1000));
    assert_eq!(record.status, DemandStatus::Open);
    assert_eq!(
        c.post(demand("d1", "testing", None)),
        Err(Rejection::DemandExists("d1".into()))
    );
    let mut industry = demand("d2", "testing", None);
    industry["pool"] = json!("industry");
    industry["industry"] = json!("iot");
    c.post(industry).unwrap();

    let close = json!({ "demand_id": "d1" });
    assert_eq!(
        c.w.run(&other, "demand.close", close.clone()),
        Err(Rejection::NotDemandOwner(refusal(
            "demand.close",
            "the demand's enterprise",
            "an enterprise that is not the demand's enterprise"
        )))
    );
    assert_eq!(
        c.w.run(&enterprise, "demand.close", json!({ "demand_id": "nope" })),
        Err(Rejection::DemandNotFound("nope".into()))
    );
    c.w.time_ms = NOW + 7;
    c.w.run(&enterprise, "demand.close", close.clone()).unwrap();
    let record = load_demand(&c.w.state, &id("d1")).unwrap().unwrap();
    assert_eq!(
        (record.status, record.updated_at_ms),
        (DemandStatus::Closed, NOW + 7)
    );
    assert_eq!(
        c.w.run(&enterprise, "demand.close", close),
        Err(Rejection::DemandClosed("d1".into()))
    );
}

/// Five active listings in two regions and one withdrawn one.
fn stocked() -> Catalog {
    let mut c = Catalog::new();
    let agency = c.agency.clone();
    c.list(json!({
        "listing_id": "cq-auto-1", "pool": "industry", "industry": "automotive", "category": "testing",
        "title": "汽车检测服务", "description": "整车及零部件检测", "price_minor": 80_000,
        "currency": "CNY", "tags": ["整车", "碰撞试验"]
    }))
    .unwrap();
    c.list(json!({
        "listing_id": "cq-ic-1", "pool": "industry", "industry": "integrated_circuits",
        "category": "testing", "title": "芯片失效分析", "description": "IC Failure Analysis",
        "price_minor": 120_000, "currency": "CNY"
    }))
    .unwrap();
    c.list(listing("cq-lab-1", "instrument", 30_000)).unwrap();
    c.list(json!({
        "listing_id": "cq-old", "pool": "industry", "industry": "automotive", "category": "testing",
        "title": "汽车检测（旧）", "description": "旧设备", "price_minor": 10_000, "currency": "CNY"
    }))
    .unwrap();
    c.withdraw(&agency, "cq-old").unwrap();
    c.list_elsewhere(
        "sc",
        json!({
            "listing_id": "sc-lab-1", "pool": "instruments_equipment", "category": "instrument",
            "title": "Mass Spectrometry", "description": "质谱分析", "price_minor": 50_000,
            "currency": "CNY"
        }),
    );
    c.list_elsewhere(
        "sc",
        json!({
            "listing_id": "sc-talent-1", "pool": "talent", "category": "consulting",
            "title": "材料专家咨询", "description": "Materials expert", "price_minor": 20_000,
            "currency": "CNY", "tags": ["汽车轻量化"]
        }),
    );
    c
}

#[test]
fn each_search_filter_filters() {
    let c = stocked();
    let all = [
        "cq-auto-1",
        "cq-ic-1",
        "cq-lab-1",
        "sc-lab-1",
        "sc-talent-1",
    ];
    assert_eq!(c.search(CatalogQuery::default()), all, "active only, by id");
    let q = CatalogQuery::default;

    assert_eq!(
        c.search(CatalogQuery {
            pool: Some(Pool::Industry),
            ..q()
        }),
        ["cq-auto-1", "cq-ic-1"]
    );
    assert_eq!(
        c.search(CatalogQuery {
            pool: Some(Pool::Talent),
            ..q()
        }),
        ["sc-talent-1"]
    );
    assert_eq!(
        c.search(CatalogQuery {
            industry: Some("automotive".try_into().unwrap()),
            ..q()
        }),
        ["cq-auto-1"]
    );
    assert_eq!(
        c.search(CatalogQuery {
            region: Some("sc".try_into().unwrap()),
            ..q()
        }),
        ["sc-lab-1", "sc-talent-1"]
    );
    assert_eq!(
        c.search(CatalogQuery {
            category: Some("instrument".into()),
            ..q()
        }),
        ["cq-lab-1", "sc-lab-1"]
    );
    assert_eq!(
        c.search(CatalogQuery {
            min_price_minor: Some(50_000),
            ..q()
        }),
        ["cq-auto-1", "cq-ic-1", "sc-lab-1"]
    );
    assert_eq!(
        c.search(CatalogQuery {
            max_price_minor: Some(50_000),
            ..q()
        }),
        ["cq-lab-1", "sc-lab-1", "sc-talent-1"]
    );
    assert_eq!(
        c.search(CatalogQuery {
            pool: Some(Pool::Industry),
            max_price_minor: Some(100_000),
            ..q()
        }),
        ["cq-auto-1"]
    );
}

#[test]
fn text_search_finds_substrings_in_chinese_and_ignores_case() {
    let c = stocked();
    let text = |t: &str| {
        c.search(CatalogQuery {
            text: Some(t.into()),
            ..CatalogQuery::default()
        })
    };
    // In the title; the withdrawn "汽车检测（旧）" is not found.
    assert_eq!(text("汽车检测"), ["cq-auto-1"]);
    // A word inside a longer tag ("汽车轻量化"), and in a title.
    assert_eq!(text("汽车"), ["cq-auto-1", "sc-talent-1"]);
    // In a tag only.
    assert_eq!(text("碰撞"), ["cq-auto-1"]);
    // In the description only.
    assert_eq!(text("质谱"), ["sc-lab-1"]);
    // Case-insensitive, in the title and the description.
    assert_eq!(text("mass SPEC"), ["sc-lab-1"]);
    assert_eq!(text("failure analysis"), ["cq-ic-1"]);
    assert_eq!(
        text("  失效  "),
        ["cq-ic-1"],
        "surrounding blanks are ignored"
    );
    assert!(text("区块链").is_empty());
    assert_eq!(text(" ").len(), 5, "a blank search box filters nothing");
}

#[test]
fn bad_queries_are_refused() {
    let c = stocked();
    let bad = [
        CatalogQuery {
            limit: 0,
            ..CatalogQuery::default()
        },
        CatalogQuery {
            limit: MAX_CATALOG_PAGE + 1,
            ..CatalogQuery::default()
        },
        CatalogQuery {
            text: Some("检".repeat(257)),
            ..CatalogQuery::default()
        },
        CatalogQuery {
            category: Some("c".repeat(65)),
            ..CatalogQuery::default()
        },
    ];
    for query in bad {
        assert!(
            matches!(search(&c.w.state, &query), Err(QueryError::Invalid(_))),
            "{query:?}"
        );
    }
    // Within the stated lengths (characters, not bytes), a query no listing can satisfy is
    // answered, with nothing in it.
    let empty = [
        CatalogQuery {
            min_price_minor: Some(2),
            max_price_minor: Some(1),
            ..CatalogQuery::default()
        },
        CatalogQuery {
            category: Some("类".repeat(64)),
            ..CatalogQuery::default()
        },
        CatalogQuery {
            text: Some("检".repeat(256)),
            ..CatalogQuery::default()
        },
    ];
    for query in empty {
        let page = search(&c.w.state, &query).unwrap();
        assert!(page.listings.is_empty(), "{query:?}");
    }
    assert!(matches!(
        match_demand(&c.w.state, &id("nope"), 10),
        Err(QueryError::DemandNotFound(_))
    ));
    assert!(matches!(
        match_demand(&c.w.state, &id("nope"), 0),
        Err(QueryError::Invalid(_))
    ));
}

#[test]
fn search_pages_with_a_cursor() {
    let mut c = Catalog::new();
    for i in 0..7 {
        let category = if i % 2 == 0 { "testing" } else { "instrument" };
        c.list(listing(&format!("l{i}"), category, 1000)).unwrap();
    }
    let mut after = None;
    let mut pages = Vec::new();
    loop {
        let page = search(
            &c.w.state,
            &CatalogQuery {
                after: after.clone(),
                limit: 3,
                ..CatalogQuery::default()
            },
        )
        .unwrap();
        let ids: Vec<String> = page
            .listings
            .iter()
            .map(|l| l.listing_id.to_string())
            .collect();
        pages.push(ids);
        match page.next_after {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(
        pages,
        [vec!["l0", "l1", "l2"], vec!["l3", "l4", "l5"], vec!["l6"]]
    );

    // With a filter, the cursor skips what the filter refused.
    let page = search(
        &c.w.state,
        &CatalogQuery {
            category: Some("testing".into()),
            limit: 2,
            ..CatalogQuery::default()
        },
    )
    .unwrap();
    assert_eq!(page.next_after, Some(id("l2")));
    let page = search(
        &c.w.state,
        &CatalogQuery {
            category: Some("testing".into()),
            after: Some(id("l2")),
            limit: 2,
            ..CatalogQuery::default()
        },
    )
    .unwrap();
    let ids: Vec<_> = page
        .listings
        .iter()
        .map(|l| l.listing_id.as_str())
        .collect();
    assert_eq!(ids, ["l4", "l6"]);
    assert_eq!(page.next_after, Some(id("l6")));
    let page = search(
        &c.w.state,
        &CatalogQuery {
            category: Some("testing".into()),
            after: Some(id("l6")),
            ..CatalogQuery::default()
        },
    )
    .unwrap();
    assert!(page.listings.is_empty());
    assert_eq!(page.next_after, None);
}

#[test]
fn a_search_examines_a_bounded_number_of_listings() {
    let mut c = Catalog::new();
    let ctx = ApplyContext {
        index: 100,
        node_time_ms: NOW,
        region: "cq".try_into().unwrap(),
        node_key: c.w.node.public_key(),
    };
    let agency = c.agency.public_key();
    for i in 0..=MAX_CATALOG_SCAN {
        let mut body = listing(&format!("l{i:06}"), "testing", 1000);
        if i == MAX_CATALOG_SCAN {
            body["title"] = json!("needle");
        }
        let event = Event::ListingAdded {
            agency,
            region: "cq".try_into().unwrap(),
            listing: serde_json::from_value(body).unwrap(),
        };
        evolve(&mut c.w.state, &ctx, &event).unwrap();
    }
    let query = CatalogQuery {
        text: Some("NEEDLE".into()),
        ..CatalogQuery::default()
    };
    let first = search(&c.w.state, &query).unwrap();
    assert!(first.listings.is_empty());
    let cursor = format!("l{:06}", MAX_CATALOG_SCAN - 1);
    assert_eq!(first.next_after, Some(id(&cursor)));
    let second = search(
        &c.w.state,
        &CatalogQuery {
            after: first.next_after,
            ..query
        },
    )
    .unwrap();
    assert_eq!(second.listings.len(), 1);
    assert_eq!(second.next_after, None);
}

#[test]
fn demands_match_the_cheapest_fitting_listings_of_every_region() {
    let mut c = Catalog::new();
    let agency = c.agency.clone();
    for (listing_id, price) in [
        ("t-over", 120_000),
        ("t-80k", 80_000),
        ("t-50k-b", 50_000),
        ("t-50k-a", 50_000),
        ("t-gone", 10_000),
    ] {
        c.list(listing(listing_id, "testing", price)).unwrap();
    }
    c.withdraw(&agency, "t-gone").unwrap();
    let mut usd = listing("t-usd", "testing", 20_000);
    usd["currency"] = json!("USD");
    c.list(usd).unwrap();
    c.list(listing("i-cheap", "instrument", 1)).unwrap();
    c.list_elsewhere("sc", listing("sc-70k", "testing", 70_000));
    let mut auto = listing("t-auto", "testing", 90_000);
    auto["pool"] = json!("industry");
    auto["industry"] = json!("automotive");
    c.list(auto).unwrap();

    c.post(demand("d1", "testing", Some(100_000))).unwrap();
    assert_eq!(
        c.matches("d1", 10),
        ["t-50k-a", "t-50k-b", "sc-70k", "t-80k", "t-auto"]
    );
    assert_eq!(c.matches("d1", 2), ["t-50k-a", "t-50k-b"]);

    let mut unlimited = demand("d2", "testing", None);
    unlimited["pool"] = json!("instruments_equipment");
    c.post(unlimited).unwrap();
    assert_eq!(
        c.matches("d2", 10),
        ["t-50k-a", "t-50k-b", "sc-70k", "t-80k", "t-over"]
    );

    let mut industry = demand("d3", "testing", None);
    industry["pool"] = json!("industry");
    industry["industry"] = json!("automotive");
    c.post(industry).unwrap();
    assert_eq!(c.matches("d3", 10), ["t-auto"]);

    // An update moves a listing in the price order, or out of the category.
    c.update(
        &agency,
        json!({ "listing_id": "t-80k", "price_minor": 40_000 }),
    )
    .unwrap();
    c.update(
        &agency,
        json!({ "listing_id": "t-50k-b", "category": "instrument" }),
    )
    .unwrap();
    assert_eq!(
        c.matches("d1", 10),
        ["t-80k", "t-50k-a", "sc-70k", "t-auto"]
    );
}

#[test]
fn catalog_listings_can_be_ordered_until_withdrawn() {
    let mut c = Catalog::new();
    let (admin, agency, enterprise) = (c.admin.clone(), c.agency.clone(), c.enterprise.clone());
    let escrow = key();
    c.w.register(&escrow, "escrow").unwrap();
    c.w.run(&admin, "program.create", program_body("cq-rs"))
        .unwrap();
    let qualify = json!({ "program_id": "cq-rs", "enterprise": b64(&enterprise), "expires_at_ms": NOW + 20 * DAY_MS });
    c.w.run(&admin, "enterprise.qualify", qualify).unwrap();
    let accredit = json!({ "agency": b64(&agency), "expires_at_ms": NOW + 365 * DAY_MS });
    c.w.run(&admin, "agency.accredit", accredit).unwrap();
    let issue = json!({ "voucher_id": "v1", "program_id": "cq-rs", "holder": b64(&enterprise), "face_value_minor": 300_000 });
    c.w.run(&admin, "voucher.issue", issue).unwrap();
    c.list(listing("lab-1", "testing", 100_000)).unwrap();
    c.list(listing("lab-2", "testing", 100_000)).unwrap();
    c.withdraw(&agency, "lab-2").unwrap();

    let order = |order_id: &str, listing_id: &str| {
        json!({ "order_id": order_id, "listing_id": listing_id, "voucher_id": "v1", "price_minor": 100_000,
                "payment": { "mode": "escrow", "escrow_provider": b64(&escrow), "fee_minor": 300 },
                "auto_confirm_after_ms": 7 * DAY_MS })
    };
    c.w.run(&enterprise, "order.place", order("o1", "lab-1"))
        .unwrap();
    assert_eq!(
        c.w.run(&enterprise, "order.place", order("o2", "lab-2")),
        Err(Rejection::ListingWithdrawn("lab-2".into()))
    );
}

/// The overlay's scan must equal a scan of its changes applied to its base, for every start and
/// limit, deletes included.
#[test]
fn overlay_scans_merge_changes_over_the_base() {
    let mut base = MemoryState::default();
    for k in ["p/1", "p/2", "p/3", "p/4", "p/5", "p/6", "q/1", "o/9"] {
        base.put_raw(k.as_bytes().to_vec(), format!("base {k}").into_bytes());
    }
    let mut overlay = Overlay::new(&base);
    overlay.delete(b"p/2".to_vec());
    overlay.delete(b"p/3".to_vec());
    overlay.delete(b"p/9".to_vec());
    overlay.put_raw(b"p/4".to_vec(), b"new p/4".to_vec());
    overlay.put_raw(b"p/35".to_vec(), b"new p/35".to_vec());
    overlay.put_raw(b"p/7".to_vec(), b"new p/7".to_vec());
    overlay.put_raw(b"q/0".to_vec(), b"new q/0".to_vec());

    let reference = {
        let mut m = base.clone();
        for k in ["p/2", "p/3", "p/9"] {
            m.delete(k.as_bytes().to_vec());
        }
        for (k, v) in [
            ("p/4", "new p/4"),
            ("p/35", "new p/35"),
            ("p/7", "new p/7"),
            ("q/0", "new q/0"),
        ] {
            m.put_raw(k.as_bytes().to_vec(), v.as_bytes().to_vec());
        }
        m
    };

    let all = overlay.scan_prefix(b"p/", usize::MAX).unwrap();
    let keys: Vec<_> = all
        .iter()
        .map(|(k, _)| String::from_utf8(k.clone()).unwrap())
        .collect();
    assert_eq!(keys, ["p/1", "p/35", "p/4", "p/5", "p/6", "p/7"]);
    assert_eq!(all[2].1, b"new p/4");

    for start in ["", "p/", "p/1", "p/2", "p/3", "p/35", "p/4", "p/8", "q/"] {
        for limit in 0..9 {
            assert_eq!(
                overlay
                    .scan_prefix_from(b"p/", start.as_bytes(), limit)
                    .unwrap(),
                reference
                    .scan_prefix_from(b"p/", start.as_bytes(), limit)
                    .unwrap(),
                "start {start:?}, limit {limit}"
            );
        }
    }
    assert_eq!(overlay.scan_prefix(b"q/", 10).unwrap().len(), 2);
    assert!(overlay.scan_prefix(b"r/", 10).unwrap().is_empty());
}
