//! Peers that never present a certificate: counted and summarised per
//! source and interval, never one durable log entry per connection; and
//! unable to hold the node's handshake slots.
//!
//! Each test waits for the node's own counters (what it has seen), never
//! for a length of time, and asserts on behaviour.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use common::*;
use sluis::net::sources::{Source, Unauthenticated};
use sluis::store::LogRow;
use sluis::tlog::{AccessRecord, Decision};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Where the floods in these tests come from: another loopback address, so
/// that the real client (127.0.0.1) is another source.
const FLOOD_SOURCE: &str = "127.0.0.2";

fn total(node: &TestNode) -> u64 {
    Unauthenticated::ALL
        .iter()
        .map(|k| node.node.sources.total(*k))
        .sum()
}

/// Waits until the node has counted `n` connections without a certificate
/// (bounded, so a node that never counts them fails instead of hanging).
async fn counted(node: &TestNode, n: u64) {
    for _ in 0..3000 {
        if total(node) >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the node counted {} of {n} connections", total(node));
}

/// The summary records, decoded.
async fn summaries(node: &TestNode) -> Vec<AccessRecord> {
    node.log()
        .await
        .iter()
        .filter(|r: &&LogRow| r.method == "tls.unauthenticated")
        .map(|r| AccessRecord::decode(&r.record).unwrap())
        .collect()
}

/// The issue's example: 1,000 × (connect, send the byte `x`, close). Before,
/// each became a durable, checkpointed access record; now the node counts
/// them and writes one record for the source when the interval ends.
#[tokio::test]
async fn a_thousand_connections_sending_garbage_add_one_record() {
    let node = TestNode::start_with(|c| c.limits.unauthenticated_report_secs = 3600).await;
    let before = node.log_len().await;
    for _ in 0..1000 {
        let mut s = TcpStream::connect(node.node.local_addr).await.unwrap();
        let _ = s.write_all(b"x").await;
        drop(s);
    }
    counted(&node, 1000).await;
    assert_eq!(
        node.log_len().await,
        before,
        "no access record per connection without a certificate"
    );

    assert_eq!(node.node.report_unauthenticated().await, 1, "one source");
    assert_eq!(node.log_len().await, before + 1);
    let rec = summaries(&node).await.pop().expect("the summary");
    assert_eq!(rec.decision, Decision::HandshakeFailed);
    assert_eq!(rec.status, "UNAUTHENTICATED");
    assert_eq!(rec.caller, "-");
    assert!(
        rec.detail
            .starts_with("127.0.0.1: 1000 connections without an accepted client certificate"),
        "{}",
        rec.detail
    );
    // Most are "not TLS"; a fast client may have been over the per-source
    // limit of handshakes in progress for some.
    assert!(rec.detail.contains("not TLS"), "{}", rec.detail);
    assert_eq!(
        node.node.report_unauthenticated().await,
        0,
        "interval ended"
    );
}

/// Every way of not presenting a certificate ends in the summary, by kind:
/// closing at once, garbage, a TLS record that is no handshake, a TLS
/// client without a certificate, silence until the first-byte timeout.
/// A handshake that presents a refused certificate keeps its own record.
#[tokio::test]
async fn every_way_of_not_presenting_a_certificate_is_summarised_by_kind() {
    let node = TestNode::start_with(|c| {
        c.limits.unauthenticated_report_secs = 3600;
        c.tls.first_byte_timeout_ms = 300;
    })
    .await;
    let addr = node.node.local_addr;
    let before = node.log_len().await;

    drop(TcpStream::connect(addr).await.unwrap()); // silent: closed at once
    let mut s = TcpStream::connect(addr).await.unwrap(); // not TLS
    s.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    drop(s);
    let mut s = TcpStream::connect(addr).await.unwrap(); // a broken ClientHello
    s.write_all(&[0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0x00, 0x00, 0x00])
        .await
        .unwrap();
    drop(s);
    // A TLS client without a certificate.
    if let Ok(mut c) = node.client_with(None).await {
        let _ = c.cases.get_case(by_id("x", "return")).await;
    }
    // Silent until the node closes it: its first-byte timeout.
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(60), s.read(&mut buf))
        .await
        .expect("the node closes a silent connection")
        .unwrap_or(0);
    assert_eq!(n, 0, "closed without an answer");
    counted(&node, 5).await;
    // A certificate from a CA the node does not trust: evidence, recorded.
    let rogue = sluis::net::pki::CertAuthority::generate("rogue CA")
        .unwrap()
        .issue_client(&sluis::net::pki::ClientCertSpec::new("Rogue", None))
        .unwrap();
    if let Ok(mut c) = node
        .client_with(Some((rogue.cert_pem.clone(), rogue.key_pem.clone())))
        .await
    {
        let _ = c.cases.get_case(by_id("x", "return")).await;
    }
    let fp = sluis::net::x509::cert_sha256_hex(&rogue.cert_der);
    node.wait_for_log(|r| r.method == "tls.handshake").await;
    assert_eq!(node.log_len().await, before + 1, "only the certificate");

    node.node.report_unauthenticated().await;
    let s = summaries(&node).await;
    assert_eq!(s.len(), 1, "{s:?}");
    let detail = &s[0].detail;
    eprintln!("{detail}");
    for kind in ["silent", "not TLS", "no client certificate"] {
        assert!(detail.contains(kind), "{kind}: {detail}");
    }
    assert!(
        detail.contains("TLS refused") || detail.contains("handshake not finished"),
        "{detail}"
    );
    assert!(!detail.contains(&fp), "the certificate has its own record");
}

/// The issue's second example: 1,100 connections from one source that send
/// nothing held the 1,024 handshake slots, and a real client's handshake
/// waited for them to time out. Now a source has at most
/// `max_handshakes_per_source` in progress; the rest are closed at once, and
/// a real client's handshake completes while the flood is held.
#[tokio::test]
async fn silent_connections_from_one_source_cannot_hold_the_handshake_slots() {
    let flood = 1_100;
    require_file_descriptors(2 * flood + 500);
    let node = TestNode::start_with(|c| {
        // Hold whatever the node accepts for as long as the test runs.
        c.tls.first_byte_timeout_ms = 600_000;
        c.tls.handshake_timeout_ms = 600_000;
        c.limits.max_handshakes = 1024;
        c.limits.unauthenticated_report_secs = 3600;
    })
    .await;
    let addr = node.node.local_addr;
    let source: IpAddr = FLOOD_SOURCE.parse().unwrap();
    let mut held = Vec::with_capacity(flood);
    for _ in 0..flood {
        held.push(connect_from(source, addr).await);
    }
    let limit = node.config.limits.max_handshakes_per_source;
    let over = (flood - limit) as u64;
    // Wait until the node has taken in the whole flood: `limit` held, the
    // rest closed.
    for _ in 0..3000 {
        if node.node.sources.total(Unauthenticated::OverLimit) >= over {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        node.node.sources.total(Unauthenticated::OverLimit),
        over,
        "all but the per-source limit closed at once"
    );
    assert_eq!(node.node.sources.in_progress(Source::of(source)), limit);

    // A real client, from another source, while the flood is held.
    let mut c = tokio::time::timeout(Duration::from_secs(120), node.client(GEMEENTE))
        .await
        .expect("a real client's handshake is not held up by the flood");
    c.cases
        .register_case(with_actor(sluis::rpc::proto::v1::RegisterCaseRequest {
            request_id: String::new(),
            data: Some(full_case("Test Persoon", "1234567890", "111222333")),
        }))
        .await
        .expect("and it is served");
    assert_eq!(
        node.node.sources.in_progress(Source::of(source)),
        limit,
        "the flood was still held"
    );

    drop(held);
    counted(&node, flood as u64).await;
    node.node.report_unauthenticated().await;
    let s = summaries(&node).await;
    assert_eq!(s.len(), 1, "one record for the whole flood: {s:?}");
    assert!(
        s[0].detail.starts_with("127.0.0.2: 1100 connections"),
        "{}",
        s[0].detail
    );
    assert!(
        s[0].detail
            .contains(&format!("{over} over the per-source handshake limit")),
        "{}",
        s[0].detail
    );
}

/// A connection from `source` to `addr` that sends nothing.
async fn connect_from(source: IpAddr, addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(source, 0)).unwrap();
    socket.connect(addr).await.unwrap()
}

/// Fails with a clear message when the process may not open `n` files (the
/// flood and the node's side of it are in this one process).
fn require_file_descriptors(n: usize) {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let soft = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse::<usize>().ok());
    if let Some(soft) = soft {
        assert!(
            soft >= n,
            "this test needs {n} open files and the limit is {soft}: raise it (ulimit -n {n})"
        );
    }
}

/// Open connections are bounded too (`max_connections`): each holds its
/// TLS and HTTP/2 state. At the limit a further connection is closed at
/// once — its client learns at once instead of hanging in the backlog —
/// until one closes; then it is served.
#[tokio::test]
async fn open_connections_are_bounded_and_the_next_is_served_once_one_closes() {
    let node = TestNode::start_with(|c| c.limits.max_connections = 2).await;
    let mut first = node.client(GEMEENTE).await;
    let mut second = node.client("dtv").await;
    own_cases(&mut first).await;
    own_cases(&mut second).await;
    let third = tokio::time::timeout(
        Duration::from_secs(60),
        node.client_with(Some(node.identity("ind"))),
    )
    .await
    .expect("a third connection is answered, not left waiting");
    assert!(
        third.is_err(),
        "a third connection got through while two were open"
    );
    assert!(
        node.node
            .sources
            .total(Unauthenticated::OverConnectionLimit)
            >= 1
    );
    drop(second);
    for _ in 0..200 {
        if let Ok(mut third) = node.client_with(Some(node.identity("ind"))).await {
            own_cases(&mut third).await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("not served once a connection closed");
}
