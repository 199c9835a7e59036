//! Open connections cannot be held by anyone who has a certificate from the
//! trusted CA: each source has a bounded number open at once, a connection
//! on which no request runs is closed after a while, an unregistered
//! certificate's connection soon after its first refusal, and reaching a
//! limit is said in the node's log.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use sluis::net::client::{ClientPem, connect_h2_over};
use sluis::net::pki::{ClientCertSpec, IssuedCert};
use sluis::net::sources::{Source, Unauthenticated};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};

/// Bounds every wait of these tests, so that a fault fails them instead of
/// hanging them; never an expectation of how long anything takes.
const BOUND: Duration = Duration::from_secs(30);

fn unregistered(node: &TestNode) -> IssuedCert {
    node.issue(&ClientCertSpec::new(
        "Stichting Onbekend",
        Some("00000009999999999999"),
    ))
}

async fn tcp_from(source: &str, addr: SocketAddr) -> TcpStream {
    let source: IpAddr = source.parse().unwrap();
    let socket = match source {
        IpAddr::V4(_) => TcpSocket::new_v4(),
        IpAddr::V6(_) => TcpSocket::new_v6(),
    }
    .unwrap();
    socket.bind(SocketAddr::new(source, 0)).unwrap();
    socket.connect(addr).await.unwrap()
}

/// An mTLS connection from `source` with `identity`, or the handshake's error.
async fn tls_from(
    node: &TestNode,
    source: &str,
    identity: (String, String),
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let pem = ClientPem {
        ca: node.ca_pem(),
        identity: Some(identity),
    };
    let mut tls = connect_h2_over(
        tcp_from(source, node.node.local_addr).await,
        "localhost",
        &pem,
    )
    .await?;
    // TLS 1.3: the server's verdict on the client certificate (and a close
    // at once) shows on the first read, not in the client's handshake.
    let mut byte = [0u8; 1];
    match tokio::time::timeout(Duration::from_millis(300), tls.read(&mut byte)).await {
        Ok(Ok(0)) => Err(std::io::ErrorKind::UnexpectedEof.into()),
        Ok(Err(e)) => Err(e),
        _ => Ok(tls),
    }
}

/// Reads until the node closes the connection; `false` if it is still open
/// after `within`.
async fn closed_by_node(
    tls: &mut tokio_rustls::client::TlsStream<TcpStream>,
    within: Duration,
) -> bool {
    let mut buf = [0u8; 1024];
    tokio::time::timeout(within, async {
        loop {
            match tls.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// A node on `listen` that keeps two connections per source open, and
/// keeps them (no idle or unregistered close during the test).
async fn two_per_source(listen: &str) -> TestNode {
    TestNode::start_with(|c| {
        c.node.listen = listen.parse().unwrap();
        c.limits.max_connections_per_source = 2;
        c.limits.unregistered_linger_ms = 600_000;
        c.limits.idle_timeout_ms = 600_000;
    })
    .await
}

/// The review's example: connections with a certificate from the trusted
/// CA, sending nothing, held every connection slot and others hung. Now a
/// source holds at most `max_connections_per_source`; the next from it is
/// closed at once and the node says so in its log, while another source
/// (a registered participant) is served.
#[tokio::test]
async fn one_source_cannot_hold_every_connection_and_the_limit_is_logged() {
    let logs = Captured::install("sluis=info");
    let node = two_per_source("127.0.0.1:0").await;
    let cert = unregistered(&node);
    let id = (cert.cert_pem.clone(), cert.key_pem.clone());
    let first = tls_from(&node, "127.0.0.2", id.clone())
        .await
        .expect("first");
    let second = tls_from(&node, "127.0.0.2", id.clone())
        .await
        .expect("second");
    assert!(
        tls_from(&node, "127.0.0.2", id.clone()).await.is_err(),
        "a third connection from the same source was kept open"
    );
    let source = Source::of("127.0.0.2".parse().unwrap());
    assert_eq!(node.node.sources.open_now(source), 2);
    assert!(
        node.node
            .sources
            .total(Unauthenticated::OverConnectionLimit)
            >= 1
    );
    assert!(
        logs.has("connection limit reached") && logs.has("limits.max_connections_per_source"),
        "reaching the limit is logged"
    );
    // Another source is not affected.
    let mut c = node.client(GEMEENTE).await;
    own_cases(&mut c).await;
    // A slot that comes free is usable again.
    drop(first);
    let mut third = None;
    for _ in 0..100 {
        if let Ok(t) = tls_from(&node, "127.0.0.2", id.clone()).await {
            third = Some(t);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(third.is_some(), "the source's slot came free");
    drop(second);
}

/// A registered participant's connection on which nothing runs is closed
/// after `idle_timeout_ms`; before, it stayed open for the connection's
/// whole age (an hour by default).
#[tokio::test]
async fn a_connection_on_which_nothing_runs_is_closed() {
    let node = TestNode::start_with(|c| c.limits.idle_timeout_ms = 200).await;
    let mut tls = tls_from(&node, "127.0.0.1", node.identity("dtv"))
        .await
        .expect("a registered participant connects");
    assert!(
        closed_by_node(&mut tls, BOUND).await,
        "an idle connection stayed open"
    );
    // Clients that do ask are served as before.
    let mut c = node.client(GEMEENTE).await;
    own_cases(&mut c).await;
}

/// An HTTP/2 connection with `identity`; the task driving it ends when the
/// node closes the connection.
async fn h2_connection(
    node: &TestNode,
    identity: (String, String),
) -> (h2::client::SendRequest<Bytes>, tokio::task::JoinHandle<()>) {
    let pem = ClientPem {
        ca: node.ca_pem(),
        identity: Some(identity),
    };
    let tcp = TcpStream::connect(node.node.local_addr).await.unwrap();
    let tls = connect_h2_over(tcp, "localhost", &pem).await.expect("mTLS");
    let (client, conn) = h2::client::handshake(tls).await.expect("HTTP/2");
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    (client.ready().await.unwrap(), driver)
}

/// One request with an empty message on `client`; its grpc-status.
async fn ask(client: &mut h2::client::SendRequest<Bytes>) -> Option<String> {
    let req = http::Request::builder()
        .method("POST")
        .uri("https://localhost/sluis.v1.CaseService/FindCases")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("x-sluis-actor", ACTOR)
        .body(())
        .unwrap();
    let (response, mut send) = client.send_request(req, false).unwrap();
    send.send_data(Bytes::from(vec![0u8; 5]), true).unwrap();
    let response = response.await.ok()?;
    let (parts, mut body) = response.into_parts();
    let status = parts.headers.get("grpc-status").cloned();
    while let Some(Ok(chunk)) = body.data().await {
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    let trailers = body.trailers().await.ok().flatten();
    status
        .or_else(|| trailers.and_then(|t| t.get("grpc-status").cloned()))
        .and_then(|v| v.to_str().ok().map(str::to_string))
}

/// An unregistered certificate is refused whatever it asks: its connection
/// is closed soon after its first refusal (`unregistered_linger_ms`), while
/// a registered participant's stays open for the idle timeout.
#[tokio::test]
async fn an_unregistered_certificate_is_closed_soon_after_its_first_refusal() {
    let node = TestNode::start_with(|c| {
        c.limits.unregistered_linger_ms = 1_000;
        c.limits.idle_timeout_ms = 600_000;
    })
    .await;
    let cert = unregistered(&node);
    let (mut client, driver) =
        h2_connection(&node, (cert.cert_pem.clone(), cert.key_pem.clone())).await;
    assert_eq!(
        ask(&mut client).await.as_deref(),
        Some("7"),
        "PERMISSION_DENIED"
    );
    assert!(
        tokio::time::timeout(BOUND, driver).await.is_ok(),
        "the unregistered certificate's connection stayed open"
    );

    let (mut client, driver) = h2_connection(&node, node.identity(GEMEENTE)).await;
    assert!(ask(&mut client).await.is_some(), "answered");
    // Far beyond the unregistered linger, and far within the idle timeout.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !driver.is_finished(),
        "a participant's connection was closed"
    );
    assert!(ask(&mut client).await.is_some(), "answered again");
}

/// The review's example: an unregistered certificate wrote one durable
/// record per request, 5,000 in ten seconds. Now its first
/// `unregistered_records_per_certificate` requests per interval are
/// recorded one by one and the rest counted in one summary record with its
/// fingerprint. And the node announces a limit of streams per connection.
#[tokio::test]
async fn an_unregistered_certificate_cannot_write_a_record_per_request() {
    let node = TestNode::start_with(|c| {
        c.limits.unregistered_linger_ms = 600_000;
        c.limits.unregistered_records_per_certificate = 3;
        c.limits.max_concurrent_streams = 7;
    })
    .await;
    let cert = unregistered(&node);
    let fingerprint = sluis::net::x509::cert_sha256_hex(&cert.cert_der);
    let (mut client, _driver) =
        h2_connection(&node, (cert.cert_pem.clone(), cert.key_pem.clone())).await;
    let before = node.log_len().await;
    for _ in 0..40 {
        assert_eq!(
            ask(&mut client).await.as_deref(),
            Some("7"),
            "PERMISSION_DENIED"
        );
    }
    assert_eq!(
        client.current_max_send_streams(),
        7,
        "SETTINGS_MAX_CONCURRENT_STREAMS"
    );
    node.node.report_unauthenticated().await;
    let added: Vec<_> = node
        .log()
        .await
        .into_iter()
        .skip(before as usize)
        .map(|r| sluis::tlog::AccessRecord::decode(&r.record).unwrap())
        .filter(|r| r.peer_fingerprint.as_deref() == Some(fingerprint.as_str()))
        .collect();
    let summaries: Vec<_> = added
        .iter()
        .filter(|r| r.method == "tls.unregistered")
        .collect();
    assert_eq!(
        added.len(),
        4,
        "three one by one and one summary: {added:?}"
    );
    assert_eq!(summaries.len(), 1);
    assert!(
        summaries[0].detail.starts_with("37 further requests"),
        "{}",
        summaries[0].detail
    );
}

/// Tests that add addresses to the loopback interface: run as root with
/// `-- --ignored needs_root::`.
mod needs_root {
    use super::*;

    /// Adds `addrs` to the loopback interface for the life of the value, so
    /// a test can connect from several IPv6 sources.
    struct LoopbackV6(Vec<&'static str>);

    impl LoopbackV6 {
        fn add(addrs: &[&'static str]) -> Result<LoopbackV6, String> {
            let mut added = LoopbackV6(Vec::new());
            for a in addrs {
                let out = std::process::Command::new("ip")
                    .args(["-6", "addr", "add", &format!("{a}/128"), "dev", "lo"])
                    .output()
                    .map_err(|e| format!("cannot run `ip`: {e}"))?;
                let said = String::from_utf8_lossy(&out.stderr);
                if !out.status.success() && !said.contains("exists") {
                    return Err(format!("`ip -6 addr add {a}` refused: {}", said.trim()));
                }
                added.0.push(a);
            }
            Ok(added)
        }
    }

    impl Drop for LoopbackV6 {
        fn drop(&mut self) {
            for a in &self.0 {
                let _ = std::process::Command::new("ip")
                    .args(["-6", "addr", "del", &format!("{a}/128"), "dev", "lo"])
                    .output();
            }
        }
    }

    /// Over real IPv6: addresses inside one /64 are one source (rotating
    /// the interface identifier does not buy more connections), the next
    /// /64 is another; the limit's count names the /64.
    #[tokio::test]
    #[ignore = "needs root to add IPv6 addresses to lo: run with `cargo test --test connections -- --ignored needs_root::` (as .ci/run does as root)"]
    async fn ipv6_addresses_in_one_64_are_one_source() {
        const SAME: [&str; 3] = ["fd00:5:1:2::a", "fd00:5:1:2::b", "fd00:5:1:2::c"];
        const OTHER: &str = "fd00:5:1:3::a";
        let _lo = LoopbackV6::add(&[SAME[0], SAME[1], SAME[2], OTHER])
            .unwrap_or_else(|why| panic!("this test needs root and IPv6 on lo: {why}"));
        let node = two_per_source("[::1]:0").await;
        let cert = unregistered(&node);
        let id = (cert.cert_pem.clone(), cert.key_pem.clone());
        let _first = tls_from(&node, SAME[0], id.clone())
            .await
            .expect("first address of the /64");
        let _second = tls_from(&node, SAME[1], id.clone())
            .await
            .expect("second address of the /64");
        assert!(
            tls_from(&node, SAME[2], id.clone()).await.is_err(),
            "a third address of the same /64 was let in as a new source"
        );
        let prefix = Source::of("fd00:5:1:2::".parse().unwrap());
        assert_eq!(prefix.to_string(), "fd00:5:1:2::/64");
        assert_eq!(node.node.sources.open_now(prefix), 2);
        let _other = tls_from(&node, OTHER, id.clone())
            .await
            .expect("the next /64 is another source");
        assert_eq!(
            node.node
                .sources
                .open_now(Source::of(OTHER.parse().unwrap())),
            1
        );
    }
}
