//! `GET /v1/events`: the log's events as Server-Sent Events, from a given index (catch up), then
//! live as batches commit — the "signal subscription" that lets an agency's system hear of new
//! orders without polling.
//!
//! Every event has the id `<entry index>.<position in the entry>`; a client that reconnects with
//! `Last-Event-ID` resumes right after the last event it received, so across reconnects it sees
//! every event exactly once and in log order. Filters (party, program, event type) only leave
//! events out; they never change the order.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use futures_util::Stream;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use utoipa::IntoParams;
use vledger_domain::orders::load_order;
use vledger_domain::vouchers::load_voucher;
use vledger_tlog::keys::PublicKey;
use vledger_wire::entry::Entry;
use vledger_wire::envelope::DsseEnvelope;

use crate::params::KeyFilter;
use vledger_domain::limits::MAX_ENTRIES_PAGE;
use vledger_domain::types::RecordId;
use vledger_node::node::Node;

use super::{AppState, Problem, ProblemQuery};
pub use vledger_wire::http::StreamedEvent;

/// Events buffered per subscriber before the reader waits for the client.
const SUBSCRIBER_BUFFER: usize = 256;

pub use vledger_domain::limits::MAX_TYPE_FILTER_BYTES;

/// Where a subscription starts and what it keeps.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct EventsQuery {
    /// The first entry index to stream (default 0: the whole log, then live). Ignored when the
    /// request carries `Last-Event-ID`.
    #[serde(default, deserialize_with = "crate::params::opt_int64")]
    from: Option<u64>,
    /// Only events that involve this party (standard base64 key): as signer, as a key named in
    /// the event, or as the enterprise or agency of the order (or holder of the voucher) the
    /// event is about.
    #[param(value_type = Option<PublicKey>)]
    party: Option<KeyFilter>,
    /// Only events about this program, directly or through the order or voucher they name.
    program: Option<RecordId>,
    /// Only these event types, comma-separated; `order.*` takes every `order.` event.
    #[serde(rename = "type")]
    #[param(
        rename = "type",
        pattern = r"^[a-z0-9_.*]+(,[a-z0-9_.*]+)*$",
        max_length = 1024
    )]
    types: Option<String>,
}

/// A position in the event stream: just after event `position` of entry `index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Resume {
    index: u64,
    /// Events of `index` at or below this position were already delivered.
    after_position: Option<u32>,
}

/// The pattern the document gives `Last-Event-ID`: an index of at most 19 digits (always a
/// u64) and a position of at most 9 (always a u32; an entry holds far fewer events).
pub(crate) const LAST_EVENT_ID_PATTERN: &str = r"^[0-9]{1,19}\.[0-9]{1,9}$";

/// Parses `Last-Event-ID` exactly as [`LAST_EVENT_ID_PATTERN`] says.
fn parse_last_event_id(text: &str) -> Option<Resume> {
    let (index, position) = text.split_once('.')?;
    let digits =
        |s: &str, max: usize| (1..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(index, 19) || !digits(position, 9) {
        return None;
    }
    Some(Resume {
        index: index.parse().ok()?,
        after_position: Some(position.parse().ok()?),
    })
}

/// The event types a subscriber asked for.
struct TypeFilter(Vec<String>);

impl TypeFilter {
    /// Parses the `type` parameter as the document's pattern says: names of lower-case letters,
    /// digits, `_`, `.` and `*`, separated by single commas, at most [`MAX_TYPE_FILTER_BYTES`].
    fn parse(text: &str) -> Result<Self, Problem> {
        let types: Vec<String> = text.split(',').map(str::to_string).collect();
        let well_formed = text.len() <= MAX_TYPE_FILTER_BYTES
            && types.iter().all(|t| {
                !t.is_empty()
                    && t.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.*".contains(&b)
                    })
            });
        if !well_formed {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid-query",
                format!(
                    "type must name event types separated by commas, e.g. `order.placed` or \
                     `order.*,claim.paid`, at most {MAX_TYPE_FILTER_BYTES} bytes"
                ),
            ));
        }
        Ok(Self(types))
    }
    fn accepts(&self, event_type: &str) -> bool {
        self.0.iter().any(|t| match t.strip_suffix('*') {
            Some(prefix) => event_type.starts_with(prefix),
            None => t == event_type,
        })
    }
}

/// What one subscription keeps.
struct Filter {
    party: Option<String>,
    program: Option<String>,
    types: Option<TypeFilter>,
}

impl Filter {
    fn is_empty(&self) -> bool {
        self.party.is_none() && self.program.is_none() && self.types.is_none()
    }
}

/// Subscribe to the log's events (Server-Sent Events).
///
/// Each message has `id: <index>.<position>`, `event: <event type>` and a JSON `data`
/// ([`StreamedEvent`]). The stream first sends every matching event from `from` (or after
/// `Last-Event-ID`), then each new one as its batch commits; a comment line keeps idle
/// connections open. The node streams to a bounded number of subscribers at once.
#[utoipa::path(get, path = "/v1/events", tag = "log", params(EventsQuery,
        ("Last-Event-ID" = Option<String>, Header, nullable = false, pattern = r"^([0-9]{1,19}\.[0-9]{1,9})?$", description = "Resume after this event id, `<index>.<position>`; empty is the same as absent (what an EventSource sends once its last event id is reset)")),
    responses(
        (status = 200, description = "An endless `text/event-stream`: each message has an `id`, an `event` (the event's type) and a `data` that is a StreamedEvent in JSON", content_type = "text/event-stream", body = String),
        (status = 400, description = "A filter or the Last-Event-ID is not valid", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "As many streams are open as the node serves at once (`too-many-subscribers`); retry after `Retry-After` seconds", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn get_events(
    State(state): State<AppState>,
    headers: HeaderMap,
    ProblemQuery(q): ProblemQuery<EventsQuery>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, Problem> {
    // An empty Last-Event-ID is what an EventSource sends after its id was reset: no id.
    let last_event_id = headers
        .get("last-event-id")
        .filter(|value| !value.is_empty());
    let resume = match last_event_id {
        Some(value) => value
            .to_str()
            .ok()
            .and_then(parse_last_event_id)
            .ok_or_else(|| {
                Problem::new(
                    StatusCode::BAD_REQUEST,
                    "invalid-last-event-id",
                    "Last-Event-ID must be an event id this stream sent, `<index>.<position>`",
                )
            })?,
        None => Resume {
            index: q.from.unwrap_or(0),
            after_position: None,
        },
    };
    let filter = Filter {
        // A well-formed key that is no party's matches no event: its text is no event's key.
        party: q.party.map(|k| k.as_str().to_string()),
        program: q.program.map(|p| p.to_string()),
        types: q.types.as_deref().map(TypeFilter::parse).transpose()?,
    };
    // Held by the stream's task: released when the client goes away.
    let subscriber = state.subscribers.clone().try_acquire_owned().map_err(|_| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too-many-subscribers",
            format!(
                "the node streams events to at most {} subscribers at once; retry later",
                state.max_event_subscribers
            ),
        )
    })?;
    let (tx, rx) = mpsc::channel(SUBSCRIBER_BUFFER);
    let node = state.node.clone();
    let commits = state.commits.clone();
    tokio::spawn(async move {
        stream_events(node, commits, resume, filter, tx).await;
        drop(subscriber);
    });
    Ok(Sse::new(ReceiverStream::new(rx)).keep_alive(KeepAlive::default()))
}

/// Reads entries from `resume` on, sends the matching events, then waits for commits; ends when
/// the client goes away.
async fn stream_events(
    node: Arc<Node>,
    mut commits: watch::Receiver<u64>,
    resume: Resume,
    filter: Filter,
    tx: mpsc::Sender<Result<SseEvent, Infallible>>,
) {
    let mut next = resume.index;
    let mut skip_through = resume.after_position;
    loop {
        let size = node.tree_size();
        if next >= size {
            tokio::select! {
                changed = commits.changed() => if changed.is_err() { return },
                _ = tx.closed() => return,
            }
            continue;
        }
        let end = size.min(next.saturating_add(MAX_ENTRIES_PAGE));
        let reader = node.clone();
        let rows = match tokio::task::spawn_blocking(move || reader.entries(next, end)).await {
            Ok(Ok(rows)) => rows,
            _ => return,
        };
        for (index, bytes) in rows {
            let after = skip_through.take();
            let Some(events) = decode_events(&node, index, &bytes, after, &filter) else {
                return;
            };
            for event in events {
                if tx.send(Ok(event)).await.is_err() {
                    return;
                }
            }
        }
        next = end;
    }
}

/// The matching SSE events of one entry, skipping positions up to `after`. `None` when the
/// entry cannot be decoded (the store is damaged: the stream ends rather than skip).
fn decode_events(
    node: &Node,
    index: u64,
    bytes: &[u8],
    after: Option<u32>,
    filter: &Filter,
) -> Option<Vec<SseEvent>> {
    let entry = Entry::decode(bytes).ok()?;
    let envelope: DsseEnvelope = serde_json::from_slice(&entry.envelope).ok()?;
    let payload: Value = serde_json::from_slice(&B64.decode(&envelope.payload).ok()?).ok()?;
    let events: Vec<Value> = serde_json::from_slice(&entry.events).ok()?;
    let command_type = payload["type"].as_str()?.to_string();
    let signer = payload["signer"].as_str()?.to_string();
    let mut out = Vec::new();
    for (position, event) in events.into_iter().enumerate() {
        let position = position as u32;
        if after.is_some_and(|a| position <= a) {
            continue;
        }
        let event_type = event["type"].as_str().unwrap_or_default().to_string();
        if !matches(node, filter, &signer, &event_type, &event) {
            continue;
        }
        let data = StreamedEvent {
            index,
            position,
            node_time_ms: entry.node_time_ms,
            command_type: command_type.clone(),
            signer: signer.clone(),
            event,
        };
        let json = serde_json::to_string(&data).ok()?;
        out.push(
            SseEvent::default()
                .id(format!("{index}.{position}"))
                .event(event_type)
                .data(json),
        );
    }
    Some(out)
}

fn matches(node: &Node, filter: &Filter, signer: &str, event_type: &str, event: &Value) -> bool {
    if filter.is_empty() {
        return true;
    }
    if let Some(types) = &filter.types {
        if !types.accepts(event_type) {
            return false;
        }
    }
    let subject = if filter.party.is_some() || filter.program.is_some() {
        Subject::of(node, event)
    } else {
        Subject::default()
    };
    if let Some(party) = &filter.party {
        let named = signer == party
            || contains_string(event, party)
            || subject.parties.iter().any(|p| p == party);
        if !named {
            return false;
        }
    }
    if let Some(program) = &filter.program {
        let named = field_equals(event, "program_id", program)
            || subject.program.as_deref() == Some(program.as_str());
        if !named {
            return false;
        }
    }
    true
}

/// The parties and program of the order or voucher an event names, from the projections (these
/// never change once the order or voucher exists).
#[derive(Default)]
struct Subject {
    parties: Vec<String>,
    program: Option<String>,
}

impl Subject {
    fn of(node: &Node, event: &Value) -> Self {
        let id = |field: &str| {
            event[field]
                .as_str()
                .and_then(|s| RecordId::try_from(s.to_string()).ok())
        };
        if let Some(order_id) = id("order_id") {
            if let Ok(Some(order)) = load_order(&node.state(), &order_id) {
                return Self {
                    parties: vec![order.enterprise.to_base64(), order.agency.to_base64()],
                    program: Some(order.program_id.to_string()),
                };
            }
        }
        if let Some(voucher_id) = id("voucher_id") {
            if let Ok(Some(voucher)) = load_voucher(&node.state(), &voucher_id) {
                return Self {
                    parties: vec![voucher.holder.to_base64()],
                    program: Some(voucher.program_id.to_string()),
                };
            }
        }
        Self::default()
    }
}

fn contains_string(value: &Value, wanted: &str) -> bool {
    match value {
        Value::String(s) => s == wanted,
        Value::Array(items) => items.iter().any(|v| contains_string(v, wanted)),
        Value::Object(fields) => fields.values().any(|v| contains_string(v, wanted)),
        _ => false,
    }
}

fn field_equals(value: &Value, field: &str, wanted: &str) -> bool {
    match value {
        Value::Array(items) => items.iter().any(|v| field_equals(v, field, wanted)),
        Value::Object(fields) => fields.iter().any(|(name, v)| {
            (name == field && v.as_str() == Some(wanted)) || field_equals(v, field, wanted)
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_event_id_names_an_entry_and_a_position() {
        assert_eq!(
            parse_last_event_id("41.2"),
            Some(Resume {
                index: 41,
                after_position: Some(2)
            })
        );
        assert_eq!(parse_last_event_id("41"), None);
        assert_eq!(parse_last_event_id("a.b"), None);
        assert_eq!(parse_last_event_id("-1.0"), None);
        // Exactly the document's pattern: no blanks or signs, at most 19 and 9 digits.
        for bad in [
            " 1.2",
            "1.2 ",
            "+1.2",
            "1.1234567890",
            "12345678901234567890.0",
        ] {
            assert_eq!(parse_last_event_id(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn type_filter_takes_exact_names_and_prefixes() {
        let f = TypeFilter::parse("order.*,claim.paid").unwrap();
        assert!(f.accepts("order.placed"));
        assert!(f.accepts("claim.paid"));
        assert!(!f.accepts("claim.submitted"));
        assert!(!f.accepts("voucher.issued"));
        // Exactly the document's pattern: no blanks, no empty names, nothing but [a-z0-9_.*].
        for bad in [
            " , ",
            "order.*, claim.paid",
            "",
            ",",
            "order.placed,",
            "Order.placed",
        ] {
            assert!(TypeFilter::parse(bad).is_err(), "{bad:?}");
        }
        assert!(TypeFilter::parse(&"a".repeat(MAX_TYPE_FILTER_BYTES + 1)).is_err());
    }

    #[test]
    fn program_field_is_found_at_any_depth() {
        let event = serde_json::json!({"type": "program.created", "terms": {"program_id": "p1"}});
        assert!(field_equals(&event, "program_id", "p1"));
        assert!(!field_equals(&event, "program_id", "p2"));
        assert!(!contains_string(&event, "p2"));
        assert!(contains_string(&event, "p1"));
    }
}
