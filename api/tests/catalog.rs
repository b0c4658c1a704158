//! The shared resource catalog over real HTTP on loopback: an agency lists two services, an
//! enterprise posts a demand, and a client searches the catalog and matches the demand.

mod common;

use common::fresh_key;
use serde_json::{json, Value};
use vledger_api::catalog::DemandMatches;
use vledger_domain::catalog::{CatalogPage, DemandRecord, ListingRecord, ListingStatus};
use vledger_tlog::keys::SigningKey;
use vledger_wire::envelope::{seal, CommandPayload};
use vledger_wire::http::Problem;

struct TestApp {
    base: String,
    client: reqwest::Client,
    admin: SigningKey,
    _dir: tempfile::TempDir,
}

async fn spawn_app() -> TestApp {
    let admin = fresh_key();
    let served = common::serve_node(&admin).await;
    TestApp {
        base: served.base,
        client: reqwest::Client::new(),
        admin,
        _dir: served.dir,
    }
}

impl TestApp {
    async fn submit(
        &self,
        signer: &SigningKey,
        command_type: &str,
        nonce: &str,
        body: Value,
    ) -> reqwest::Response {
        let payload = CommandPayload {
            v: 1,
            command_type: command_type.into(),
            region: "cq".try_into().unwrap(),
            signer: signer.public_key(),
            nonce: nonce.into(),
            body,
        };
        self.client
            .post(format!("{}/v1/commands", self.base))
            .body(seal(&payload, signer))
            .send()
            .await
            .unwrap()
    }

    /// Submits a command that must be accepted.
    async fn accept(&self, signer: &SigningKey, command_type: &str, nonce: &str, body: Value) {
        let response = self.submit(signer, command_type, nonce, body).await;
        assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    }

    async fn register(&self, key: &SigningKey, role: &str) {
        let body = json!({ "key": key.public_key().to_base64(), "role": role, "home_region": "cq", "name": "Party" });
        let nonce = key.public_key().to_base64();
        self.accept(&self.admin, "party.register", &nonce, body)
            .await;
    }

    async fn get(&self, path: &str, query: &[(&str, &str)]) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .query(query)
            .send()
            .await
            .unwrap()
    }

    async fn search(&self, query: &[(&str, &str)]) -> CatalogPage {
        let response = self.get("/v1/catalog/listings", query).await;
        assert_eq!(response.status(), 200, "{query:?}");
        response.json().await.unwrap()
    }

    async fn search_ids(&self, query: &[(&str, &str)]) -> Vec<String> {
        ids(&self.search(query).await.listings)
    }

    /// The demand's matches once the index reflects every command accepted so far.
    async fn matches(&self, demand_id: &str) -> Vec<String> {
        let node: Value = self.get("/v1/node", &[]).await.json().await.unwrap();
        let size = node["tree_size"].as_u64().unwrap().to_string();
        let path = format!("/v1/catalog/demands/{demand_id}/matches");
        let response = self.get(&path, &[("min_log_size", &size)]).await;
        assert_eq!(response.status(), 200);
        let matches: DemandMatches = response.json().await.unwrap();
        assert_eq!(matches.demand_id.as_str(), demand_id);
        matches
            .hits
            .iter()
            .map(|h| h.listing.listing_id.to_string())
            .collect()
    }
}

fn ids(listings: &[ListingRecord]) -> Vec<String> {
    listings.iter().map(|l| l.listing_id.to_string()).collect()
}

async fn expect_problem(response: reqwest::Response, status: u16, code: &str) -> Problem {
    assert_eq!(response.status(), status);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Problem = response.json().await.unwrap();
    assert_eq!(
        problem.problem_type,
        format!("urn:vledger:problem:{code}"),
        "{problem:?}"
    );
    problem
}

#[tokio::test]
async fn agencies_list_enterprises_post_and_the_catalog_searches_and_matches() {
    let app = spawn_app().await;
    let (agency, other_agency, enterprise) = (fresh_key(), fresh_key(), fresh_key());
    app.register(&agency, "agency").await;
    app.register(&other_agency, "agency").await;
    app.register(&enterprise, "enterprise").await;

    let auto = json!({
        "listing_id": "cq-auto-1", "pool": "industry", "industry": "automotive",
        "category": "testing", "title": "汽车检测服务", "description": "整车及零部件检测",
        "price_minor": 80_000, "currency": "CNY", "unit": "每车", "tags": ["碰撞试验"]
    });
    let sem = json!({
        "listing_id": "cq-sem-1", "pool": "instruments_equipment", "category": "testing",
        "title": "扫描电镜测试", "description": "Scanning Electron Microscope, per hour",
        "price_minor": 50_000, "currency": "CNY"
    });
    app.accept(&agency, "catalog.list", "l1", auto.clone())
        .await;
    app.accept(&agency, "catalog.list", "l2", sem).await;
    let demand = json!({
        "demand_id": "d-1", "category": "testing", "title": "新能源车零部件检测",
        "description": "需要第三方检测报告", "budget_max_minor": 100_000, "currency": "CNY"
    });
    app.accept(&enterprise, "demand.post", "d1", demand).await;

    // Search: everything, by Chinese text, by pool and industry, by price, by region.
    assert_eq!(app.search_ids(&[]).await, ["cq-auto-1", "cq-sem-1"]);
    assert_eq!(app.search_ids(&[("q", "汽车检测")]).await, ["cq-auto-1"]);
    assert_eq!(app.search_ids(&[("q", "electron")]).await, ["cq-sem-1"]);
    assert_eq!(
        app.search_ids(&[("pool", "industry"), ("industry", "automotive")])
            .await,
        ["cq-auto-1"]
    );
    assert_eq!(
        app.search_ids(&[("min_price", "60000"), ("max_price", "90000")])
            .await,
        ["cq-auto-1"]
    );
    assert_eq!(app.search_ids(&[("region", "sc")]).await.len(), 0);
    assert_eq!(app.search_ids(&[("category", "testing")]).await.len(), 2);

    // Paging.
    let first = app.search(&[("limit", "1")]).await;
    assert_eq!(ids(&first.listings), ["cq-auto-1"]);
    let after = first.next_after.unwrap().to_string();
    let second = app.search(&[("limit", "1"), ("after", &after)]).await;
    assert_eq!(ids(&second.listings), ["cq-sem-1"]);

    // One listing, one demand, and the demand's matches, the best first: the car parts test
    // shares the demand's words (零部件检测), the microscope none.
    let response = app.get("/v1/catalog/listings/cq-auto-1", &[]).await;
    assert_eq!(response.status(), 200);
    let listing: ListingRecord = response.json().await.unwrap();
    assert_eq!(listing.agency, agency.public_key());
    assert_eq!(listing.region.as_str(), "cq");
    assert_eq!(listing.unit.as_deref(), Some("每车"));
    let response = app.get("/v1/catalog/demands/d-1", &[]).await;
    assert_eq!(response.status(), 200);
    let record: DemandRecord = response.json().await.unwrap();
    assert_eq!(record.enterprise, enterprise.public_key());
    assert_eq!(app.matches("d-1").await, ["cq-auto-1", "cq-sem-1"]);

    // Only the listing's agency changes it; a withdrawn listing leaves search and matches.
    let cheaper = json!({ "listing_id": "cq-auto-1", "price_minor": 40_000 });
    let response = app
        .submit(&other_agency, "catalog.update", "u0", cheaper.clone())
        .await;
    expect_problem(response, 403, "not-listing-owner").await;
    app.accept(&agency, "catalog.update", "u1", cheaper).await;
    assert_eq!(app.matches("d-1").await, ["cq-auto-1", "cq-sem-1"]);
    let withdraw = json!({ "listing_id": "cq-sem-1", "reason": "设备检修" });
    app.accept(&agency, "catalog.withdraw", "w1", withdraw)
        .await;
    assert_eq!(app.matches("d-1").await, ["cq-auto-1"]);
    assert_eq!(app.search_ids(&[]).await, ["cq-auto-1"]);
    let listing: ListingRecord = app
        .get("/v1/catalog/listings/cq-sem-1", &[])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listing.status, ListingStatus::Withdrawn);

    // Refusals of commands.
    let response = app.submit(&agency, "catalog.list", "l3", auto).await;
    expect_problem(response, 409, "listing-exists").await;
    let response = app
        .submit(
            &agency,
            "catalog.update",
            "u2",
            json!({ "listing_id": "cq-sem-1", "title": "新" }),
        )
        .await;
    expect_problem(response, 422, "listing-withdrawn").await;
    let response = app
        .submit(
            &agency,
            "catalog.withdraw",
            "w2",
            json!({ "listing_id": "nope", "reason": "r" }),
        )
        .await;
    expect_problem(response, 404, "listing-not-found").await;
    let response = app
        .submit(&agency, "demand.close", "c0", json!({ "demand_id": "d-1" }))
        .await;
    expect_problem(response, 403, "not-demand-owner").await;
    app.accept(
        &enterprise,
        "demand.close",
        "c1",
        json!({ "demand_id": "d-1" }),
    )
    .await;
    let response = app
        .submit(
            &enterprise,
            "demand.close",
            "c2",
            json!({ "demand_id": "d-1" }),
        )
        .await;
    expect_problem(response, 422, "demand-closed").await;
}

#[tokio::test]
async fn bad_catalog_queries_and_missing_records_have_their_own_problems() {
    let app = spawn_app().await;
    let long_category = "c".repeat(65);
    for query in [
        &[("limit", "0")][..],
        &[("limit", "101")],
        &[("limit", "many")],
        &[("pool", "everything")],
        &[("industry", "Cars")],
        &[("region", "SC")],
        &[("after", "not an id")],
        &[("min_price", "-1")],
        &[("min_price", "9223372036854775808")],
        &[("category", long_category.as_str())],
        &[("colour", "red")],
    ] {
        let response = app.get("/v1/catalog/listings", query).await;
        let problem = expect_problem(response, 400, "invalid-query").await;
        assert_eq!(problem.status, 400, "{query:?}");
    }
    let long = "检".repeat(257);
    let response = app.get("/v1/catalog/listings", &[("q", &long)]).await;
    expect_problem(response, 400, "invalid-query").await;
    // Within the document's lengths (in characters) and ranges, a query nothing satisfies is
    // answered with an empty page.
    let (wide_q, wide_category) = ("检".repeat(256), "类".repeat(64));
    for query in [
        &[("min_price", "9"), ("max_price", "1")][..],
        &[("q", wide_q.as_str())],
        &[("category", wide_category.as_str())],
    ] {
        let response = app.get("/v1/catalog/listings", query).await;
        assert_eq!(response.status(), 200, "{query:?}");
    }

    let response = app.get("/v1/catalog/listings/nope", &[]).await;
    expect_problem(response, 404, "listing-not-found").await;
    let response = app.get("/v1/catalog/listings/a%20b", &[]).await;
    expect_problem(response, 400, "invalid-path").await;
    let response = app.get("/v1/catalog/demands/nope", &[]).await;
    expect_problem(response, 404, "demand-not-found").await;
    let response = app.get("/v1/catalog/demands/nope/matches", &[]).await;
    expect_problem(response, 404, "demand-not-found").await;
    let response = app
        .get("/v1/catalog/demands/nope/matches", &[("limit", "0")])
        .await;
    expect_problem(response, 400, "invalid-query").await;

    let page = app.search(&[]).await;
    assert!(page.listings.is_empty());
    assert_eq!(page.next_after, None);
}
