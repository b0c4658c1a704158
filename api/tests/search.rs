//! The catalog's search engine over real HTTP on loopback: relevance on a hand-made corpus of
//! Chinese and English listings whose right answers are known, filters and facets, listings
//! that change or leave within one batch, cursors that stay stable while listings change, and
//! an index rebuilt from the store that answers as the live one does.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use common::fresh_key;
use serde_json::{json, Value};
use vledger_node::node::Node;
use vledger_search::{CatalogIndex, SearchQuery, SortOrder};
use vledger_tlog::keys::SigningKey;
use vledger_wire::envelope::{seal, CommandPayload};
use vledger_wire::http::{DemandMatches, SearchPage};

struct App {
    base: String,
    client: reqwest::Client,
    admin: SigningKey,
    node: Arc<Node>,
    index: Arc<CatalogIndex>,
    nonce: std::sync::atomic::AtomicU64,
    _dir: tempfile::TempDir,
}

async fn spawn_app() -> App {
    let admin = fresh_key();
    let (node, dir) = common::open_node_in("cq", &admin, &fresh_key());
    let index = CatalogIndex::start(&node, None).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(vledger_api::serve_app(
        listener,
        Arc::clone(&node),
        vledger_api::NodeServices {
            catalog: Some(Arc::clone(&index)),
            ..Default::default()
        },
        vledger_api::ConnectionLimits::default(),
        std::future::pending(),
    ));
    App {
        base,
        client: reqwest::Client::new(),
        admin,
        node,
        index,
        nonce: Default::default(),
        _dir: dir,
    }
}

impl App {
    async fn accept(&self, signer: &SigningKey, command_type: &str, body: Value) {
        let nonce = self
            .nonce
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let payload = CommandPayload {
            v: 1,
            command_type: command_type.into(),
            region: "cq".try_into().unwrap(),
            signer: signer.public_key(),
            nonce: format!("n{nonce}"),
            body,
        };
        let response = self
            .client
            .post(format!("{}/v1/commands", self.base))
            .body(seal(&payload, signer))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    }

    async fn party(&self, role: &str) -> SigningKey {
        let key = fresh_key();
        let body = json!({ "key": key.public_key().to_base64(), "role": role,
                           "home_region": "cq", "name": format!("{role} party") });
        self.accept(&self.admin.clone(), "party.register", body)
            .await;
        key
    }

    async fn list(&self, agency: &SigningKey, id: &str, extra: Value) {
        let mut body = json!({
            "listing_id": id, "pool": "instruments_equipment", "category": "testing",
            "title": id, "description": "—", "price_minor": 10_000, "currency": "CNY",
        });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        self.accept(agency, "catalog.list", body).await;
    }

    async fn get(&self, path: &str, query: &[(&str, &str)]) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .query(query)
            .send()
            .await
            .unwrap()
    }

    /// A search that waits until the index reflects every command accepted so far.
    async fn search(&self, query: &[(&str, &str)]) -> SearchPage {
        let size = self.node.tree_size().to_string();
        let mut query = query.to_vec();
        query.push(("min_log_size", &size));
        let response = self.get("/v1/catalog/search", &query).await;
        assert_eq!(response.status(), 200, "{query:?}");
        response.json().await.unwrap()
    }

    async fn ids(&self, query: &[(&str, &str)]) -> Vec<String> {
        ids(&self.search(query).await)
    }
}

fn ids(page: &SearchPage) -> Vec<String> {
    page.hits
        .iter()
        .map(|h| h.listing.listing_id.to_string())
        .collect()
}

async fn problem(response: reqwest::Response, status: u16, code: &str) {
    assert_eq!(response.status(), status);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["type"],
        format!("urn:vledger:problem:{code}"),
        "{body}"
    );
}

/// A corpus where the right answers are known.
async fn corpus(app: &App) -> (SigningKey, SigningKey) {
    let (lab, other) = (app.party("agency").await, app.party("agency").await);
    let listings = [
        (
            &lab,
            "ms-hr",
            json!({ "title": "高分辨质谱仪测试", "tags": ["质谱"],
            "description": "High resolution mass spectrometry, 液相色谱-质谱联用", "price_minor": 60_000 }),
        ),
        (
            &lab,
            "gc",
            json!({ "title": "气相色谱分析", "description": "可选配质谱检测器",
            "price_minor": 30_000 }),
        ),
        (
            &other,
            "emc",
            json!({ "title": "EMC 电磁兼容检测", "tags": ["EMC", "robotics"],
            "description": "Electromagnetic compatibility testing of robot controllers",
            "price_minor": 80_000, "unit": "per device" }),
        ),
        (
            &other,
            "auto",
            json!({ "title": "汽车电子测试", "description": "包括EMC预测试",
            "pool": "industry", "industry": "automotive", "category": "automotive_testing",
            "price_minor": 45_000, "unit": "per device" }),
        ),
        (
            &lab,
            "sem",
            json!({ "title": "扫描电镜", "description": "Scanning electron microscope, per hour",
            "category": "microscopy", "price_minor": 20_000, "currency": "USD" }),
        ),
    ];
    for (agency, id, extra) in listings {
        app.list(agency, id, extra).await;
    }
    (lab, other)
}

#[tokio::test]
async fn the_best_match_comes_first_in_chinese_and_english() {
    let app = spawn_app().await;
    corpus(&app).await;
    // Characters that stand together match; the same characters apart do not.
    assert_eq!(app.ids(&[("q", "质谱仪")]).await, ["ms-hr"]);
    // A hit in the title and the tags ranks above one in the description only.
    assert_eq!(app.ids(&[("q", "质谱")]).await, ["ms-hr", "gc"]);
    assert_eq!(app.ids(&[("q", "EMC")]).await, ["emc", "auto"]);
    // Mixed Chinese and English, every term required.
    assert_eq!(app.ids(&[("q", "EMC 检测")]).await, ["emc"]);
    // A term of several pieces matches them next to each other.
    assert_eq!(app.ids(&[("q", "emc预测")]).await, ["auto"]);
    assert!(app.ids(&[("q", "emc检测")]).await.is_empty());
    // Words match whole: `electron` is not `Electromagnetic`.
    assert_eq!(app.ids(&[("q", "electron")]).await, ["sem"]);
    assert_eq!(app.ids(&[("q", "ＥＬＥＣＴＲＯＮ")]).await, ["sem"]);
    // Exclusions and phrases.
    assert_eq!(app.ids(&[("q", "EMC -电磁")]).await, ["auto"]);
    assert_eq!(app.ids(&[("q", "\"mass spectrometry\"")]).await, ["ms-hr"]);
    assert!(app.ids(&[("q", "\"spectrometry mass\"")]).await.is_empty());
    // One character alone matches wherever it stands.
    assert_eq!(
        app.ids(&[("q", "谱"), ("sort", "price_asc")]).await,
        ["gc", "ms-hr"]
    );
    // Scores come down the page, and the total counts every hit.
    let page = app.search(&[("q", "测试")]).await;
    assert_eq!(page.total, 2);
    let scores: Vec<f32> = page.hits.iter().map(|h| h.score.unwrap()).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
}

#[tokio::test]
async fn filters_narrow_and_facets_count_every_match() {
    let app = spawn_app().await;
    let (lab, _) = corpus(&app).await;
    let lab_key = lab.public_key().to_base64();
    let all = app.search(&[]).await;
    assert_eq!(all.total, 5);
    assert_eq!(all.indexed.log_size, app.node.tree_size());
    let count = |facet: &[vledger_wire::http::FacetCount], value: &str| {
        facet
            .iter()
            .find(|f| f.value == value)
            .map_or(0, |f| f.count)
    };
    assert_eq!(count(&all.facets.pool, "instruments_equipment"), 4);
    assert_eq!(count(&all.facets.pool, "industry"), 1);
    assert_eq!(count(&all.facets.industry, "automotive"), 1);
    assert_eq!(count(&all.facets.region, "cq"), 5);
    assert_eq!(count(&all.facets.category, "testing"), 3);
    assert_eq!(all.facets.category[0].value, "testing");

    let cases: [(&[(&str, &str)], &[&str]); 9] = [
        (&[("pool", "industry")], &["auto"]),
        (&[("industry", "automotive")], &["auto"]),
        (&[("category", "microscopy")], &["sem"]),
        (&[("currency", "USD")], &["sem"]),
        (
            &[("unit", "per device"), ("sort", "price_asc")],
            &["auto", "emc"],
        ),
        (
            &[
                ("min_price", "30000"),
                ("max_price", "60000"),
                ("sort", "price_desc"),
            ],
            &["ms-hr", "auto", "gc"],
        ),
        (&[("min_price", "60001"), ("max_price", "60000")], &[]),
        (
            &[("agency", &lab_key), ("sort", "price_asc")],
            &["sem", "gc", "ms-hr"],
        ),
        (&[("region", "sc")], &[]),
    ];
    for (query, expected) in cases {
        assert_eq!(app.ids(query).await, expected, "{query:?}");
    }
    // Facets count the matches of the text and the filters, not the page.
    let page = app
        .search(&[("q", "EMC"), ("limit", "1"), ("sort", "price_asc")])
        .await;
    assert_eq!(ids(&page), ["auto"]);
    assert_eq!(page.total, 2);
    assert_eq!(count(&page.facets.category, "testing"), 1);
    assert_eq!(count(&page.facets.category, "automotive_testing"), 1);
    // Blank filters filter nothing.
    assert_eq!(app.search(&[("q", "  "), ("category", " ")]).await.total, 5);
}

#[tokio::test]
async fn a_listing_changed_or_withdrawn_is_found_as_it_is_within_one_batch() {
    let app = spawn_app().await;
    let (lab, _) = corpus(&app).await;
    app.accept(
        &lab,
        "catalog.update",
        json!({ "listing_id": "gc", "title": "气相色谱质谱仪测试", "price_minor": 90_000 }),
    )
    .await;
    let mut found = app.ids(&[("q", "质谱仪")]).await;
    found.sort();
    assert_eq!(found, ["gc", "ms-hr"]);
    let page = app.search(&[("q", "气相")]).await;
    assert_eq!(page.hits[0].listing.price_minor, 90_000);
    app.accept(
        &lab,
        "catalog.withdraw",
        json!({ "listing_id": "ms-hr", "reason": "设备检修" }),
    )
    .await;
    assert_eq!(app.ids(&[("q", "质谱仪")]).await, ["gc"]);
    assert_eq!(app.search(&[]).await.total, 4);
}

#[tokio::test]
async fn pages_stay_stable_while_listings_are_added() {
    let app = spawn_app().await;
    let agency = app.party("agency").await;
    for i in 0..30 {
        // Different lengths and repetitions give different scores, some equal.
        let title = format!("{} 检测 {}", "精密".repeat(1 + i % 4), "x".repeat(i % 3));
        app.list(
            &agency,
            &format!("a{i:02}"),
            json!({ "title": title, "price_minor": 1_000 + (i % 7) * 100 }),
        )
        .await;
    }
    for sort in ["relevance", "price_asc", "price_desc"] {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        let mut added = 0;
        loop {
            let mut query = vec![("q", "检测"), ("limit", "7"), ("sort", sort)];
            if let Some(c) = &cursor {
                query.push(("cursor", c));
            }
            let page = app.search(&query).await;
            seen.extend(ids(&page));
            // Between pages, more listings with the word (which changes every score's
            // statistics) and listings without it.
            for _ in 0..3 {
                app.list(
                    &agency,
                    &format!("{sort}-{added}"),
                    json!({ "title": "检测 检测 新", "price_minor": 5_000 }),
                )
                .await;
                app.list(
                    &agency,
                    &format!("{sort}-other-{added}"),
                    json!({ "title": "其他" }),
                )
                .await;
                added += 1;
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        let unique: BTreeSet<&String> = seen.iter().collect();
        assert_eq!(
            unique.len(),
            seen.len(),
            "{sort}: a listing was shown twice"
        );
        for i in 0..30 {
            assert!(
                seen.contains(&format!("a{i:02}")),
                "{sort}: a{i:02} was skipped"
            );
        }
    }
    // A cursor belongs to its query.
    let page = app.search(&[("q", "检测"), ("limit", "2")]).await;
    let cursor = page.next_cursor.unwrap();
    let response = app
        .get("/v1/catalog/search", &[("q", "精密"), ("cursor", &cursor)])
        .await;
    problem(response, 400, "invalid-query").await;
    let response = app.get("/v1/catalog/search", &[("cursor", "AAAA")]).await;
    problem(response, 400, "invalid-query").await;
}

#[tokio::test]
async fn bad_parameters_are_problems() {
    let app = spawn_app().await;
    let long = "长".repeat(257);
    let beyond = (app.node.tree_size() + 1).to_string();
    let cases: [(&[(&str, &str)], u16, &str); 7] = [
        (&[("min_log_size", &beyond)], 404, "out-of-range"),
        (&[("q", &long)], 400, "invalid-query"),
        (&[("limit", "0")], 400, "invalid-query"),
        (&[("limit", "101")], 400, "invalid-query"),
        (&[("currency", "CNYX")], 400, "invalid-query"),
        (&[("sort", "newest")], 400, "invalid-query"),
        (&[("agency", "not-a-key")], 400, "invalid-query"),
    ];
    for (query, status, code) in cases {
        let response = app.get("/v1/catalog/search", query).await;
        assert_eq!(response.status(), status, "{query:?}");
        let body: Value = response.json().await.unwrap();
        assert!(
            body["type"] == format!("urn:vledger:problem:{code}")
                || body["type"] == "urn:vledger:problem:invalid-parameter",
            "{query:?}: {body}"
        );
    }
    let many = (0..70)
        .map(|i| format!("w{i}"))
        .collect::<Vec<_>>()
        .join(" ");
    problem(
        app.get("/v1/catalog/search", &[("q", &many)]).await,
        400,
        "invalid-query",
    )
    .await;
}

#[tokio::test]
async fn demands_match_the_listings_that_fit_best_first() {
    let app = spawn_app().await;
    corpus(&app).await;
    let enterprise = app.party("enterprise").await;
    app.accept(
        &enterprise,
        "demand.post",
        json!({ "demand_id": "d-ms", "category": "testing", "title": "需要质谱检测",
                "description": "高分辨质谱 mass spectrometry", "budget_max_minor": 70_000,
                "currency": "CNY" }),
    )
    .await;
    let size = app.node.tree_size().to_string();
    let response = app
        .get(
            "/v1/catalog/demands/d-ms/matches",
            &[("min_log_size", &size)],
        )
        .await;
    assert_eq!(response.status(), 200);
    let matches: DemandMatches = response.json().await.unwrap();
    let found: Vec<&str> = matches
        .hits
        .iter()
        .map(|h| h.listing.listing_id.as_str())
        .collect();
    // The mass spectrometry test ranks first; the gas chromatograph (质谱 in its description)
    // next; EMC testing is in the category and budget but over it (80,000), so absent; the
    // microscope is another category.
    assert_eq!(found, ["ms-hr", "gc"]);
    assert!(matches.indexed.log_size >= app.node.tree_size());
}

#[tokio::test]
async fn an_index_rebuilt_from_the_store_answers_as_the_live_one() {
    let app = spawn_app().await;
    let (lab, _) = corpus(&app).await;
    app.accept(
        &lab,
        "catalog.withdraw",
        json!({ "listing_id": "gc", "reason": "停用" }),
    )
    .await;
    assert!(app
        .index
        .wait_for(app.node.tree_size(), Duration::from_secs(10)));
    let rebuilt = CatalogIndex::open("cq".try_into().unwrap(), None, 0).unwrap();
    rebuilt.catch_up(app.node.store()).unwrap();
    assert_eq!(rebuilt.freshness(), app.index.freshness());
    for text in ["", "质谱", "EMC", "测试", "electron -microscope"] {
        for sort in [SortOrder::Relevance, SortOrder::PriceAsc] {
            let query = SearchQuery {
                text: Some(text.into()),
                sort,
                limit: 10,
                ..Default::default()
            };
            let live = app.index.search(app.node.store(), &query).unwrap();
            let again = rebuilt.search(app.node.store(), &query).unwrap();
            // The same hits in the same order, counts and facets. (Scores may differ in their
            // last digits: the live index still counts the documents it replaced in its
            // statistics until their segments merge.)
            assert_eq!(ids(&live), ids(&again), "{text:?} {sort:?}");
            assert_eq!(live.total, again.total, "{text:?} {sort:?}");
            assert_eq!(live.facets, again.facets, "{text:?} {sort:?}");
        }
    }
}
