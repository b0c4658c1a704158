//! Every error the node sends is an RFC 9457 problem document with a stable type, whichever layer
//! answers: the handlers, axum's extractors and router, the request timeout.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::fresh_key;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vledger_wire::http::Problem;

/// Checks that `response` is a problem document of `status` and `code`, and returns it.
async fn expect_problem(response: reqwest::Response, status: u16, code: &str) -> Problem {
    let what = format!("{} {}", response.url(), response.status());
    assert_eq!(response.status().as_u16(), status, "{what}");
    assert_eq!(
        response.headers()[reqwest::header::CONTENT_TYPE],
        "application/problem+json",
        "{what}"
    );
    let problem: Problem = response.json().await.unwrap();
    assert_eq!(
        (problem.problem_type.as_str(), problem.code.as_str()),
        (format!("urn:vledger:problem:{code}").as_str(), code),
        "{what}: {problem:?}"
    );
    assert_eq!(problem.status, status, "{what}");
    assert!(!problem.detail.is_empty(), "{what}");
    problem
}

#[tokio::test]
async fn undecodable_paths_wrong_methods_unknown_paths_and_big_bodies_answer_problems() {
    let served = common::serve_node(&fresh_key()).await;
    let client = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", served.base);

    // A path segment that is not UTF-8 once percent-decoded: axum's path extractor refuses it.
    for path in [
        "/v1/entries/%ff",
        "/v1/vouchers/%ff",
        "/v1/programs/%ff",
        "/v1/orders/%ff%fe",
        "/v1/claims/%ff",
        "/v1/parties/%ff",
        "/v1/catalog/listings/%ff",
        "/v1/catalog/demands/%ff",
        "/v1/catalog/demands/%ff/matches",
    ] {
        let response = client.get(url(path)).send().await.unwrap();
        expect_problem(response, 400, "invalid-path").await;
    }

    // A route that exists, with a method it does not have: the router's own 405.
    let response = client.get(url("/v1/commands")).send().await.unwrap();
    assert_eq!(response.headers()[reqwest::header::ALLOW], "POST");
    expect_problem(response, 405, "method-not-allowed").await;
    let response = client.delete(url("/v1/entries/0")).send().await.unwrap();
    assert!(response.headers().contains_key(reqwest::header::ALLOW));
    expect_problem(response, 405, "method-not-allowed").await;
    let response = client.post(url("/healthz")).send().await.unwrap();
    expect_problem(response, 405, "method-not-allowed").await;

    for path in [
        "/v1/nope",
        "/",
        "/v1/entries/",
        "/v1/catalog/demands/d1/nope",
    ] {
        let response = client.get(url(path)).send().await.unwrap();
        expect_problem(response, 404, "not-found").await;
    }

    let response = client
        .get(url("/v1/entries?start=-1&end=2"))
        .send()
        .await
        .unwrap();
    expect_problem(response, 400, "invalid-query").await;

    let oversized = vec![b'{'; vledger_domain::limits::MAX_ENVELOPE_BYTES + 1];
    let response = client
        .post(url("/v1/commands"))
        .body(oversized)
        .send()
        .await
        .unwrap();
    expect_problem(response, 413, "body-too-large").await;
}

/// Sends `head` on a new connection to `address`, then nothing more, and returns what comes back
/// until the connection closes or `wait` passes.
async fn send_and_wait(address: std::net::SocketAddr, head: &str, wait: Duration) -> String {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Err(_) => break,
            Ok(Ok(n)) => answer.extend_from_slice(&buffer[..n]),
            Ok(Err(e)) => panic!("reading the answer: {e}"),
        }
        let text = String::from_utf8_lossy(&answer);
        if let Some((headers, body)) = text.split_once("\r\n\r\n") {
            let length = headers
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(str::to_string)
                })
                .and_then(|n| n.trim().parse::<usize>().ok());
            if length.is_some_and(|n| body.len() >= n) {
                break;
            }
        }
    }
    String::from_utf8(answer).unwrap()
}

#[tokio::test]
async fn a_request_that_outlasts_the_request_timeout_is_answered_with_a_problem() {
    let (node, _dir) = common::open_node(&fresh_key());
    let app =
        vledger_api::router_with_request_timeout(Arc::clone(&node), Duration::from_millis(300));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    // A command whose body never comes: the handler waits for it until the timeout answers.
    let answer = send_and_wait(
        address,
        "POST /v1/commands HTTP/1.1\r\nhost: node\r\ncontent-length: 100\r\n\r\n{",
        Duration::from_secs(10),
    )
    .await;
    let (head, body) = answer.split_once("\r\n\r\n").expect("an answer");
    assert!(head.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/problem+json"),
        "{answer}"
    );
    let problem: Problem = serde_json::from_str(body).expect(body);
    assert_eq!(problem.problem_type, "urn:vledger:problem:request-timeout");
    assert_eq!(problem.status, 408);
}
