//! The privacy officer's console in a real browser: `sluis console` runs
//! as the officer against a real node over mTLS, and headless Chromium
//! (the distribution's package, driven over WebDriver by chromedriver)
//! filters the log, opens an entry and sees each released category's basis
//! and its inclusion proof verified in the page, opens the charts and the
//! alerts, sees an emergency access's open alert and closes it with a
//! verdict, and makes a Dutch subject report; and reads the statistics
//! tables the node published, as charts. Screenshots go to
//! `target/console-screenshots/`. The console's guard is checked from
//! outside: no token, or another Host, gets nothing.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::*;
use serde_json::{Value, json};
use sluis::rpc::proto::v1 as pb;

const OFFICER: &str = "fg-utrecht";
const DTV: &str = "dtv";
const AVIM: &str = "avim";
const URGENT: &str = "acute threat reported at the shelter location";

/// One HTTP/1.1 exchange on a connection of its own (the body read to its
/// close): enough for the
/// console's API and for chromedriver's.
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\nContent-Type: application/json\r\n",
        body.len()
    );
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(&body);
    s.write_all(req.as_bytes()).unwrap();
    // By Content-Length: chromedriver says `Connection: close` and keeps
    // the connection open.
    let mut r = BufReader::new(s);
    let mut head = String::new();
    let mut length = None;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse::<usize>().ok();
        }
        head.push_str(&line);
    }
    let mut bytes = Vec::new();
    match length {
        Some(n) => {
            bytes.resize(n, 0);
            r.read_exact(&mut bytes).unwrap();
        }
        None => {
            r.read_to_end(&mut bytes).unwrap();
        }
    }
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = String::from_utf8_lossy(&bytes).to_string();
    (status, body)
}

/// A WebDriver session on headless Chromium.
struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn start() -> Browser {
        let port = common::free_port();
        let driver = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1400,1000",
                format!("--user-data-dir={}", profile.path().display()),
            ]
        }}}});
        let (status, body) = http(addr, "POST", "/session", &[], Some(&caps));
        assert_eq!(status, 200, "new session: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        let session = v["value"]["sessionId"].as_str().unwrap().to_string();
        Browser {
            driver,
            addr,
            session,
            _profile: profile,
        }
    }

    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, text) = http(
            self.addr,
            method,
            &format!("/session/{}{path}", self.session),
            &[],
            body.as_ref(),
        );
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        assert_eq!(status, 200, "{method} {path}: {text}");
        v["value"].clone()
    }

    fn go(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({"url": url})));
    }

    fn js(&self, script: &str, args: Value) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
    }

    fn find(&self, css: &str) -> String {
        let v = self.cmd(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        v.as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap()
            .to_string()
    }

    fn click(&self, css: &str) {
        let id = self.find(css);
        self.cmd("POST", &format!("/element/{id}/click"), Some(json!({})));
    }

    fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css);
        self.cmd("POST", &format!("/element/{id}/clear"), Some(json!({})));
        self.cmd(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({"text": text})),
        );
    }

    /// Waits until `script` returns something truthy; returns it.
    fn wait(&self, what: &str, script: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let v = self.js(script, json!([]));
            if !(v.is_null() || v == json!(false) || v == json!("") || v == json!(0)) {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn screenshot(&self, name: &str) {
        let png = self.cmd("GET", "/screenshot", None);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        let dir = screenshots();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = http(
            self.addr,
            "DELETE",
            &format!("/session/{}", self.session),
            &[],
            None,
        );
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn screenshots() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("console-screenshots")
}

/// The console's address and its session token, from the URL it prints.
fn address_and_token(url: &str) -> (SocketAddr, String) {
    let addr = url["http://".len()..]
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    (addr, url.split("token=").nth(1).unwrap().to_string())
}

/// `sluis console` as the officer; its address (with the token) from the
/// first line it prints.
fn console(node: &TestNode) -> (Child, String) {
    console_with(node, &[])
}

/// As [`console`], with more of `sluis console`'s options.
fn console_with(node: &TestNode, options: &[&str]) -> (Child, String) {
    let pki = node.pki();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluis"))
        .arg("console")
        .args(options)
        .args(["--port", "0", "--server-name", "localhost", "--node"])
        .arg(format!("https://127.0.0.1:{}", node.node.local_addr.port()))
        .arg("--cert")
        .arg(pki.join(format!("clients/{OFFICER}.pem")))
        .arg("--key")
        .arg(pki.join(format!("clients/{OFFICER}.key")))
        .arg("--ca")
        .arg(pki.join("ca.pem"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.trim().to_string();
    assert!(
        url.starts_with("http://127.0.0.1:") && url.contains("/?token="),
        "{url}"
    );
    (child, url)
}

/// Six cases; the NGO reads each (consented shelter), then is refused five
/// times in a row; AVIM receives safety information on its legal basis;
/// DT&V once.
async fn scene(node: &TestNode) -> (String, String) {
    let mut owner = node.client(GEMEENTE).await;
    let mut first = None;
    let mut ngo = node.client(NGO).await;
    for _ in 0..6 {
        let (case_id, _) = register(&mut owner).await;
        grant(
            &mut owner,
            &case_id,
            vec![participant(NGO)],
            &[pb::Category::Shelter],
            &["shelter"],
        )
        .await;
        ngo.cases
            .get_case(with_actor(by_id(&case_id, "shelter")))
            .await
            .unwrap();
        first.get_or_insert(case_id);
    }
    let case_id = first.unwrap();
    for _ in 0..5 {
        ngo.cases
            .get_case(with_actor(by_id(&case_id, "return")))
            .await
            .unwrap();
    }
    let mut avim = node.client(AVIM).await;
    let safety = avim
        .cases
        .get_case(with_actor(by_id(&case_id, "case_consultation")))
        .await
        .unwrap();
    // An emergency access: shelter only under the emergency rule.
    avim.cases
        .get_case(with_actor(pb::GetCaseRequest {
            categories: vec![pb::Category::Shelter as i32],
            emergency_justification: URGENT.into(),
            ..by_id(&case_id, "case_consultation")
        }))
        .await
        .unwrap();
    let mut dtv = node.client(DTV).await;
    dtv.cases
        .get_case(with_actor(by_id(&case_id, "return")))
        .await
        .unwrap();
    (case_id, request_id(&safety))
}

/// A refused filter is explained in the console's own words: the field as
/// the page names it (`since`, `case`, `request_id`), never the command
/// line's flag (`--since`), which an officer in the browser has never seen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_filter_names_the_consoles_field() {
    let node = TestNode::start().await;
    let (mut child, url) = console(&node);
    let (addr, token) = address_and_token(&url);
    let said = tokio::task::spawn_blocking(move || {
        let host = addr.to_string();
        [
            ("since=bogus", "since"),
            ("until=2026-11-31", "until"),
            ("since=2026-11-30&until=2026-11-29", "until"),
            ("participant=Not%20an%20id", "participant"),
            ("role=chief", "role"),
            ("method=Get%0ACase", "method"),
            ("decision=maybe", "decision"),
            ("case=1234567890", "case"),
            ("request_id=x", "request_id"),
        ]
        .map(|(q, field)| {
            let (status, body) = http(
                addr,
                "GET",
                &format!("/api/entries?{q}"),
                &[("Host", &host), ("x-sluis-console-token", &token)],
                None,
            );
            (q, field, status, body)
        })
    })
    .await
    .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    for (q, field, status, body) in said {
        assert_eq!(status, 400, "{q}: {body}");
        let message = serde_json::from_str::<Value>(&body).unwrap()["error"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(message.starts_with(field), "{q}: {message}");
        assert!(!message.contains("--"), "{q}: {message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(has_chromium),
    ignore = "needs Chromium and chromedriver from the distribution (Debian: apt-get install chromium chromium-driver; .ci/run installs them)"
)]
async fn the_officer_browses_verifies_charts_and_reports_in_a_real_browser() {
    let node = TestNode::start_with(|c| c.node.checkpoint_interval_ms = 50).await;
    let (case_id, _) = scene(&node).await;
    let (mut child, url) = console(&node);
    let (addr, token) = address_and_token(&url);

    let checked = tokio::task::spawn_blocking(move || {
        // The guard, from outside the page.
        let host = addr.to_string();
        let (s, _) = http(addr, "GET", "/api/checkpoint", &[("Host", &host)], None);
        assert_eq!(s, 403, "no token, no answer");
        let (s, _) = http(addr, "GET", "/api/checkpoint", &[("Host", &host), ("x-sluis-console-token", "0")], None);
        assert_eq!(s, 403, "a wrong token, no answer");
        let (s, _) = http(addr, "GET", "/api/checkpoint", &[("Host", &format!("evil.example:{}", addr.port())), ("x-sluis-console-token", &token)], None);
        assert_eq!(s, 421, "another Host (DNS rebinding), no answer");
        let (s, body) = http(addr, "GET", "/api/checkpoint", &[("Host", &host), ("x-sluis-console-token", &token)], None);
        assert_eq!(s, 200, "{body}");

        let b = Browser::start();
        b.go(&url);
        // Integrity at a glance: the checkpoint's signature checked in the page.
        let verdict = b.wait("the checkpoint's verdict", "const v = document.querySelector('#integrity-verdict'); return v && v.textContent");
        assert!(
            verdict.as_str().unwrap().contains("signature valid"),
            "{verdict}: {}",
            b.js("return document.querySelector('#integrity-verdict').dataset.why", json!([]))
        );

        // Filter: one case, one participant, dates alone.
        let today = time::OffsetDateTime::now_utc().date().to_string();
        b.type_into("input[name=since]", &today);
        b.type_into("input[name=until]", &today);
        b.type_into("input[name=case]", &case_id);
        b.type_into("input[name=participant]", NGO);
        b.click("#apply");
        let rows = b.wait("the filtered rows", &format!(
            "const r = [...document.querySelectorAll('#log tbody tr[data-index]')]; \
             return r.length === 6 && r.every(x => x.textContent.includes('{NGO}')) && r.length"));
        assert_eq!(rows, json!(6), "one read and five refusals of the case by the NGO");
        b.screenshot("log.png");

        // Open the allowed read: every field, the basis per category, the proof.
        b.click("#log tbody tr.d-partial");
        let verified = b.wait("the proof's verdict", "const v = document.querySelector('#proof-verdict'); return v && v.dataset.verified");
        assert_eq!(verified, json!("yes"), "{}", b.js("return document.querySelector('#entry').innerText", json!([])));
        let basis = b.js("const r = document.querySelector('#basis tr[data-category=shelter]'); return r ? r.innerText : document.querySelector('#entry').innerText", json!([]));
        assert!(basis.as_str().unwrap().contains("Consent"), "shelter released under consent: {basis}");
        let fields = b.js("return document.querySelector('#entry .fields').innerText", json!([])).as_str().unwrap().to_string();
        for f in ["request_id", "asked", "withheld", "rules", "consents", "subject"] {
            assert!(fields.contains(f), "field {f} shown");
        }
        b.screenshot("entry.png");

        // AVIM's read: safety on the rule's legal basis.
        b.js("document.querySelector('#filters').reset(); return true", json!([]));
        b.type_into("input[name=participant]", AVIM);
        b.click("#apply");
        b.wait(
            "AVIM's read",
            &format!(
                "const r = [...document.querySelectorAll('#log tbody tr[data-index]')]; \
                 return r.length && r.every(x => x.textContent.includes('{AVIM}'))"
            ),
        );
        b.click("#log tbody tr.d-partial");
        b.wait("the proof's verdict", "const v = document.querySelector('#proof-verdict'); return v && v.dataset.verified === 'yes'");
        let basis = b.js("const r = document.querySelector('#basis tr[data-category=safety]'); return r ? r.innerText : document.querySelector('#entry').innerText", json!([]));
        assert!(basis.as_str().unwrap().contains("Legal basis"), "{basis}");
        assert!(basis.as_str().unwrap().contains("avim-safety"), "{basis}");

        // Charts and alerts over the whole log.
        b.js("document.querySelector('#filters').reset(); return true", json!([]));
        b.click("#apply");
        b.click("nav button[data-tab=charts]");
        b.wait("the charts", "return document.querySelectorAll('#charts svg rect').length > 5");
        for id in ["chart-decision", "chart-role", "chart-withheld", "chart-top"] {
            assert!(b.js(&format!("return !!document.getElementById('{id}')"), json!([])) == json!(true), "{id}");
        }
        assert_eq!(
            b.js("return document.querySelector('#charts-cut')", json!([])),
            Value::Null,
            "every matching entry counted: no notice of a cut"
        );
        let top = b.js("return document.getElementById('chart-top').textContent", json!([]));
        assert!(top.as_str().unwrap().contains(NGO), "{top}");
        b.screenshot("charts.png");
        b.click("nav button[data-tab=alerts]");
        let kinds = b.wait("the alerts", "const a = [...document.querySelectorAll('#alerts .alert')].map(x => x.dataset.kind); return a.length && a");
        for kind in ["al_rate", "al_denials", "al_special"] {
            assert!(kinds.as_array().unwrap().iter().any(|k| k == kind), "{kind} in {kinds}");
        }
        b.screenshot("alerts.png");

        // The emergency access: listed, with its justification, until the
        // officer closes it with a verdict.
        let open = b.wait("the open emergency alert", "const a = document.querySelector('#emergency .alert.emergency'); return a && a.innerText");
        assert!(open.as_str().unwrap().contains(URGENT), "{open}");
        // Its entry: the emergency basis with the justification, from the
        // leaf the page verified.
        b.click("#emergency .alert.emergency a.entry-link");
        b.wait("the emergency entry's proof", "const v = document.querySelector('#proof-verdict'); return v && v.dataset.verified === 'yes'");
        let basis = b.js("const r = document.querySelector('#basis tr[data-category=shelter] td[data-basis=emergency]'); return r ? r.innerText : document.querySelector('#entry').innerText", json!([]));
        assert!(basis.as_str().unwrap().contains(URGENT), "{basis}");
        b.click("nav button[data-tab=alerts]");
        b.wait("the open emergency alert", "return !!document.querySelector('#emergency form.close-alert')");
        b.type_into("#emergency form.close-alert input[name=note]", "threat confirmed by the shelter; in proportion");
        b.js("document.querySelector('#emergency select[name=verdict]').value = 'justified'; return true", json!([]));
        b.screenshot("emergency.png");
        b.click("#emergency form.close-alert button");
        let closed = b.wait("the closed alert", "const c = document.querySelector('#emergency .closed'); return c && c.textContent");
        assert!(closed.as_str().unwrap().contains('#'), "{closed}");
        b.click("nav button[data-tab=log]");
        b.click("nav button[data-tab=alerts]");
        b.wait("no emergency open", "return !!document.querySelector('#no-emergency')");
        b.wait("the alerts again", "return !!document.querySelector('#alerts .alert.al_special a.entry-link')");
        // An alert links to its entries.
        b.click("#alerts .alert.al_special a.entry-link");
        b.wait("the linked entry", "const v = document.querySelector('#proof-verdict'); return v && v.dataset.verified === 'yes'");

        // The subject report, in Dutch, by V-number.
        b.click("nav button[data-tab=report]");
        b.js("const s = document.querySelector('#lang'); s.value = 'nl'; s.dispatchEvent(new Event('change')); return true", json!([]));
        b.js("document.querySelector('select[name=kind]').value = 'v_number'; return true", json!([]));
        b.type_into("#report-form input[name=value]", "1234567890");
        b.click("#make-report");
        let report = b.wait("the report", "const r = document.querySelector('#report'); return r.querySelector('li') && r.innerText");
        let report = report.as_str().unwrap();
        assert!(report.contains("Wie zag mijn gegevens"), "{report}");
        assert!(report.contains("vroeg om uw dossier in te zien met als doel \"opvang\". Gedeeld: opvang."), "{report}");
        assert!(!report.contains("1234567890") && !report.contains("Test Persoon"));
        let positions = b.js("return [...document.querySelectorAll('#report li .pos')].every(p => /^#\\d+$/.test(p.textContent))", json!([]));
        assert_eq!(positions, json!(true), "every line with its log position");
        b.screenshot("report-nl.png");
        // An unknown subject is said plainly.
        b.type_into("#report-form input[name=value]", "9999999999");
        b.click("#make-report");
        let said = b.wait("the unknown subject", "return document.querySelector('#report-error').textContent");
        assert!(said.as_str().unwrap().contains("no case is registered for this subject"), "{said}");
    })
    .await;
    let _ = child.kill();
    let _ = child.wait();
    checked.unwrap();
    // The verdict given in the page is the node's record.
    let review = node
        .wait_for_log(|r| r.method == "CloseEmergencyAlert")
        .await;
    let review = sluis::tlog::AccessRecord::decode(&review.record)
        .unwrap()
        .review
        .unwrap();
    assert_eq!(review.verdict, sluis::tlog::Verdict::Justified);
    for shot in [
        "log.png",
        "entry.png",
        "charts.png",
        "alerts.png",
        "emergency.png",
        "report-nl.png",
    ] {
        let bytes = std::fs::read(screenshots().join(shot)).unwrap();
        assert!(bytes.starts_with(b"\x89PNG"), "{shot} is a PNG");
    }
}

/// The console's listing of emergency alerts is paged with a bound
/// (AIP-158): open or closed ones too, one page of at most `page_size`
/// with the token of the next; a page size out of bounds is refused with
/// the bound, not answered with everything the log holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emergency_alert_listing_is_paged_with_a_bound() {
    let node = TestNode::start().await;
    let (case_id, _) = scene(&node).await;
    // A second emergency access: two alerts to page through.
    node.client(AVIM)
        .await
        .cases
        .get_case(with_actor(pb::GetCaseRequest {
            categories: vec![pb::Category::Shelter as i32],
            emergency_justification: URGENT.into(),
            ..by_id(&case_id, "case_consultation")
        }))
        .await
        .unwrap();
    let (mut child, url) = console(&node);
    let (addr, token) = address_and_token(&url);
    let answers = tokio::task::spawn_blocking(move || {
        let host = addr.to_string();
        let get = |q: &str| {
            let (status, body) = http(
                addr,
                "GET",
                &format!("/api/emergency?{q}"),
                &[("Host", &host), ("x-sluis-console-token", &token)],
                None,
            );
            (status, serde_json::from_str::<Value>(&body).unwrap())
        };
        let mut pages = Vec::new();
        for closed in ["", "closed=1&"] {
            let first = get(&format!("{closed}page_size=1"));
            let next = first.1["next_page_token"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let second = get(&format!("{closed}page_size=1&page_token={next}"));
            pages.push((closed, first, second));
        }
        let refused =
            ["page_size=0", "page_size=1001", "closed=1&page_size=99999"].map(|q| (q, get(q)));
        (pages, refused)
    })
    .await
    .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let (pages, refused) = answers;
    for (closed, (s1, first), (s2, second)) in pages {
        assert_eq!((s1, s2), (200, 200), "{closed}: {first} {second}");
        assert_eq!(
            first["alerts"].as_array().unwrap().len(),
            1,
            "{closed}: {first}"
        );
        assert!(
            !first["next_page_token"].as_str().unwrap().is_empty(),
            "{closed}: a second page: {first}"
        );
        assert_eq!(
            second["alerts"].as_array().unwrap().len(),
            1,
            "{closed}: {second}"
        );
        assert_ne!(
            first["alerts"][0]["access"]["index"], second["alerts"][0]["access"]["index"],
            "{closed}"
        );
        assert_eq!(
            second["next_page_token"], "",
            "{closed}: the last page: {second}"
        );
    }
    for (q, (status, body)) in refused {
        assert_eq!(status, 400, "{q}: {body}");
        let message = body["error"].as_str().unwrap();
        assert!(
            message.starts_with("page_size") && message.contains("1000"),
            "{q}: {message}"
        );
    }
}

/// Charts and alerts are computed over at most `--chart-entries` matching
/// entries; when more match, the page says so — visibly, over which
/// entries it counted — in English and in Dutch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(has_chromium),
    ignore = "needs Chromium and chromedriver from the distribution (Debian: apt-get install chromium chromium-driver; .ci/run installs them)"
)]
async fn charts_and_alerts_say_when_they_count_only_part_of_the_entries() {
    let node = TestNode::start().await;
    scene(&node).await;
    let (mut child, url) = console_with(&node, &["--chart-entries", "5"]);
    let checked = tokio::task::spawn_blocking(move || {
        let b = Browser::start();
        b.go(&url);
        b.wait("the page", "return !!document.querySelector('nav button[data-tab=charts]')");
        b.click("nav button[data-tab=charts]");
        let en = b.wait(
            "the notice of the cut",
            "const c = document.querySelector('#charts-cut'); return c && c.offsetParent !== null && c.textContent",
        );
        let en = en.as_str().unwrap().to_string();
        b.screenshot("charts-cut.png");
        b.click("nav button[data-tab=alerts]");
        let alerts = b.wait(
            "the notice on the alerts",
            "const c = document.querySelector('#alerts-cut'); return c && c.offsetParent !== null && c.textContent",
        );
        b.click("nav button[data-tab=charts]");
        b.js("const s = document.querySelector('#lang'); s.value = 'nl'; s.dispatchEvent(new Event('change')); return true", json!([]));
        let nl = b.wait(
            "the Dutch notice",
            "const c = document.querySelector('#charts-cut'); return c && c.offsetParent !== null && c.textContent.startsWith('Alleen') && c.textContent",
        );
        (en, alerts.as_str().unwrap().to_string(), nl.as_str().unwrap().to_string())
    })
    .await;
    let _ = child.kill();
    let _ = child.wait();
    let (en, alerts, nl) = checked.unwrap();
    assert!(
        en.contains("first 5 matching entries only") && en.contains("through entry #4"),
        "{en}"
    );
    assert_eq!(alerts, en);
    assert!(
        nl.contains("eerste 5 regels") && nl.contains("tot en met regel #4"),
        "{nl}"
    );
}

/// The statistics page: the privacy officer may not ask for statistics
/// (the policy gives the role no rule for them), but sees every table the
/// node keeps (what the monitor and the municipalities got, or will get)
/// — the figures, "< 10" and "x" with the legend, the release's SHA-256
/// that the monitor's access record names, and the date it was computed —
/// drawn as charts. Reading them is an access record of its own, and only
/// a privacy officer may read them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(has_chromium),
    ignore = "needs Chromium and chromedriver from the distribution (Debian: apt-get install chromium chromium-driver; .ci/run installs them)"
)]
async fn the_officer_sees_the_published_statistics_as_charts() {
    let node = TestNode::start().await;
    let mut utrecht = node.client(GEMEENTE).await;
    use pb::PerspectiveKind as P;
    let mix = [
        (P::Legalisation, 34),
        (P::Return, 21),
        (P::OnwardMigration, 4),
    ];
    register_intakes(&mut utrecht, &mix, 0, 7_200_000_000).await;
    let ask = pb::GetStatisticsRequest {
        table: pb::StatisticsTable::Inflow as i32,
        year: 2025,
        quarter: 1,
        by_municipality: false,
        purpose: "monitoring".into(),
        network: false,
    };
    let mut monitor = node.client("monitor-jenv").await;
    let got = monitor
        .stats
        .get_statistics(ask.clone())
        .await
        .expect("the monitor's table")
        .into_inner();
    // The quarter's outcomes too: another release of the quarter, with
    // notes of its own.
    let outcomes = monitor
        .stats
        .get_statistics(pb::GetStatisticsRequest {
            table: pb::StatisticsTable::DurableSolutions as i32,
            ..ask.clone()
        })
        .await
        .expect("the monitor's outcome table")
        .into_inner();
    let mut officer = node.client(OFFICER).await;
    let e = officer
        .stats
        .get_statistics(with_actor(ask))
        .await
        .expect_err("no statistics for the privacy officer");
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{}", e.message());
    // Only a privacy officer lists the releases.
    let e = monitor
        .audit
        .list_statistics_releases(pb::ListStatisticsReleasesRequest::default())
        .await
        .expect_err("the monitor may not list releases");
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{}", e.message());
    let listed = officer
        .audit
        .list_statistics_releases(pb::ListStatisticsReleasesRequest {
            quarter: "2025Q1".into(),
            ..Default::default()
        })
        .await
        .expect("the officer lists the releases")
        .into_inner();
    let same = listed
        .releases
        .iter()
        .find(|r| r.release_sha256 == got.release_sha256)
        .expect("the monitor's release is listed");
    assert_eq!(same.table.as_ref().unwrap().figures, got.figures);
    assert_eq!(same.as_of, got.as_of);
    assert!(
        listed.releases.iter().all(|r| r.breakdown != "own"),
        "a municipality's own tables only when asked for"
    );

    let (mut child, url) = console(&node);
    let sha = got.release_sha256.clone();
    let outcomes_sha = outcomes.release_sha256.clone();
    let outcomes_note = outcomes
        .text
        .lines()
        .find(|l| l.starts_with("< 10") || l.starts_with("x: every figure"))
        .unwrap()
        .to_string();
    let shown: Vec<String> = got.figures.iter().map(|f| f.shown.clone()).collect();
    let english: Vec<String> = [&got.rows, &got.columns]
        .into_iter()
        .flat_map(|a| a.as_ref().unwrap().labels.iter().map(|l| l.words.clone()))
        .chain([got.title.clone()])
        .collect();
    let checked = tokio::task::spawn_blocking(move || {
        let b = Browser::start();
        b.go(&url);
        b.click("nav button[data-tab=statistics]");
        b.wait(
            "the quarters published",
            "const s = document.querySelector('#stats-quarter'); return s && s.options.length > 0 && s.value",
        );
        let release = b.wait(
            "the monitor's release",
            &format!("const r = document.querySelector('#statistics .release[data-sha256=\"{sha}\"]'); return r && r.innerText"),
        );
        let release = release.as_str().unwrap();
        assert!(release.contains(&sha), "the SHA-256 shown: {release}");
        assert!(release.contains("as of 20"), "{release}");
        assert!(release.contains("Inflow"), "{release}");
        for f in &shown {
            assert!(release.contains(f.as_str()), "{f} in {release}");
        }
        let bars = b.js(
            &format!("return document.querySelectorAll('#statistics .release[data-sha256=\"{sha}\"] svg.stat-chart rect.bar').length"),
            json!([]),
        );
        assert!(bars.as_u64().unwrap() > 0, "a chart of the figures");
        // Each release has its own notes under it, the ones its text
        // gives (for a release whose every figure is "x", the note that
        // says so: `console::api`'s tests), and no page-wide legend.
        let note = |sha: &str| {
            let n = b.js(
                &format!("return document.querySelector('#statistics .release[data-sha256=\"{sha}\"] .legend-text').innerText"),
                json!([]),
            );
            n.as_str().unwrap().to_string()
        };
        let legend = note(&sha);
        assert!(legend.contains("< 10"), "{legend}");
        assert!(legend.contains("node total"), "{legend}");
        let own = note(&outcomes_sha);
        assert!(own.starts_with(&outcomes_note), "{own} / {outcomes_note}");
        let page_wide = b.js("return document.querySelector('#stats-legend') === null", json!([]));
        assert_eq!(page_wide, json!(true), "one legend for every release");
        // No label of a chart is cut off at its edge: each lies within
        // the chart's drawing.
        let clipped = b.js(
            "const out = []; for (const svg of document.querySelectorAll('svg.stat-chart')) { const w = svg.viewBox.baseVal.width; for (const t of svg.querySelectorAll('text')) { const bb = t.getBBox(); if (bb.x < 0 || bb.x + bb.width > w) out.push(t.textContent + ' ' + bb.x + '+' + bb.width + ' > ' + w); } } return out",
            json!([]),
        );
        assert_eq!(clipped, json!([]), "labels cut off at the chart's edge");
        b.screenshot("statistics.png");
        // In Dutch: every heading, title and note of the tab.
        b.js("const s = document.querySelector('#lang'); s.value = 'nl'; s.dispatchEvent(new Event('change')); return true", json!([]));
        b.wait(
            "the Dutch tables",
            "const h = document.querySelector('#statistics .release h3'); return h && h.innerText.startsWith('Instroom') && h.innerText",
        );
        let headings = b.js(
            "return [...document.querySelectorAll('#tab-statistics th, #tab-statistics caption, #tab-statistics h3, #tab-statistics svg text.legend, #tab-statistics label, #tab-statistics .hint, #tab-statistics .legend-text, #tab-statistics .provenance')].map(e => e.textContent)",
            json!([]),
        );
        let headings: Vec<String> = serde_json::from_value(headings).unwrap();
        assert!(headings.len() > 10, "{headings:?}");
        for h in &headings {
            for en in &english {
                // The municipality's own name is the same in both.
                if en.is_empty() || en.starts_with("Gemeente") || en.starts_with("gemeente") {
                    continue;
                }
                assert!(
                    !h.split([':', ',', '—', '·']).any(|part| part.trim() == en.as_str()),
                    "English {en:?} in the Dutch page: {h:?}"
                );
            }
        }
        assert!(note(&sha).contains("minder dan 10"), "{}", note(&sha));
        b.screenshot("statistics-nl.png");
    })
    .await;
    let _ = child.kill();
    let _ = child.wait();
    checked.unwrap();
    let read = node
        .wait_for_log(|r| {
            r.method == "ListStatisticsReleases" && r.caller == OFFICER && r.decision == "allowed"
        })
        .await;
    let rec = sluis::tlog::AccessRecord::decode(&read.record).unwrap();
    assert!(rec.detail.contains("2025Q1"), "{}", rec.detail);
    let bytes = std::fs::read(screenshots().join("statistics.png")).unwrap();
    assert!(bytes.starts_with(b"\x89PNG"));
}
