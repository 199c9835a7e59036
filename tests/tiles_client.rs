//! A tlog-tiles client written from the specs alone — C2SP tlog-tiles,
//! tlog-checkpoint and signed-note, RFC 6962 §2.1 and RFC 9162 §2.1.3.2,
//! §2.1.4.2 — and none of the node's own log code: it fetches the
//! checkpoint over mTLS HTTP/2, checks its signature with the node's
//! verifier key, fetches tiles, computes an inclusion proof and a
//! consistency proof itself and verifies them against the signed roots.
//! Who may read what: a participant the checkpoint and hash tiles, a
//! privacy officer the entry bundles too, an unregistered certificate
//! nothing — each request recorded.

mod common;

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use common::{GEMEENTE, TestNode, by_hand, record_of};
use sha2::{Digest, Sha256};
use sluis::net::pki::ClientCertSpec;
use sluis::tlog::Decision;

const OFFICER: &str = "fg-utrecht";

type Hash = [u8; 32];

// --- HTTP ---------------------------------------------------------------

/// One answer of the read API.
struct Got {
    status: u16,
    headers: http::HeaderMap,
    body: Vec<u8>,
}

impl Got {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
    fn request_id(&self) -> String {
        self.header("x-request-id").to_string()
    }
}

/// A GET (or another method) over one HTTP/2 connection per request.
async fn fetch(
    node: &TestNode,
    identity: Option<(String, String)>,
    method: &str,
    path: &str,
) -> Got {
    fetch_accepting(node, identity, method, path, "identity").await
}

async fn fetch_accepting(
    node: &TestNode,
    identity: Option<(String, String)>,
    method: &str,
    path: &str,
    accept_encoding: &str,
) -> Got {
    let mut client = by_hand::connection(node, identity).await;
    let req = http::Request::builder()
        .method(method)
        .uri(format!("https://localhost{path}"))
        .header("accept-encoding", accept_encoding)
        .body(())
        .unwrap();
    let (response, _) = client.send_request(req, true).unwrap();
    let response = response.await.expect("an HTTP/2 response");
    let (parts, mut body) = response.into_parts();
    let mut bytes = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk: Bytes = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
        bytes.extend_from_slice(&chunk);
    }
    Got {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: bytes,
    }
}

// --- signed note and checkpoint (C2SP signed-note, tlog-checkpoint) -----

/// A checkpoint whose Ed25519 signature by `vkey` verified.
#[derive(Clone, Debug)]
struct Checkpoint {
    origin: String,
    size: u64,
    root: Hash,
}

/// `<name>+<hex key id>+<base64(0x01 || public key)>`.
fn parse_vkey(vkey: &str) -> (String, [u8; 4], Vec<u8>) {
    let mut parts = vkey.splitn(3, '+');
    let name = parts.next().unwrap().to_string();
    let id = hex::decode(parts.next().unwrap()).unwrap();
    let key = B64.decode(parts.next().unwrap()).unwrap();
    assert_eq!(key[0], 0x01, "an Ed25519 verifier key");
    let key = key[1..].to_vec();
    // key ID = SHA-256(key name || 0x0A || 0x01 || public key)[:4]
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([0x0a, 0x01]);
    h.update(&key);
    let want: [u8; 4] = h.finalize()[..4].try_into().unwrap();
    assert_eq!(id, want, "the key id is the one the spec derives");
    (name, want, key)
}

/// Verifies the note's signature by the key, then reads the body.
fn verify_checkpoint(note: &str, vkey: &str) -> Result<Checkpoint, String> {
    let (name, id, key) = parse_vkey(vkey);
    // The text ends at the first blank line (its newline included).
    let split = note
        .find("\n\n")
        .ok_or("no blank line before the signatures")?;
    let (text, sigs) = (&note[..split + 1], &note[split + 2..]);
    let mut verified = false;
    for line in sigs.lines() {
        let rest = line
            .strip_prefix("\u{2014} ")
            .ok_or("a signature line starts with an em dash")?;
        let (signer, sig) = rest.rsplit_once(' ').ok_or("name and signature")?;
        let sig = B64.decode(sig).map_err(|e| e.to_string())?;
        if signer != name || sig.len() < 4 || sig[..4] != id {
            continue; // an unknown key: ignored, as the spec says
        }
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &key)
            .verify(text.as_bytes(), &sig[4..])
            .map_err(|_| "the signature does not verify")?;
        verified = true;
    }
    if !verified {
        return Err("no signature by the node's key".into());
    }
    let mut lines = text.lines();
    let origin = lines.next().ok_or("origin")?.to_string();
    let size = lines.next().ok_or("size")?.parse().map_err(|_| "size")?;
    let root = B64
        .decode(lines.next().ok_or("root")?)
        .map_err(|_| "root")?
        .try_into()
        .map_err(|_| "a root of 32 bytes")?;
    Ok(Checkpoint { origin, size, root })
}

// --- RFC 6962 hashing ---------------------------------------------------

fn leaf_hash(entry: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(entry);
    h.finalize().into()
}

fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The largest power of two smaller than `n` (n > 1).
fn split(n: u64) -> u64 {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

// --- tiles (C2SP tlog-tiles) --------------------------------------------

/// `<N>` in 3-digit elements, all but the last prefixed with `x`.
fn index_path(mut n: u64) -> String {
    let mut parts = vec![format!("{:03}", n % 1000)];
    n /= 1000;
    while n > 0 {
        parts.push(format!("x{:03}", n % 1000));
        n /= 1000;
    }
    parts.reverse();
    parts.join("/")
}

fn tile_path(prefix: &str, n: u64, width: u64) -> String {
    let mut p = format!("{prefix}/{}", index_path(n));
    if width < 256 {
        p.push_str(&format!(".p/{width}"));
    }
    p
}

/// Reads a tree of a verified size through its tiles, fetching each tile
/// once, and computes the hashes proofs need.
struct Tiles<'a> {
    node: &'a TestNode,
    identity: (String, String),
    size: u64,
    cache: HashMap<String, Vec<Hash>>,
    fetched: usize,
}

impl<'a> Tiles<'a> {
    fn new(node: &'a TestNode, identity: (String, String), size: u64) -> Tiles<'a> {
        Tiles {
            node,
            identity,
            size,
            cache: HashMap::new(),
            fetched: 0,
        }
    }

    /// Hash number `i` of tile level `l`: the MTH of the 256^l entries
    /// from i·256^l. Its tile is full when the tree covers it, else
    /// partial, of width floor(size / 256^l) mod 256.
    async fn tile_hash(&mut self, l: u32, i: u64) -> Hash {
        let n = i / 256;
        let hashes_at_level = self.size >> (8 * l);
        assert!(i < hashes_at_level, "hash {i} of level {l} is in the tree");
        let width = (hashes_at_level - n * 256).min(256);
        let path = tile_path(&format!("/tile/{l}"), n, width);
        if !self.cache.contains_key(&path) {
            let got = fetch(self.node, Some(self.identity.clone()), "GET", &path).await;
            assert_eq!(
                got.status,
                200,
                "{path}: {}",
                String::from_utf8_lossy(&got.body)
            );
            assert_eq!(got.header("content-type"), "application/octet-stream");
            assert_eq!(
                got.body.len() as u64,
                width * 32,
                "{path} is {width} hashes"
            );
            let hashes = got.body.chunks(32).map(|c| c.try_into().unwrap()).collect();
            self.cache.insert(path.clone(), hashes);
            self.fetched += 1;
        }
        self.cache[&path][(i % 256) as usize]
    }

    /// The MTH of the perfect subtree of height `h` whose leaves start at
    /// `start` (a multiple of 2^h): read from a tile when `h` is a tile
    /// level, else hashed up from the tile level below it.
    async fn perfect(&mut self, h: u32, start: u64) -> Hash {
        let (l, r) = (h / 8, h % 8);
        let first = start >> (8 * l);
        let mut level: Vec<Hash> = Vec::new();
        for k in 0..(1u64 << r) {
            level.push(self.tile_hash(l, first + k).await);
        }
        while level.len() > 1 {
            level = level.chunks(2).map(|p| node_hash(&p[0], &p[1])).collect();
        }
        level[0]
    }

    /// MTH(D[a:b]) (RFC 6962 §2.1), for the ranges its proofs use.
    async fn mth(&mut self, a: u64, b: u64) -> Hash {
        let n = b - a;
        if n.is_power_of_two() && a.is_multiple_of(n) {
            return self.perfect(n.trailing_zeros(), a).await;
        }
        let k = split(n);
        let left = Box::pin(self.mth(a, a + k)).await;
        let right = Box::pin(self.mth(a + k, b)).await;
        node_hash(&left, &right)
    }

    /// PATH(m, D[a:b]) (RFC 6962 §2.1.1), `m` counted from `a`.
    async fn path(&mut self, m: u64, a: u64, b: u64) -> Vec<Hash> {
        let n = b - a;
        if n == 1 {
            return Vec::new();
        }
        let k = split(n);
        if m < k {
            let mut p = Box::pin(self.path(m, a, a + k)).await;
            p.push(self.mth(a + k, b).await);
            p
        } else {
            let mut p = Box::pin(self.path(m - k, a + k, b)).await;
            p.push(self.mth(a, a + k).await);
            p
        }
    }

    /// SUBPROOF(m, D[a:b], flag) (RFC 6962 §2.1.2), `m` counted from `a`.
    async fn subproof(&mut self, m: u64, a: u64, b: u64, flag: bool) -> Vec<Hash> {
        let n = b - a;
        if m == n {
            return if flag {
                Vec::new()
            } else {
                vec![self.mth(a, b).await]
            };
        }
        let k = split(n);
        if m <= k {
            let mut p = Box::pin(self.subproof(m, a, a + k, flag)).await;
            p.push(self.mth(a + k, b).await);
            p
        } else {
            let mut p = Box::pin(self.subproof(m - k, a + k, b, false)).await;
            p.push(self.mth(a, a + k).await);
            p
        }
    }
}

/// RFC 9162 §2.1.3.2.
fn verify_inclusion(index: u64, size: u64, leaf: Hash, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = leaf;
    for p in proof {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    s == 0 && &r == root
}

/// RFC 9162 §2.1.4.2.
fn verify_consistency(
    old: u64,
    new: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> bool {
    if old == new {
        return proof.is_empty() && old_root == new_root;
    }
    if old == 0 || old > new {
        return false;
    }
    let mut path = proof.to_vec();
    if old.is_power_of_two() {
        path.insert(0, *old_root);
    }
    let (mut f, mut s) = (old - 1, new - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    &fr == old_root && &sr == new_root && s == 0
}

/// Entries of a bundle: each after its big-endian u16 length.
fn split_bundle(mut b: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let len = u16::from_be_bytes([b[0], b[1]]) as usize;
        out.push(b[2..2 + len].to_vec());
        b = &b[2 + len..];
    }
    out
}

// --- the node -----------------------------------------------------------

async fn start() -> TestNode {
    TestNode::start_with(|c| c.node.checkpoint_interval_ms = 100).await
}

/// The latest checkpoint, verified, once it covers at least `min` entries.
async fn checkpoint_of_at_least(
    node: &TestNode,
    who: &(String, String),
    min: u64,
) -> (Checkpoint, Got) {
    let vkey = node.node.verifier_key();
    for _ in 0..100 {
        let got = fetch(node, Some(who.clone()), "GET", "/checkpoint").await;
        assert_eq!(got.status, 200, "{}", String::from_utf8_lossy(&got.body));
        let note = String::from_utf8(got.body.clone()).expect("a checkpoint is text");
        let cp = verify_checkpoint(&note, &vkey).expect("the checkpoint verifies");
        if cp.size >= min {
            return (cp, got);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no checkpoint of {min} entries");
}

/// Gives the log some entries about a subject: a registered case, read.
async fn traffic(node: &TestNode, reads: usize) {
    let mut c = node.client(GEMEENTE).await;
    let (case_id, _) = common::register(&mut c).await;
    for _ in 0..reads {
        c.cases
            .get_case(common::with_actor(common::by_id(
                &case_id,
                "case_consultation",
            )))
            .await
            .expect("get case");
    }
}

#[tokio::test]
async fn a_spec_only_client_checks_inclusion_and_consistency_from_tiles() {
    let node = start().await;
    let participant = node.identity(GEMEENTE);
    // More than one full level-0 tile: 256 entries and then some.
    traffic(&node, 270).await;
    let (old, got) = checkpoint_of_at_least(&node, &participant, 260).await;
    assert_eq!(got.header("content-type"), "text/plain; charset=utf-8");
    assert!(
        got.header("cache-control").contains("no-cache"),
        "the checkpoint changes: {}",
        got.header("cache-control")
    );
    assert!(
        old.origin.starts_with(&node.config.node.name),
        "{}",
        old.origin
    );

    // The whole tree from its tiles has the signed root.
    let mut tiles = Tiles::new(&node, participant.clone(), old.size);
    assert_eq!(tiles.mth(0, old.size).await, old.root);

    // A full tile is cacheable for good.
    let full = fetch(&node, Some(participant.clone()), "GET", "/tile/0/000").await;
    assert_eq!(full.status, 200);
    assert_eq!(full.body.len(), 256 * 32);
    assert!(
        full.header("cache-control").contains("immutable"),
        "{}",
        full.header("cache-control")
    );
    let rec = record_of(&node, &full.request_id()).await;
    assert_eq!(rec.method, "tlog-tiles/tile");
    assert_eq!(rec.decision, Decision::Allowed);
    assert_eq!(rec.caller, GEMEENTE);

    // Inclusion of an entry the officer reads from its bundle: the leaf
    // hashes to the level-0 tile's hash, and the path the client computes
    // from tiles leads to the signed root.
    let officer = node.identity(OFFICER);
    let index = 257;
    let width = (old.size - 256).min(256);
    let bundle_path = tile_path("/tile/entries", 1, width);
    let bundle = fetch(&node, Some(officer.clone()), "GET", &bundle_path).await;
    assert_eq!(
        bundle.status,
        200,
        "{}",
        String::from_utf8_lossy(&bundle.body)
    );
    assert_eq!(bundle.header("content-type"), "application/octet-stream");
    let entries = split_bundle(&bundle.body);
    assert_eq!(entries.len() as u64, width);
    let leaf = leaf_hash(&entries[(index - 256) as usize]);
    assert_eq!(tiles.tile_hash(0, index).await, leaf);
    let proof = tiles.path(index, 0, old.size).await;
    assert!(verify_inclusion(index, old.size, leaf, &proof, &old.root));
    // The proof fails for another leaf and at another index.
    let other = leaf_hash(&entries[0]);
    assert!(!verify_inclusion(index, old.size, other, &proof, &old.root));
    assert!(!verify_inclusion(
        index + 1,
        old.size,
        leaf,
        &proof,
        &old.root
    ));
    // The bundle's record names the subjects of its entries.
    let rec = record_of(&node, &bundle.request_id()).await;
    assert_eq!(rec.method, "tlog-tiles/entries");
    assert_eq!(rec.caller, OFFICER);
    assert!(!rec.subjects.is_empty(), "the entries read name a subject");

    // The log grows; the new checkpoint is consistent with the old one.
    traffic(&node, 20).await;
    let (new, _) = checkpoint_of_at_least(&node, &participant, old.size + 20).await;
    let mut tiles = Tiles::new(&node, participant.clone(), new.size);
    assert_eq!(tiles.mth(0, new.size).await, new.root);
    assert_eq!(
        tiles.mth(0, old.size).await,
        old.root,
        "the old tree is a prefix"
    );
    let proof = tiles.subproof(old.size, 0, new.size, true).await;
    assert!(verify_consistency(
        old.size, new.size, &old.root, &new.root, &proof
    ));
    let mut bent = proof.clone();
    bent[0][0] ^= 1;
    assert!(!verify_consistency(
        old.size, new.size, &old.root, &new.root, &bent
    ));
    let levels: Vec<&String> = tiles.cache.keys().collect();
    assert!(
        tiles.fetched == levels.len()
            && levels.iter().any(|p| p.starts_with("/tile/0/"))
            && levels.iter().any(|p| p.starts_with("/tile/1/")),
        "each tile read once, of two levels: {levels:?}"
    );

    node.node.shutdown().await.unwrap();
}

#[tokio::test]
async fn entry_bundles_are_for_officers_and_an_unregistered_certificate_gets_nothing() {
    let node = start().await;
    traffic(&node, 3).await;
    let participant = node.identity(GEMEENTE);
    let (cp, _) = checkpoint_of_at_least(&node, &participant, 4).await;
    let w = cp.size.min(255);
    let hashes = format!("/tile/0/000.p/{w}");
    let entries = format!("/tile/entries/000.p/{w}");

    // A participant: hash tiles yes, entries no (recorded as denied).
    assert_eq!(
        fetch(&node, Some(participant.clone()), "GET", &hashes)
            .await
            .status,
        200
    );
    let denied = fetch(&node, Some(participant.clone()), "GET", &entries).await;
    assert_eq!(denied.status, 403);
    assert!(
        String::from_utf8_lossy(&denied.body).contains("privacy officer"),
        "the refusal says who may"
    );
    let rec = record_of(&node, &denied.request_id()).await;
    assert_eq!(
        (rec.method.as_str(), rec.decision, rec.status.as_str()),
        ("tlog-tiles/entries", Decision::Denied, "PERMISSION_DENIED")
    );
    assert!(rec.subjects.is_empty(), "nothing was handed out");

    // The officer: both.
    let officer = node.identity(OFFICER);
    assert_eq!(
        fetch(&node, Some(officer.clone()), "GET", &hashes)
            .await
            .status,
        200
    );
    let got = fetch(&node, Some(officer.clone()), "GET", &entries).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.header("content-encoding"), "");
    assert_eq!(split_bundle(&got.body).len() as u64, w);
    // Compressed for a client that accepts gzip, as the spec asks.
    let zipped = fetch_accepting(
        &node,
        Some(officer.clone()),
        "GET",
        &entries,
        "gzip, identity",
    )
    .await;
    assert_eq!(zipped.header("content-encoding"), "gzip");
    let mut unzipped = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(zipped.body.as_slice()),
        &mut unzipped,
    )
    .unwrap();
    assert_eq!(unzipped, got.body);

    // An unregistered certificate from the trusted CA: nothing, recorded
    // with its fingerprint.
    let stranger = node.issue(&ClientCertSpec::new(
        "Stichting Onbekend",
        Some("00000009999999999999"),
    ));
    let fp = sluis::net::x509::cert_sha256_hex(&stranger.cert_der);
    let stranger = (stranger.cert_pem, stranger.key_pem);
    for path in ["/checkpoint", hashes.as_str(), entries.as_str()] {
        let got = fetch(&node, Some(stranger.clone()), "GET", path).await;
        assert_eq!(got.status, 403, "{path}");
        assert_eq!(got.header("x-error-reason"), "CERTIFICATE_NOT_REGISTERED");
        assert!(got.body.len() < 1000 && !got.body.starts_with(b"\0"));
        let rec = record_of(&node, &got.request_id()).await;
        assert_eq!(rec.peer_fingerprint.as_deref(), Some(fp.as_str()), "{path}");
        assert_eq!(rec.decision, Decision::Denied);
    }

    node.node.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_api_answers_in_http_terms() {
    let node = start().await;
    traffic(&node, 1).await;
    let participant = node.identity(GEMEENTE);
    let (cp, _) = checkpoint_of_at_least(&node, &participant, 2).await;
    let get = |path: String| {
        let p = participant.clone();
        let node = &node;
        async move { fetch(node, Some(p), "GET", &path).await }
    };
    // Past the tree of the latest checkpoint: 404, recorded. (Each request
    // here adds an entry: the widths asked are far beyond what they add.)
    assert!(cp.size < 100);
    let beyond = get("/tile/0/000.p/255".into()).await;
    assert_eq!(beyond.status, 404);
    assert_eq!(
        record_of(&node, &beyond.request_id()).await.status,
        "NOT_FOUND"
    );
    assert_eq!(get("/tile/0/001".into()).await.status, 404);
    assert_eq!(get("/tile/entries/x001/000".into()).await.status, 403);
    assert_eq!(get("/tile/1/000".into()).await.status, 404);
    assert_eq!(get("/tile/9/000.p/1".into()).await.status, 404);
    // A path the spec does not write: 400, saying how it is written.
    let bad = get("/tile/0/1".into()).await;
    assert_eq!(bad.status, 400);
    assert!(String::from_utf8_lossy(&bad.body).contains("3-digit"));
    assert_eq!(get("/tile/0/000.p/256".into()).await.status, 400);
    // Only GET.
    let post = fetch(&node, Some(participant.clone()), "POST", "/checkpoint").await;
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), "GET");
    assert_eq!(
        record_of(&node, &post.request_id()).await.method,
        "tlog-tiles/checkpoint"
    );
    // HEAD is refused as well, and its answer has no body (RFC 9110 §9.3.2),
    // which an HTTP/2 client takes for a broken stream.
    let head = fetch(&node, Some(participant.clone()), "HEAD", "/checkpoint").await;
    assert_eq!(head.status, 405);
    assert_eq!(head.header("allow"), "GET");
    assert!(head.body.is_empty(), "{:?}", head.body);
    // gRPC on the same listener is as it was.
    let mut c = node.client(GEMEENTE).await;
    common::own_cases(&mut c).await;

    node.node.shutdown().await.unwrap();
}
