//! `vledger-search-bench`: the catalog's search engine at scale, with the old scan measured
//! beside it in the same run. In process, on RocksDB, served over real HTTP on loopback:
//!
//! 1. ingest: `--ingest` `catalog.list` commands into a node without the index, then into a
//!    node whose index follows (on disk), at the writer's maximum rate (4,096 in flight); the
//!    two rates, their ratio, and the index's lag behind the log (sampled every 10 ms: entries,
//!    and how long each sampled log size took to be indexed);
//! 2. a federation-wide corpus of `--listings` listings of realistic Chinese and English text:
//!    half in Chongqing's log (the node of step 1 goes on), half in Sichuan's, which Chongqing
//!    mirrors and adopts; its index follows both;
//! 3. search latency over HTTP (`GET /v1/catalog/search`, facets included in every answer):
//!    a rare word (10 listings; the first page must hold all 10), a common word, filters
//!    only, and a common word sorted by price; p50 and p99 of `--queries` requests each; the
//!    old scan (`GET /v1/catalog/listings?q=`) for the rare word: its first page, and the
//!    round trips to find all 10;
//! 4. resident memory: the process's RSS before the index is opened (the node alone, after the
//!    old scan's queries) and after the search queries, and the resident pages of the index's
//!    files;
//! 5. a full rebuild of the index from the store (listings per second).
//!
//! Prints JSON.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use vledger_benches::submit_all;
use vledger_domain::types::RegionId;
use vledger_domain::GenesisBody;
use vledger_federation::source::LocalSource;
use vledger_federation::{Mirror, Peer, StepOutcome};
use vledger_node::node::{Node, NodeConfig};
use vledger_search::CatalogIndex;
use vledger_tlog::keys::SigningKey;
use vledger_tlog::note::NoteVerifier;
use vledger_wire::envelope::{seal, CommandPayload, VerifiedEnvelope, COMMAND_FORMAT_VERSION};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
struct Args {
    /// Listings in all, half in each region.
    #[arg(long, default_value_t = 1_000_000)]
    listings: u64,
    /// Listings of the ingest comparison (the first of Chongqing's).
    #[arg(long, default_value_t = 100_000)]
    ingest: u64,
    /// Requests per kind of search.
    #[arg(long, default_value_t = 300)]
    queries: u64,
    /// Where the stores go (a fresh temporary directory by default).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Measure searches, memory and the rebuild on the stores an earlier run left in `--dir`
    /// (steps 3 to 5 only).
    #[arg(long, requires = "dir")]
    measure_only: bool,
}

/// Listings of each agency.
const LISTINGS_PER_AGENCY: u64 = 1000;
/// Listings that hold the rare words.
const RARE_HITS: u64 = 10;
const RARE_WORD: &str = "zirconolite";
const RARE_CHINESE: &str = "锆石定年";

fn open(dir: &Path, region: &str, key: &SigningKey, admin: &SigningKey) -> Result<Arc<Node>> {
    Node::open(NodeConfig {
        data_dir: dir.join("db"),
        region: RegionId::try_from(region).map_err(|e| anyhow::anyhow!("{e}"))?,
        origin: format!("vledger.local/{region}"),
        node_key: key.clone(),
        genesis: Some(GenesisBody {
            region_name: region.into(),
            admin_key: admin.public_key(),
            admin_name: "admin".into(),
            time_zone: "Asia/Shanghai".into(),
        }),
        max_batch_commands: vledger_domain::limits::MAX_BATCH_COMMANDS,
    })
    .context("open node")
}

fn command(
    region: &str,
    signer: &SigningKey,
    kind: &str,
    nonce: String,
    body: Value,
) -> VerifiedEnvelope {
    let payload = CommandPayload {
        v: u64::from(COMMAND_FORMAT_VERSION),
        command_type: kind.into(),
        region: RegionId::try_from(region).expect("region"),
        signer: signer.public_key(),
        nonce,
        body,
    };
    VerifiedEnvelope::parse_and_verify(&seal(&payload, signer)).expect("sealed")
}

/// The region's agencies, registered.
fn agencies(node: &Node, admin: &SigningKey, region: &str, count: u64) -> Vec<SigningKey> {
    let keys: Vec<SigningKey> = (0..count)
        .map(|i| {
            let mut seed = [7u8; 32];
            seed[..8].copy_from_slice(&i.to_be_bytes());
            seed[8..10].copy_from_slice(&region.as_bytes()[..2]);
            SigningKey::from_bytes(&seed)
        })
        .collect();
    submit_all(
        node,
        keys.iter().enumerate().map(|(i, key)| {
            command(
                region,
                admin,
                "party.register",
                format!("agency-{i}"),
                json!({ "key": key.public_key().to_base64(), "role": "agency",
                        "home_region": region, "name": format!("{region} lab {i}") }),
            )
        }),
    );
    keys
}

const CN_MODIFIERS: &[&str] = &[
    "高分辨",
    "精密",
    "快速",
    "第三方",
    "国家级",
    "高通量",
    "全自动",
    "便携式",
    "低温",
    "高温",
    "在线",
    "微区",
    "无损",
    "定制化",
    "专业",
];
const CN_SUBJECTS: &[&str] = &[
    "质谱",
    "色谱",
    "电镜",
    "光谱",
    "核磁共振",
    "X射线衍射",
    "电磁兼容",
    "动力电池",
    "集成电路",
    "芯片封装",
    "基因测序",
    "细胞培养",
    "实验动物",
    "金属材料",
    "高分子材料",
    "复合材料",
    "水质",
    "土壤",
    "食品安全",
    "医疗器械",
    "工业软件",
    "大数据",
    "知识产权",
    "汽车零部件",
    "传感器",
];
const CN_SERVICES: &[&str] = &[
    "检测", "分析", "测试", "认证", "评价", "试验", "测定", "表征", "咨询", "服务", "租用", "培训",
];
const EN_WORDS: &[&str] = &[
    "testing",
    "analysis",
    "certification",
    "spectrometry",
    "chromatography",
    "microscopy",
    "EMC",
    "battery",
    "semiconductor",
    "sequencing",
    "materials",
    "reliability",
    "calibration",
    "laboratory",
    "accredited",
    "CNAS",
    "ISO",
    "report",
    "sample",
    "instrument",
    "fatigue",
    "thermal",
    "vibration",
    "corrosion",
    "software",
    "data",
    "robot",
    "controller",
    "vehicle",
];
const CN_SENTENCES: &[&str] = &[
    "提供具有CNAS资质的检测报告",
    "样品寄送后五个工作日内出具结果",
    "可按客户需求定制测试方案",
    "设备由专业工程师操作并解读数据",
    "支持创新券抵扣部分费用",
    "面向成渝地区企业开放共享",
    "可提供上门采样与现场测试",
    "实验室通过ISO17025认可",
];
const POOLS: &[&str] = &[
    "instruments_equipment",
    "science_data",
    "literature",
    "achievements",
    "talent",
    "institutions_bases",
];
const INDUSTRIES: &[&str] = &["automotive", "iot", "integrated_circuits", "biomedicine"];
const CATEGORIES: &[&str] = &[
    "testing",
    "analysis",
    "certification",
    "consulting",
    "rental",
];

fn pick<'a>(rng: &mut StdRng, from: &[&'a str]) -> &'a str {
    from[rng.gen_range(0..from.len())]
}

/// Listing `n` of `region`, rare words in the first [`RARE_HITS`] of the corpus.
fn listing_body(rng: &mut StdRng, region: &str, n: u64, rare: bool) -> Value {
    let mut title = format!(
        "{}{}{}",
        pick(rng, CN_MODIFIERS),
        pick(rng, CN_SUBJECTS),
        pick(rng, CN_SERVICES)
    );
    if rng.gen_bool(0.5) {
        title.push_str(&format!(" {} {}", pick(rng, EN_WORDS), pick(rng, EN_WORDS)));
    }
    let mut description = String::new();
    for _ in 0..rng.gen_range(2..5) {
        description.push_str(pick(rng, CN_SENTENCES));
        description.push('，');
    }
    for _ in 0..rng.gen_range(4..12) {
        description.push_str(pick(rng, EN_WORDS));
        description.push(' ');
    }
    if rare {
        title.push_str(&format!(" {RARE_WORD} {RARE_CHINESE}"));
    }
    let industry = rng.gen_bool(0.2);
    let mut body = json!({
        "listing_id": format!("{region}-{n:08}"),
        "pool": if industry { "industry" } else { pick(rng, POOLS) },
        "category": pick(rng, CATEGORIES),
        "title": title,
        "description": description,
        "price_minor": rng.gen_range(1..2000) * 1000,
        "currency": "CNY",
        "unit": pick(rng, &["每样品", "每机时", "per sample", "per hour"]),
        "tags": [pick(rng, CN_SUBJECTS), pick(rng, EN_WORDS)],
    });
    if industry {
        body["industry"] = json!(pick(rng, INDUSTRIES));
    }
    body
}

/// Lists `range` of `region`'s corpus.
fn list(
    node: &Node,
    region: &str,
    agencies: &[SigningKey],
    range: std::ops::Range<u64>,
    rare_until: u64,
) {
    let mut rng = StdRng::seed_from_u64(range.start ^ u64::from(region.as_bytes()[0]));
    submit_all(
        node,
        range.map(|n| {
            let agency = &agencies[(n / LISTINGS_PER_AGENCY) as usize % agencies.len()];
            let body = listing_body(&mut rng, region, n, n < rare_until);
            command(region, agency, "catalog.list", format!("list-{n}"), body)
        }),
    )
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Resident KiB of the mappings of files under `dir`.
fn mapped_rss_kib(dir: &Path) -> u64 {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap_or_default();
    let dir = dir.to_string_lossy().to_string();
    let mut total = 0;
    let mut inside = false;
    for line in smaps.lines() {
        if line.contains('-') && line.split_whitespace().count() >= 5 && !line.ends_with("kB") {
            inside = line.contains(&dir);
        } else if inside {
            if let Some(v) = line.strip_prefix("Rss:") {
                total += v
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .unwrap_or(0);
            }
        }
    }
    total
}

/// Ingests the listings `0..count` of Chongqing into `node`, sampling the index's lag.
fn ingest(
    node: &Arc<Node>,
    index: Option<&Arc<CatalogIndex>>,
    agencies: &[SigningKey],
    count: u64,
    rare_until: u64,
) -> Value {
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = index.map(|index| {
        let (node, index, stop) = (node.clone(), index.clone(), stop.clone());
        std::thread::spawn(move || {
            // (time, log size) and (time, indexed size), every 10 ms.
            let started = Instant::now();
            let mut logged = Vec::new();
            let mut indexed = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let t = started.elapsed().as_secs_f64();
                indexed.push((t, index.freshness().log_size));
                logged.push((t, node.tree_size()));
                std::thread::sleep(Duration::from_millis(10));
            }
            (logged, indexed)
        })
    });
    let started = Instant::now();
    let before = node.tree_size();
    list(node, "cq", agencies, 0..count, rare_until);
    let seconds = started.elapsed().as_secs_f64();
    let entries = node.tree_size() - before;
    let mut out =
        json!({ "listings": count, "seconds": seconds, "per_second": entries as f64 / seconds });
    if let (Some(sampler), Some(index)) = (sampler, index) {
        let drain = Instant::now();
        index.wait_for(node.tree_size(), Duration::from_secs(600));
        let drained = drain.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        let (logged, indexed) = sampler.join().expect("sampler");
        let mut lags = Vec::new();
        let mut max_entries = 0;
        for (i, (t, size)) in logged.iter().enumerate() {
            max_entries = max_entries.max(size.saturating_sub(indexed[i].1));
            if let Some((reached, _)) = indexed.iter().find(|(_, s)| s >= size) {
                lags.push((reached - t).max(0.0));
            }
        }
        lags.sort_by(f64::total_cmp);
        let at = |q: f64| {
            lags.get(((lags.len() as f64 * q) as usize).min(lags.len().saturating_sub(1)))
                .copied()
                .unwrap_or(0.0)
        };
        out["index_lag"] = json!({
            "max_entries": max_entries, "p50_seconds": at(0.5), "p99_seconds": at(0.99),
            "max_seconds": lags.last().copied().unwrap_or(0.0), "drain_seconds_after_ingest": drained,
        });
    }
    out
}

/// A node served on loopback until this is dropped (with its runtime).
struct Served {
    base: String,
    _runtime: tokio::runtime::Runtime,
}

fn serve(node: &Arc<Node>, index: Option<Arc<CatalogIndex>>) -> Result<Served> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let base = format!("http://{}", listener.local_addr()?);
    runtime.spawn(vledger_api::serve_app(
        listener,
        node.clone(),
        vledger_api::NodeServices {
            catalog: index,
            ..Default::default()
        },
        vledger_api::ConnectionLimits::default(),
        std::future::pending(),
    ));
    Ok(Served {
        base,
        _runtime: runtime,
    })
}

/// p50 and p99 (ms) of `count` requests of `path` with `query`, and the last answer.
fn latency(
    client: &reqwest::blocking::Client,
    base: &str,
    path: &str,
    query: &[(&str, &str)],
    count: u64,
) -> Result<(Value, Value)> {
    let mut histogram = Histogram::<u64>::new(3)?;
    let mut last = Value::Null;
    for _ in 0..count {
        let started = Instant::now();
        let response = client.get(format!("{base}{path}")).query(query).send()?;
        if !response.status().is_success() {
            bail!("{path} {query:?}: {}", response.text()?);
        }
        last = response.json()?;
        histogram.record(started.elapsed().as_micros() as u64)?;
    }
    let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    Ok((
        json!({ "p50_ms": ms(0.5), "p99_ms": ms(0.99), "max_ms": histogram.max() as f64 / 1000.0, "requests": count }),
        last,
    ))
}

fn main() -> Result<()> {
    let args = Args::parse();
    let scratch = tempfile::tempdir()?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| scratch.path().to_path_buf());
    let half = args.listings / 2;
    let ingest_count = args.ingest.min(half);
    let agency_count = half.div_ceil(LISTINGS_PER_AGENCY).max(1);
    let (cq_key, cq_admin) = (
        SigningKey::from_bytes(&[1; 32]),
        SigningKey::from_bytes(&[2; 32]),
    );
    let (sc_key, sc_admin) = (
        SigningKey::from_bytes(&[3; 32]),
        SigningKey::from_bytes(&[4; 32]),
    );
    let mut report = json!({ "listings": args.listings });

    let index_dir = dir.join("cq").join("catalog-index");
    if !args.measure_only {
        // 1. The ingest rate without the index, then with it.
        {
            let plain = open(&dir.join("plain"), "cq", &cq_key, &cq_admin)?;
            let keys = agencies(&plain, &cq_admin, "cq", agency_count);
            report["ingest_without_index"] = ingest(&plain, None, &keys, ingest_count, 0);
            plain.shutdown();
        }
        std::fs::remove_dir_all(dir.join("plain"))?;
        let cq = open(&dir.join("cq"), "cq", &cq_key, &cq_admin)?;
        let index = CatalogIndex::start(&cq, Some(index_dir.clone()))?;
        let cq_agencies = agencies(&cq, &cq_admin, "cq", agency_count);
        report["ingest_with_index"] =
            ingest(&cq, Some(&index), &cq_agencies, ingest_count, RARE_HITS / 2);
        let ratio = report["ingest_with_index"]["per_second"]
            .as_f64()
            .unwrap_or(0.0)
            / report["ingest_without_index"]["per_second"]
                .as_f64()
                .unwrap_or(1.0);
        report["ingest_ratio"] = json!(ratio);
        eprintln!("ingest: {}", report["ingest_with_index"]);

        // 2. The rest of the corpus: Chongqing's, and Sichuan's, mirrored and adopted.
        let started = Instant::now();
        list(&cq, "cq", &cq_agencies, ingest_count..half, RARE_HITS / 2);
        let sc = open(&dir.join("sc"), "sc", &sc_key, &sc_admin)?;
        let sc_agencies = agencies(&sc, &sc_admin, "sc", agency_count);
        list(
            &sc,
            "sc",
            &sc_agencies,
            0..args.listings - half,
            RARE_HITS - RARE_HITS / 2,
        );
        eprintln!("corpus listed in {:.0} s", started.elapsed().as_secs_f64());
        let started = Instant::now();
        let peer = Peer {
            region: sc.region().clone(),
            url: String::new(),
            verifier: NoteVerifier::new("vledger.local/sc", sc_key.public_key())?,
        };
        let mut mirror = Mirror::new(cq.clone(), peer, None);
        let mut source = LocalSource { node: sc.clone() };
        loop {
            match mirror.step(&mut source, vledger_node::writer::wall_clock_ms()) {
                StepOutcome::Adopted { .. } => {}
                StepOutcome::UpToDate => break,
                other => bail!("mirror step: {other:?}"),
            }
        }
        let sc_size = sc.tree_size();
        let indexed_at = Instant::now();
        while index.freshness().regions.get(sc.region()).copied() != Some(sc_size) {
            if indexed_at.elapsed() > Duration::from_secs(1800) {
                bail!("the index did not reach Sichuan's adopted size");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        report["mirror_and_index_seconds"] = json!(started.elapsed().as_secs_f64());
        drop((mirror, source));
        sc.shutdown();
        drop(sc);
        let freshness = index.freshness();
        report["indexed"] = serde_json::to_value(&freshness)?;
        drop(index);
        cq.shutdown();
        drop(cq);
    }

    // 3 and 4. The node alone and the old scan; then the index opened and searched.
    let cq = open(&dir.join("cq"), "cq", &cq_key, &cq_admin)?;
    let client = reqwest::blocking::Client::new();
    // The node alone: its catalog reads served beside an index that is never built.
    let never_built = CatalogIndex::open(cq.region().clone(), None, cq.tree_size())?;
    let plain = serve(&cq, Some(Arc::new(never_built)))?;
    let scan_query = [("q", RARE_WORD), ("limit", "100")];
    let (scan_first_page, _) = latency(
        &client,
        &plain.base,
        "/v1/catalog/listings",
        &scan_query,
        20.min(args.queries),
    )?;
    let started = Instant::now();
    let (mut round_trips, mut found, mut after) = (0u64, 0usize, None::<String>);
    loop {
        let mut query = vec![("q", RARE_WORD.to_string()), ("limit", "100".to_string())];
        if let Some(a) = &after {
            query.push(("after", a.clone()));
        }
        let page: Value = client
            .get(format!("{}/v1/catalog/listings", plain.base))
            .query(&query)
            .send()?
            .json()?;
        round_trips += 1;
        found += page["listings"].as_array().map_or(0, Vec::len);
        match page["next_after"].as_str() {
            Some(next) => after = Some(next.to_string()),
            None => break,
        }
    }
    report["old_scan_rare_word"] = json!({
        "first_page": scan_first_page, "round_trips_for_every_hit": round_trips,
        "hits_found": found, "seconds_for_every_hit": started.elapsed().as_secs_f64(),
        "note": "of region cq only: the scan reads one region's catalog per request",
    });
    let rss_without = rss_kib();
    drop(plain);

    let index = CatalogIndex::start(&cq, Some(index_dir.clone()))?;
    let served = serve(&cq, Some(index.clone()))?;
    let kinds: [(&str, Vec<(&str, &str)>); 6] = [
        ("rare_word", vec![("q", RARE_WORD)]),
        ("rare_chinese", vec![("q", RARE_CHINESE)]),
        ("common_word", vec![("q", "检测")]),
        ("common_english", vec![("q", "testing report")]),
        (
            "filters_only",
            vec![
                ("pool", "industry"),
                ("industry", "automotive"),
                ("min_price", "100000"),
                ("max_price", "900000"),
                ("category", "testing"),
            ],
        ),
        (
            "common_word_by_price",
            vec![("q", "分析"), ("sort", "price_asc"), ("region", "sc")],
        ),
    ];
    let mut searches = json!({});
    for (name, query) in &kinds {
        let (figures, last) = latency(
            &client,
            &served.base,
            "/v1/catalog/search",
            query,
            args.queries,
        )?;
        let mut figures = figures;
        figures["total"] = last["total"].clone();
        figures["hits_on_first_page"] = json!(last["hits"].as_array().map_or(0, Vec::len));
        if name.starts_with("rare") && last["total"] != json!(RARE_HITS) {
            bail!("{name}: {} hits, expected {RARE_HITS}", last["total"]);
        }
        searches[*name] = figures;
    }
    report["search_over_http"] = searches;
    report["memory_kib"] = json!({
        "rss_node_alone": rss_without, "rss_with_index_after_searches": rss_kib(),
        "added": rss_kib().saturating_sub(rss_without),
        "index_files_resident": mapped_rss_kib(&index_dir),
    });
    drop(served);
    drop(index);

    // 5. A full rebuild from the store.
    let started = Instant::now();
    let rebuilt = vledger_search::index::rebuild_in(&dir.join("rebuilt-index"), cq.store())?;
    let seconds = started.elapsed().as_secs_f64();
    report["rebuild"] = json!({ "listings": rebuilt.listings, "seconds": seconds,
                                "listings_per_second": rebuilt.listings as f64 / seconds });
    cq.shutdown();
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
