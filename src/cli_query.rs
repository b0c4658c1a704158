//! `vledger query …` reads records, entries and proofs; `vledger tail` follows the event stream.

use anyhow::{Context, Result};
use serde_json::Value;
use vledger_client::{path_segment, Client, EventsRequest};
use vledger_tlog::keys::PublicKey;

use crate::cli_submit::explain;

#[derive(clap::Args)]
pub struct QueryArgs {
    #[command(subcommand)]
    what: Query,
    /// The node's base URL.
    #[arg(
        long,
        env = "VLEDGER_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    url: String,
}

/// Filters shared by the lists.
#[derive(clap::Args)]
pub struct Paging {
    /// Continue after this id (the `next_after` of the previous page).
    #[arg(long)]
    after: Option<String>,
    /// At most this many records (1 to 200).
    #[arg(long)]
    limit: Option<usize>,
}

#[derive(clap::Subcommand)]
enum Query {
    /// The node's region, origin, keys and tree size.
    Node,
    /// The latest signed checkpoint.
    Checkpoint,
    /// One entry with its inclusion proof in the latest checkpoint's tree.
    Entry { index: u64 },
    /// One program with its budget buckets, or every program.
    Program {
        id: Option<String>,
        #[command(flatten)]
        paging: Paging,
    },
    /// One voucher, or the vouchers of a holder or program.
    Voucher {
        id: Option<String>,
        #[arg(long)]
        holder: Option<String>,
        #[arg(long)]
        program: Option<String>,
        #[arg(long)]
        status: Option<String>,
        #[command(flatten)]
        paging: Paging,
    },
    /// One order, or the orders of an enterprise, agency, program or voucher.
    Order {
        id: Option<String>,
        #[arg(long)]
        enterprise: Option<String>,
        #[arg(long)]
        agency: Option<String>,
        #[arg(long)]
        program: Option<String>,
        #[arg(long)]
        voucher: Option<String>,
        #[arg(long)]
        status: Option<String>,
        #[command(flatten)]
        paging: Paging,
    },
    /// The claim of one order, or the claims of an agency, program or status.
    Claim {
        order: Option<String>,
        #[arg(long)]
        agency: Option<String>,
        #[arg(long)]
        program: Option<String>,
        #[arg(long)]
        status: Option<String>,
        #[command(flatten)]
        paging: Paging,
    },
    /// One party by its public key.
    Party { key: String },
    /// Search the catalog of every region of the federation, best match first (the query
    /// language is `GET /v1/catalog/search`'s `q`, in /openapi.json).
    Listings {
        /// Terms that must all match: words, Chinese characters standing together,
        /// "quoted phrases", and -excluded terms.
        #[arg(long)]
        text: Option<String>,
        #[arg(long)]
        pool: Option<String>,
        #[arg(long)]
        industry: Option<String>,
        /// Only listings held in this region's log.
        #[arg(long)]
        region: Option<String>,
        #[arg(long)]
        category: Option<String>,
        #[arg(long)]
        min_price: Option<u64>,
        #[arg(long)]
        max_price: Option<u64>,
        #[arg(long)]
        currency: Option<String>,
        #[arg(long)]
        unit: Option<String>,
        /// The agency's public key (standard base64).
        #[arg(long)]
        agency: Option<String>,
        /// relevance (the default), price_asc or price_desc.
        #[arg(long)]
        sort: Option<String>,
        /// The `next_cursor` of the previous page of the same search.
        #[arg(long)]
        cursor: Option<String>,
        /// At most this many hits (1 to 100; 20 by default).
        #[arg(long)]
        limit: Option<usize>,
    },
    /// The listings of every region that fit a demand, the best match first.
    Matches { demand: String },
    /// Fraud flags raised for regulators.
    FraudFlags {
        #[arg(long)]
        after_index: Option<u64>,
    },
    /// What regions owe each other from advanced cross-region payouts.
    Settlement,
    /// One settlement statement, or this log's statements (owed to a creditor, in a status).
    Statements {
        id: Option<String>,
        #[arg(long)]
        creditor: Option<String>,
        #[arg(long)]
        status: Option<String>,
        #[command(flatten)]
        paging: Paging,
    },
}

fn push(query: &mut Vec<(&'static str, String)>, name: &'static str, value: &Option<String>) {
    if let Some(v) = value {
        query.push((name, v.clone()));
    }
}

fn paging(query: &mut Vec<(&'static str, String)>, paging: &Paging) {
    push(query, "after", &paging.after);
    push(query, "limit", &paging.limit.map(|l| l.to_string()));
}

fn one_or_list(
    kind: &str,
    id: &Option<String>,
    mut query: Vec<(&'static str, String)>,
    page: &Paging,
) -> (String, Vec<(&'static str, String)>) {
    match id {
        Some(id) => (format!("/v1/{kind}/{}", path_segment(id)), Vec::new()),
        None => {
            paging(&mut query, page);
            (format!("/v1/{kind}"), query)
        }
    }
}

pub fn run(args: QueryArgs) -> Result<()> {
    let client = Client::new(&args.url);
    let (path, query) = match &args.what {
        Query::Node => ("/v1/node".to_string(), Vec::new()),
        Query::Checkpoint => {
            print!("{}", client.checkpoint().map_err(explain)?);
            return Ok(());
        }
        Query::Entry { index } => (format!("/v1/entries/{index}"), Vec::new()),
        Query::Program { id, paging } => one_or_list("programs", id, Vec::new(), paging),
        Query::Voucher {
            id,
            holder,
            program,
            status,
            paging,
        } => {
            let mut q = Vec::new();
            push(&mut q, "holder", holder);
            push(&mut q, "program", program);
            push(&mut q, "status", status);
            one_or_list("vouchers", id, q, paging)
        }
        Query::Order {
            id,
            enterprise,
            agency,
            program,
            voucher,
            status,
            paging,
        } => {
            let mut q = Vec::new();
            push(&mut q, "enterprise", enterprise);
            push(&mut q, "agency", agency);
            push(&mut q, "program", program);
            push(&mut q, "voucher", voucher);
            push(&mut q, "status", status);
            one_or_list("orders", id, q, paging)
        }
        Query::Claim {
            order,
            agency,
            program,
            status,
            paging,
        } => {
            let mut q = Vec::new();
            push(&mut q, "agency", agency);
            push(&mut q, "program", program);
            push(&mut q, "status", status);
            one_or_list("claims", order, q, paging)
        }
        Query::Party { key } => (format!("/v1/parties/{}", path_segment(key)), Vec::new()),
        Query::Listings {
            text,
            pool,
            industry,
            region,
            category,
            min_price,
            max_price,
            currency,
            unit,
            agency,
            sort,
            cursor,
            limit,
        } => {
            let mut q = Vec::new();
            push(&mut q, "q", text);
            push(&mut q, "pool", pool);
            push(&mut q, "industry", industry);
            push(&mut q, "region", region);
            push(&mut q, "category", category);
            push(&mut q, "min_price", &min_price.map(|v| v.to_string()));
            push(&mut q, "max_price", &max_price.map(|v| v.to_string()));
            push(&mut q, "currency", currency);
            push(&mut q, "unit", unit);
            push(&mut q, "agency", agency);
            push(&mut q, "sort", sort);
            push(&mut q, "cursor", cursor);
            push(&mut q, "limit", &limit.map(|v| v.to_string()));
            ("/v1/catalog/search".to_string(), q)
        }
        Query::Matches { demand } => (
            format!("/v1/catalog/demands/{}/matches", path_segment(demand)),
            Vec::new(),
        ),
        Query::FraudFlags { after_index } => {
            let mut q = Vec::new();
            push(&mut q, "after_index", &after_index.map(|v| v.to_string()));
            ("/v1/fraud-flags".to_string(), q)
        }
        Query::Settlement => ("/v1/settlement/positions".to_string(), Vec::new()),
        Query::Statements {
            id,
            creditor,
            status,
            paging,
        } => {
            let mut query = Vec::new();
            push(&mut query, "creditor", creditor);
            push(&mut query, "status", status);
            one_or_list("settlement/statements", id, query, paging)
        }
    };
    let mut query = query;
    if matches!(args.what, Query::Listings { .. } | Query::Matches { .. }) {
        // The catalog's index follows the log a moment behind: a person searching wants to
        // see what was just done, so the answer waits for the index to reflect the log as it
        // is now.
        let size = client.node().map_err(explain)?.tree_size;
        query.push(("min_log_size", size.to_string()));
    }
    let answer: Value = client.get_json(&path, &query).map_err(explain)?;
    println!("{}", serde_json::to_string_pretty(&answer)?);
    Ok(())
}

#[derive(clap::Args)]
pub struct TailArgs {
    /// The node's base URL.
    #[arg(long, env = "VLEDGER_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Start at this entry index; by default only what happens from now on.
    #[arg(long)]
    from: Option<u64>,
    /// Only events that involve this party (public key, standard base64).
    #[arg(long)]
    party: Option<String>,
    /// Only events about this program.
    #[arg(long)]
    program: Option<String>,
    /// Only these event types, e.g. `--type order.placed --type 'claim.*'`.
    #[arg(long = "type")]
    types: Vec<String>,
    /// Stop after this many events.
    #[arg(long)]
    count: Option<usize>,
    /// Print each event as one line of JSON.
    #[arg(long)]
    json: bool,
}

pub fn tail(args: TailArgs) -> Result<()> {
    let client = Client::new(&args.url);
    let from = match args.from {
        Some(from) => from,
        None => client.node().map_err(explain)?.tree_size,
    };
    let party = args
        .party
        .as_deref()
        .map(PublicKey::from_base64)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--party: {e}"))?;
    let stream = client.events(EventsRequest {
        from: Some(from),
        party,
        program: args.program.clone(),
        types: args.types.clone(),
    });
    for (n, event) in stream.enumerate() {
        let event = event.map_err(explain).context("the event stream ended")?;
        if args.json {
            println!("{}", serde_json::to_string(&event.data)?);
        } else {
            println!(
                "#{:<8} {:<28} by {}… {}",
                event.id,
                event.event_type,
                &event.data.signer[..8.min(event.data.signer.len())],
                summary(&event.data.event)
            );
        }
        if args.count.is_some_and(|c| n + 1 >= c) {
            break;
        }
    }
    Ok(())
}

/// The event's fields in one line, without its type.
fn summary(event: &Value) -> String {
    let Some(fields) = event.as_object() else {
        return event.to_string();
    };
    fields
        .iter()
        .filter(|(name, _)| name.as_str() != "type")
        .map(|(name, value)| match value {
            Value::String(s) => format!("{name}={s}"),
            other => format!("{name}={other}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}
