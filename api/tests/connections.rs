//! The bounds on connections, over real sockets: slow headers and idle connections are closed
//! after their timeouts, connections over the bound and event subscribers over theirs are
//! answered 503 problem+json, and the node goes on answering once they are gone.

mod common;

use std::time::{Duration, Instant};

use common::{fresh_key, serve_node_with, Served};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vledger_api::ConnectionLimits;

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: node\r\n\r\n";

async fn node(limits: ConnectionLimits) -> Served {
    serve_node_with(&fresh_key(), limits).await
}

async fn connect(served: &Served) -> TcpStream {
    TcpStream::connect(served.base.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// One answer read from `stream`: its head and its body (by `Content-Length`).
async fn read_answer(stream: &mut TcpStream) -> (String, String) {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&bytes[..end]).to_string();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .unwrap_or(0);
            if bytes.len() >= end + 4 + length {
                let body = String::from_utf8_lossy(&bytes[end + 4..end + 4 + length]).to_string();
                return (head, body);
            }
        }
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the connection ended before a whole answer");
        bytes.extend_from_slice(&chunk[..n]);
    }
}

/// Waits until the node closes `stream` (end of stream or reset), at most `within`; how long it
/// took.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut chunk = [0u8; 1024];
    tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return started.elapsed(),
                Ok(_) => {}
            }
        }
    })
    .await
    .ok()
}

fn limits(header_read_ms: u64, idle_ms: u64) -> ConnectionLimits {
    ConnectionLimits {
        header_read_timeout: Duration::from_millis(header_read_ms),
        idle_timeout: Duration::from_millis(idle_ms),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_client_sending_its_headers_byte_by_byte_is_cut_off_after_the_header_timeout() {
    let served = node(limits(400, 10_000)).await;
    let mut stream = connect(&served).await;
    let request = b"GET /healthz HTTP/1.1\r\nHost: node\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let started = Instant::now();
    let mut cut_off = None;
    for byte in request.iter() {
        if stream.write_all(&[*byte]).await.is_err() {
            cut_off = Some(started.elapsed());
            break;
        }
        // A closed connection shows as an end of stream on the next read.
        let mut probe = [0u8; 64];
        match tokio::time::timeout(Duration::from_millis(50), stream.read(&mut probe)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                cut_off = Some(started.elapsed());
                break;
            }
            Ok(Ok(_)) => panic!("the node answered a request whose head never ended"),
            Err(_) => {}
        }
    }
    let cut_off = cut_off.expect("the node kept a connection whose head took 6 s");
    assert!(
        cut_off >= Duration::from_millis(350) && cut_off < Duration::from_millis(2_000),
        "cut off after {cut_off:?}, the header timeout is 400 ms"
    );
    // A client that sends its request at once is served as usual.
    let mut quick = connect(&served).await;
    quick.write_all(HEALTHZ).await.unwrap();
    let (head, _) = read_answer(&mut quick).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_the_idle_timeout_and_not_before() {
    let served = node(limits(5_000, 400)).await;
    let mut stream = connect(&served).await;
    stream.write_all(HEALTHZ).await.unwrap();
    let (head, _) = read_answer(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // A request within the idle timeout keeps the connection (and starts the timeout anew).
    tokio::time::sleep(Duration::from_millis(250)).await;
    stream.write_all(HEALTHZ).await.unwrap();
    let (head, _) = read_answer(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 200"), "kept alive: {head}");
    let closed = closed_within(&mut stream, Duration::from_secs(3))
        .await
        .expect("an idle kept-alive connection stayed open 3 s");
    assert!(
        closed >= Duration::from_millis(350),
        "closed after {closed:?}, before the idle timeout of 400 ms"
    );
    // A connection that never sends anything is closed too.
    let mut silent = connect(&served).await;
    closed_within(&mut silent, Duration::from_secs(3))
        .await
        .expect("a silent connection stayed open 3 s");
}

#[tokio::test]
async fn connections_over_the_bound_are_answered_503_and_closed_and_the_node_recovers() {
    let served = node(ConnectionLimits {
        max_connections: 4,
        ..Default::default()
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut stream = connect(&served).await;
        // An answer shows the node serves (and counts) this connection.
        stream.write_all(HEALTHZ).await.unwrap();
        let (head, _) = read_answer(&mut stream).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        held.push(stream);
    }
    for _ in 0..3 {
        let mut extra = connect(&served).await;
        extra.write_all(HEALTHZ).await.unwrap();
        let (head, body) = read_answer(&mut extra).await;
        assert!(head.starts_with("HTTP/1.1 503"), "{head}");
        let lower = head.to_ascii_lowercase();
        assert!(
            lower.contains("content-type: application/problem+json"),
            "{head}"
        );
        assert!(lower.contains("retry-after: 1"), "{head}");
        let problem: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            problem["type"], "urn:vledger:problem:too-many-connections",
            "{problem}"
        );
        assert!(
            closed_within(&mut extra, Duration::from_secs(2))
                .await
                .is_some(),
            "a refused connection is closed after its answer"
        );
    }
    drop(held);
    // The held connections' slots come back as they close.
    let started = Instant::now();
    loop {
        let mut stream = connect(&served).await;
        stream.write_all(HEALTHZ).await.unwrap();
        let (head, _) = read_answer(&mut stream).await;
        if head.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "still refused 3 s after the held connections closed: {head}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let metrics = reqwest::get(format!("{}/metrics", served.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let refused = metrics
        .lines()
        .find_map(|l| l.strip_prefix("vledger_http_connections_refused_total "))
        .expect("the refused connections are counted");
    assert!(refused.parse::<u64>().unwrap() >= 3, "{refused}");
}

#[tokio::test]
async fn more_event_subscribers_than_the_bound_are_answered_503_problem_json() {
    let served = node(ConnectionLimits {
        max_event_subscribers: 2,
        ..Default::default()
    })
    .await;
    let client = reqwest::Client::new();
    let events = format!("{}/v1/events", served.base);
    let first = client.get(&events).send().await.unwrap();
    let second = client.get(&events).send().await.unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(second.status(), 200);
    let third = client.get(&events).send().await.unwrap();
    assert_eq!(third.status(), 503);
    assert_eq!(third.headers()["content-type"], "application/problem+json");
    assert_eq!(third.headers()["retry-after"], "1");
    let problem: Value = third.json().await.unwrap();
    assert_eq!(
        problem["type"], "urn:vledger:problem:too-many-subscribers",
        "{problem}"
    );
    // A subscriber that goes away frees its place.
    drop(first);
    let started = Instant::now();
    loop {
        let again = client.get(&events).send().await.unwrap();
        if again.status() == 200 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "a freed place stayed taken"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(second);
}
