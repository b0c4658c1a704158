//! A blocking reader of `GET /v1/events` that reconnects by itself with `Last-Event-ID`, so the
//! caller sees every event once and in order across dropped connections.

use std::io::{BufRead, BufReader};
use std::time::Duration;

use vledger_tlog::keys::PublicKey;
use vledger_wire::http::StreamedEvent;

use crate::{problem_of, ClientError};

/// What to subscribe to.
#[derive(Debug, Clone, Default)]
pub struct EventsRequest {
    /// First entry index (default 0); ignored once an event was received.
    pub from: Option<u64>,
    /// Only events that involve this party.
    pub party: Option<PublicKey>,
    /// Only events about this program.
    pub program: Option<String>,
    /// Only these event types (`order.*` for a family).
    pub types: Vec<String>,
}

/// One event as received.
#[derive(Debug, Clone)]
pub struct ReceivedEvent {
    /// `<index>.<position>`: pass it as `Last-Event-ID` to resume after it.
    pub id: String,
    pub event_type: String,
    pub data: StreamedEvent,
}

use vledger_domain::limits::MAX_RECONNECTS;

/// An endless iterator of events; it ends only after repeated failures to reconnect.
pub struct EventStream {
    base: String,
    request: EventsRequest,
    http: reqwest::blocking::Client,
    reader: Option<BufReader<reqwest::blocking::Response>>,
    last_id: Option<String>,
    failures: u32,
}

impl EventStream {
    pub(crate) fn new(base: String, request: EventsRequest) -> Self {
        Self {
            base,
            request,
            // No overall timeout: the stream is meant to stay open.
            http: reqwest::blocking::Client::builder()
                .timeout(None)
                .connect_timeout(Duration::from_secs(10))
                .build()
                .expect("an HTTP client builds"),
            reader: None,
            last_id: None,
            failures: 0,
        }
    }

    /// The id of the last event delivered.
    pub fn last_event_id(&self) -> Option<&str> {
        self.last_id.as_deref()
    }

    /// Drops the connection; the next call reconnects and resumes after the last event.
    pub fn disconnect(&mut self) {
        self.reader = None;
    }

    fn connect(&mut self) -> Result<(), ClientError> {
        let url = format!("{}/v1/events", self.base);
        let mut query: Vec<(&str, String)> = Vec::new();
        if let Some(from) = self.request.from {
            query.push(("from", from.to_string()));
        }
        if let Some(party) = &self.request.party {
            query.push(("party", party.to_base64()));
        }
        if let Some(program) = &self.request.program {
            query.push(("program", program.clone()));
        }
        if !self.request.types.is_empty() {
            query.push(("type", self.request.types.join(",")));
        }
        let mut call = self
            .http
            .get(&url)
            .query(&query)
            .header("accept", "text/event-stream");
        if let Some(id) = &self.last_id {
            call = call.header("last-event-id", id);
        }
        let response = call.send().map_err(|source| ClientError::Unreachable {
            url: url.clone(),
            source,
        })?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().unwrap_or_default();
            return Err(problem_of(&url, status.as_u16(), &text));
        }
        self.reader = Some(BufReader::new(response));
        Ok(())
    }

    /// Reads one event from the open connection; `Ok(None)` when the connection ended.
    fn read_event(&mut self) -> Result<Option<ReceivedEvent>, ClientError> {
        let reader = self.reader.as_mut().expect("connected");
        let (mut id, mut event_type, mut data) = (None, String::new(), String::new());
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return Ok(None),
                Ok(_) => {}
            }
            let line = line.trim_end_matches(['\r', '\n']);
            if line.is_empty() {
                if data.is_empty() {
                    continue;
                }
                let data: StreamedEvent =
                    serde_json::from_str(&data).map_err(|e| ClientError::Unexpected {
                        url: format!("{}/v1/events", self.base),
                        reason: format!("an event's data does not decode: {e}"),
                    })?;
                let id = id.unwrap_or_else(|| format!("{}.{}", data.index, data.position));
                return Ok(Some(ReceivedEvent {
                    id,
                    event_type,
                    data,
                }));
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "id" => id = Some(value.to_string()),
                "event" => event_type = value.to_string(),
                "data" => {
                    if !data.is_empty() {
                        data.push('\n');
                    }
                    data.push_str(value);
                }
                _ => {}
            }
        }
    }
}

impl Iterator for EventStream {
    type Item = Result<ReceivedEvent, ClientError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.reader.is_none() {
                if let Err(e) = self.connect() {
                    self.failures += 1;
                    if self.failures >= MAX_RECONNECTS || matches!(e, ClientError::Problem(_)) {
                        return Some(Err(e));
                    }
                    std::thread::sleep(Duration::from_millis(200 << self.failures));
                    continue;
                }
            }
            match self.read_event() {
                Ok(Some(event)) => {
                    self.failures = 0;
                    self.last_id = Some(event.id.clone());
                    return Some(Ok(event));
                }
                Ok(None) => self.reader = None,
                Err(e) => return Some(Err(e)),
            }
        }
    }
}
