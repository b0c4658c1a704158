//! The HTTP phases (`http`, `http-half`): clients on loopback, each on one hyper HTTP/1.1
//! connection sending one command at a time, into a node served in process or a running node
//! (`--target`, set up first under ids and nonces of the run).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde_json::Value;
use vledger_domain::types::RegionId;
use vledger_tlog::keys::SigningKey;

use super::measure::{error_kind, Latencies, PhaseResult, ProcessMemory, WriterDelta};
use super::mix::{Fixture, Mix};
use super::report::count;
use super::LoadArgs;

/// What one HTTP client saw.
#[derive(Default)]
struct ClientLog {
    sent: usize,
    accepted: usize,
    errors: BTreeMap<String, usize>,
    last_answer: Option<Instant>,
}

/// Serves a fresh node on 127.0.0.1:0 and drives the commands into it with `--clients`
/// concurrent clients, each sending one command at a time and waiting for its answer. With a
/// `rate` (commands per second), command `i` is due at `i / rate` seconds: a client waits until
/// then to send it, and its latency counts from that moment even if the client was late.
pub(crate) fn run(
    args: &LoadArgs,
    fixture: &Fixture,
    mix: &Mix,
    parent: &Path,
    envelopes: Arc<Vec<Vec<u8>>>,
    rate: Option<f64>,
) -> Result<PhaseResult> {
    let (name, mut label) = match rate {
        None => ("http", format!("HTTP, {} clients", args.clients)),
        Some(rate) => (
            "http-half",
            format!("HTTP at half: {}/s, {} clients", count(rate), args.clients),
        ),
    };
    // A fresh node served in process, or none: the target was set up before the phases.
    let local = match &args.target {
        None => Some(fixture.open_node(parent, mix, args.max_batch)?),
        Some(target) => {
            label.push_str(&format!(" to {target}"));
            None
        }
    };
    eprintln!("{label}: {} commands ...", envelopes.len());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let clients = args.clients.max(1);
    let max_seconds = Duration::from_secs(args.max_seconds);
    runtime.block_on(async move {
        let (url, served) = match (&local, &args.target) {
            (Some((node, _, _)), _) => {
                let listener = vledger_api::listen("127.0.0.1:0")
                    .await
                    .context("cannot listen on 127.0.0.1")?;
                let url = format!("http://{}/v1/commands", listener.local_addr()?);
                let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
                let server =
                    tokio::spawn(vledger_api::serve(listener, Arc::clone(node), async move {
                        let _ = stopped.await;
                    }));
                (url, Some((node, stop, server)))
            }
            (None, Some(target)) => (commands_url(target), None),
            (None, None) => unreachable!("a node is opened when there is no target"),
        };
        let target = Arc::new(PostTarget::parse(&url)?);
        let next = Arc::new(AtomicUsize::new(0));
        // One histogram for all clients, made before the clock starts: one per client would
        // be a quarter of a megabyte each, zeroed on the shared cores while the phase runs.
        let latencies = Arc::new(std::sync::Mutex::new(Latencies::new()));
        let before = served.as_ref().map(|(node, _, _)| WriterDelta::read(node));
        let started = Instant::now();
        let tasks: Vec<_> = (0..clients)
            .map(|_| {
                let (target, next, envelopes) = (target.clone(), next.clone(), envelopes.clone());
                let latencies = latencies.clone();
                tokio::spawn(async move {
                    let mut log = ClientLog::default();
                    let mut connection = None;
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= envelopes.len() || started.elapsed() >= max_seconds {
                            break;
                        }
                        log.sent += 1;
                        let taken = match rate {
                            None => Instant::now(),
                            Some(rate) => {
                                let due = started + Duration::from_secs_f64(i as f64 / rate);
                                let before = Instant::now();
                                if before < due {
                                    tokio::time::sleep_until(due.into()).await;
                                }
                                scheduled_start(due, before, Instant::now())
                            }
                        };
                        let body = Bytes::copy_from_slice(&envelopes[i]);
                        let outcome = target.post(&mut connection, body).await;
                        let latency_ns = taken.elapsed().as_nanos() as u64;
                        latencies.lock().expect("latencies lock").record(latency_ns);
                        log.last_answer = Some(Instant::now());
                        match outcome {
                            Ok(()) => log.accepted += 1,
                            Err(kind) => *log.errors.entry(kind).or_insert(0) += 1,
                        }
                    }
                    log
                })
            })
            .collect();
        let (mut sent, mut accepted, mut errors) = (0, 0, BTreeMap::new());
        let mut last_answer = started;
        for task in tasks {
            let log = task.await.context("client task")?;
            sent += log.sent;
            accepted += log.accepted;
            for (kind, n) in log.errors {
                *errors.entry(kind).or_insert(0) += n;
            }
            last_answer = last_answer.max(log.last_answer.unwrap_or(started));
        }
        // Every client has ended, and with it its share of the histogram.
        let latencies = Arc::try_unwrap(latencies)
            .map_err(|_| anyhow::anyhow!("a client outlived the phase"))?
            .into_inner()
            .expect("latencies lock");
        let mut result = PhaseResult {
            name,
            label,
            sent,
            accepted,
            errors,
            elapsed: last_answer - started,
            latencies,
            writer: None,
            memory: None,
        };
        if let (Some((node, stop, server)), Some(before)) = (served, before) {
            result.writer = Some(WriterDelta::read(node).since(before));
            result.memory = ProcessMemory::read();
            let _ = stop.send(());
            server
                .await
                .context("server task")?
                .context("the server failed")?;
        }
        Ok::<_, anyhow::Error>(result)
    })
}

/// How late tokio's timer may wake a sleeping task: it keeps time in whole milliseconds.
const TIMER_RESOLUTION: Duration = Duration::from_millis(1);

/// When a command sent on a fixed schedule counts as sent, for its latency: `due` if its client
/// was already behind schedule at `before` (an earlier answer was slow, and that wait counts);
/// otherwise when the client woke from its sleep until `due`, less any lateness beyond the
/// timer's resolution (up to a millisecond late is the load generator's own timer, not the
/// node; later than that, the cores were busy and it counts).
fn scheduled_start(due: Instant, before: Instant, woke: Instant) -> Instant {
    if before >= due {
        due
    } else {
        woke.clamp(due, due + TIMER_RESOLUTION)
    }
}

/// Where the http phase posts commands. Each client keeps one HTTP/1.1 connection
/// (hyper's, without a pool or redirects: the load generator shares the node's cores).
struct PostTarget {
    /// `host:port`, to connect to and for the `Host` header.
    address: String,
    path: String,
}

/// A client's connection: requests go out one at a time, each after the last answer.
type Connection = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

impl PostTarget {
    pub(crate) fn parse(url: &str) -> Result<Self> {
        let parsed: reqwest::Url = url.parse().context("the node's address")?;
        if parsed.scheme() != "http" {
            bail!("{url}: the load generator speaks plain http:// only");
        }
        let host = parsed
            .host_str()
            .context("the node's address has no host")?;
        let port = parsed.port_or_known_default().unwrap_or(80);
        Ok(Self {
            address: format!("{host}:{port}"),
            path: parsed.path().to_string(),
        })
    }

    async fn connect(&self) -> Result<Connection, String> {
        let stream = tokio::net::TcpStream::connect(&self.address)
            .await
            .map_err(|e| error_kind(&format!("connecting: {e}")))?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| error_kind(&format!("connecting: {e}")))?;
        // Drives the connection until the sender is dropped or the server closes it.
        tokio::spawn(connection);
        Ok(sender)
    }

    /// Posts one envelope on the client's connection (opened again after an error) and
    /// classifies the answer: accepted (201), or the problem or error that refused it.
    async fn post(&self, connection: &mut Option<Connection>, body: Bytes) -> Result<(), String> {
        let sender = match connection {
            Some(sender) if !sender.is_closed() => sender,
            _ => connection.insert(self.connect().await?),
        };
        let request = hyper::Request::post(self.path.as_str())
            .header(hyper::header::HOST, self.address.as_str())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .expect("a valid request");
        let answer = async {
            sender.ready().await?;
            let response = sender.send_request(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>((status, body))
        }
        .await;
        match answer {
            Ok((status, _)) if status == hyper::StatusCode::CREATED => Ok(()),
            Ok((status, body)) => Err(problem_kind(status, &body)),
            Err(e) => {
                *connection = None;
                Err(error_kind(&format!("request: {e}")))
            }
        }
    }
}

/// The command endpoint of a node's base URL.
fn commands_url(base: &str) -> String {
    format!("{}/v1/commands", base.trim_end_matches('/'))
}

/// For `--target`: the running node's region, and the bench's set-up submitted there, one
/// command at a time, each required to be accepted.
pub(crate) fn set_up_target(target: &str, admin_key: &Path, mix: &Mix) -> Result<Fixture> {
    let pem = std::fs::read_to_string(admin_key)
        .with_context(|| format!("--admin-key: cannot read {}", admin_key.display()))?;
    let admin = SigningKey::from_pkcs8_pem(&pem)
        .map_err(|e| anyhow::anyhow!("--admin-key {}: {e}", admin_key.display()))?;
    let client = reqwest::blocking::Client::new();
    let base = target.trim_end_matches('/');
    let node: Value = client
        .get(format!("{base}/v1/node"))
        .send()
        .and_then(|r| r.error_for_status())
        .and_then(|r| r.json())
        .with_context(|| format!("--target: cannot read {base}/v1/node"))?;
    let region = node["region"]
        .as_str()
        .and_then(|r| RegionId::try_from(r).ok())
        .with_context(|| format!("--target: {base}/v1/node names no region"))?;
    let fixture = Fixture::for_target(region, admin);
    for &(kind, _) in &mix.weights {
        for raw in kind.setup(&fixture) {
            let response = client
                .post(commands_url(base))
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(raw)
                .send()
                .with_context(|| format!("--target: cannot send to {base}"))?;
            let status = response.status();
            if status != reqwest::StatusCode::CREATED {
                let body = response.text().unwrap_or_default();
                bail!(
                    "--target: a set-up command of {} was refused ({status}): {body}",
                    kind.name()
                );
            }
        }
    }
    Ok(fixture)
}

/// The problem code of a refused command's answer, with its status.
fn problem_kind(status: hyper::StatusCode, body: &[u8]) -> String {
    let code = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|p| p["code"].as_str().map(str::to_string))
        .unwrap_or_default();
    error_kind(&format!("HTTP {} {code}", status.as_u16()))
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;
    use axum::routing::post;

    use super::*;

    #[test]
    fn a_scheduled_command_counts_from_when_it_was_due_or_sent() {
        let due = Instant::now() + Duration::from_secs(10);
        let ms = Duration::from_millis;
        // Behind schedule: the wait for earlier answers counts, however late the send.
        assert_eq!(scheduled_start(due, due, due + ms(40)), due);
        assert_eq!(scheduled_start(due, due + ms(3), due + ms(40)), due);
        // Idle until due, woken within the timer's resolution: counts from the wake-up.
        assert_eq!(scheduled_start(due, due - ms(5), due), due);
        assert_eq!(scheduled_start(due, due - ms(5), due + ms(1)), due + ms(1));
        // Woken later than that: the lateness beyond the resolution counts.
        assert_eq!(scheduled_start(due, due - ms(5), due + ms(7)), due + ms(1));
    }

    /// A server that accepts a body `ok`, refuses anything else with a problem document, and
    /// closes the connection after every answer.
    async fn serve_answers() -> String {
        let app = axum::Router::new().route(
            "/v1/commands",
            post(|body: Bytes| async move {
                let close = [(axum::http::header::CONNECTION, "close")];
                if &body[..] == b"ok" {
                    (StatusCode::CREATED, close, String::new())
                } else {
                    let problem = r#"{"code":"invalid-envelope"}"#.to_string();
                    (StatusCode::BAD_REQUEST, close, problem)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    #[tokio::test]
    async fn each_answer_is_classified_and_a_closed_connection_is_opened_again() {
        let target = PostTarget::parse(&commands_url(&serve_answers().await)).unwrap();
        let mut connection = None;
        for _ in 0..3 {
            assert_eq!(
                target.post(&mut connection, Bytes::from("ok")).await,
                Ok(())
            );
            let refused = target.post(&mut connection, Bytes::from("no")).await;
            assert_eq!(refused, Err("HTTP 400 invalid-envelope".to_string()));
        }
        let nobody = PostTarget::parse("http://127.0.0.1:1/v1/commands").unwrap();
        let error = nobody.post(&mut None, Bytes::from("ok")).await.unwrap_err();
        assert!(error.starts_with("connecting:"), "{error}");
        assert!(PostTarget::parse("https://node.example/v1/commands").is_err());
    }
}
