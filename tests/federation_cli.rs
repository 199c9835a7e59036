//! `sluis federation` as the network operator uses it: make the key, sign a
//! directory from its TOML source, verify and show it; every mistake says
//! what to fix.

use std::path::Path;
use std::process::{Command, Output};

fn sluis(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluis"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `sluis federation sign --key fed.key --source SOURCE --out OUT` in `dir`.
fn sign(source: &str, out: &str, dir: &Path) -> Output {
    sluis(
        &[
            "federation",
            "sign",
            "--key",
            "fed.key",
            "--source",
            source,
            "--out",
            out,
        ],
        dir,
    )
}

fn source(network: &str, not_after: &str) -> String {
    format!(
        r#"network = "{network}"
serial = 7
not_before = "2020-01-01T00:00:00Z"
not_after = "{not_after}"

[[node]]
id = "gm0344"
municipality_code = "GM0344"
municipality = "Utrecht"
endpoint = "sluis.utrecht.example:7444"
server_name = "sluis.utrecht.example"
tls_spki_sha256 = "{spki}"
tls_ca_sha256 = "{ca}"
log_key = "{log_key}"
host = [{{ participant = "ind", role = "ind" }}]
"#,
        spki = "a".repeat(64),
        ca = "b".repeat(64),
        log_key = sluis::tlog::note::verifier_key("gm0344", &[1; 32]),
    )
}

#[test]
fn keygen_sign_verify_show() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let help = sluis(&["federation", "--help"], d);
    assert!(help.status.success());
    for sub in ["keygen", "sign", "verify", "show"] {
        assert!(text(&help).contains(sub), "{sub} in --help");
    }

    let out = sluis(
        &[
            "federation",
            "keygen",
            "--network",
            "lvv",
            "--out",
            "fed.key",
        ],
        d,
    );
    assert!(out.status.success(), "{}", text(&out));
    let vkey = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap()
        .to_string();
    assert!(vkey.starts_with("lvv+"), "{vkey}");
    // The key is never overwritten.
    let again = sluis(
        &[
            "federation",
            "keygen",
            "--network",
            "lvv",
            "--out",
            "fed.key",
        ],
        d,
    );
    assert!(!again.status.success());
    // A network name with an invisible direction override is refused: it
    // names the key in every signature of every directory.
    let odd = sluis(
        &[
            "federation",
            "keygen",
            "--network",
            "lvv\u{202e}x",
            "--out",
            "odd.key",
        ],
        d,
    );
    assert!(!odd.status.success());
    assert!(text(&odd).contains("a-z, 0-9"), "{}", text(&odd));
    assert!(!d.join("odd.key").exists());

    std::fs::write(d.join("dir.toml"), source("lvv", "2099-01-01T00:00:00Z")).unwrap();
    let out = sluis(
        &[
            "federation",
            "sign",
            "--key",
            "fed.key",
            "--source",
            "dir.toml",
            "--out",
            "dir.note",
        ],
        d,
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("serial 7"), "{}", text(&out));

    let out = sluis(&["federation", "verify", "--key", &vkey, "dir.note"], d);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("directory verified"));

    let out = sluis(&["federation", "show", "--key", &vkey, "dir.note"], d);
    assert!(out.status.success(), "{}", text(&out));
    let shown = text(&out);
    assert!(shown.contains("signature verified"), "{shown}");
    assert!(shown.contains("gm0344 — Utrecht (GM0344)"), "{shown}");
    assert!(shown.contains("ind (ind)"), "{shown}");
    let out = sluis(&["federation", "show", "dir.note"], d);
    assert!(text(&out).contains("NOT checked"), "{}", text(&out));

    // A changed byte, or another key, does not verify.
    let note = std::fs::read_to_string(d.join("dir.note")).unwrap();
    std::fs::write(d.join("bad.note"), note.replace("Utrecht", "Utrecht2")).unwrap();
    let out = sluis(&["federation", "verify", "--key", &vkey, "bad.note"], d);
    assert!(!out.status.success());
    assert!(text(&out).contains("NOT verified"), "{}", text(&out));
    let out = sluis(&["federation", "show", "--key", &vkey, "bad.note"], d);
    assert!(!out.status.success(), "show --key refuses a bad signature");

    // A source whose validity has ended is not signed: no node would take
    // it. Nothing is written.
    std::fs::write(d.join("old.toml"), source("lvv", "2021-01-01T00:00:00Z")).unwrap();
    let out = sign("old.toml", "old.note", d);
    assert!(!out.status.success(), "an expired source was signed");
    assert!(
        text(&out).contains("not_after 2021-01-01T00:00:00Z has passed"),
        "{}",
        text(&out)
    );
    assert!(!d.join("old.note").exists());
    // Nor one whose validity ends before it begins.
    std::fs::write(
        d.join("inverted.toml"),
        source("lvv", "2099-01-01T00:00:00Z").replace(
            "not_before = \"2020-01-01T00:00:00Z\"",
            "not_before = \"2099-06-01T00:00:00Z\"",
        ),
    )
    .unwrap();
    let out = sign("inverted.toml", "inverted.note", d);
    assert!(!out.status.success(), "an inverted source was signed");
    assert!(
        text(&out).contains("not_after") && text(&out).contains("later than not_before"),
        "{}",
        text(&out)
    );
    assert!(!d.join("inverted.note").exists());

    // An expired directory (signed earlier, when it was current) verifies
    // as signed but is not valid, and show says so.
    let old = sluis::federation::directory::Directory::from_toml(
        &std::fs::read_to_string(d.join("old.toml")).unwrap(),
    )
    .unwrap();
    let key = sluis::federation::FederationKey::load(&d.join("fed.key")).unwrap();
    std::fs::write(
        d.join("old.note"),
        sluis::federation::directory::sign(&old, &key).unwrap(),
    )
    .unwrap();
    let out = sluis(&["federation", "show", "--key", &vkey, "old.note"], d);
    assert!(
        text(&out).contains("NOT valid: expired at 2021-01-01T00:00:00Z"),
        "{}",
        text(&out)
    );
    let out = sluis(&["federation", "verify", "--key", &vkey, "old.note"], d);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("expired at 2021-01-01T00:00:00Z"),
        "{}",
        text(&out)
    );

    // Mistakes in the source name the field and the fix; nothing is written.
    std::fs::write(
        d.join("other.toml"),
        source("other", "2099-01-01T00:00:00Z"),
    )
    .unwrap();
    let out = sluis(
        &[
            "federation",
            "sign",
            "--key",
            "fed.key",
            "--source",
            "other.toml",
            "--out",
            "x.note",
        ],
        d,
    );
    assert!(!out.status.success());
    assert!(
        text(&out).contains("use that network's key"),
        "{}",
        text(&out)
    );
    std::fs::write(
        d.join("typo.toml"),
        source("lvv", "2099-01-01T00:00:00Z").replace("GM0344\"", "0344\""),
    )
    .unwrap();
    let out = sluis(
        &[
            "federation",
            "sign",
            "--key",
            "fed.key",
            "--source",
            "typo.toml",
            "--out",
            "x.note",
        ],
        d,
    );
    assert!(!out.status.success());
    assert!(
        text(&out).contains("node[0].municipality_code")
            && text(&out).contains("GM and four digits"),
        "{}",
        text(&out)
    );
    assert!(!d.join("x.note").exists());
    // A checkpoint key shaped like one but no key (not base64 of an
    // Ed25519 key with its key id) is refused: no checkpoint of that node
    // could ever verify against it.
    std::fs::write(
        d.join("badkey.toml"),
        source("lvv", "2099-01-01T00:00:00Z").replace(
            &sluis::tlog::note::verifier_key("gm0344", &[1; 32]),
            "gm0344+0a1b2c3d+AQ",
        ),
    )
    .unwrap();
    let out = sluis(
        &[
            "federation",
            "sign",
            "--key",
            "fed.key",
            "--source",
            "badkey.toml",
            "--out",
            "x.note",
        ],
        d,
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("node[0].log_key") && text(&out).contains("not a valid key"),
        "{}",
        text(&out)
    );
    assert!(!d.join("x.note").exists());
    // The municipality's name is signed and shown as given: a line
    // separator, a direction override or a no-break space in it is refused.
    for odd in [
        "Utrecht\u{2028}node evil",
        "Amsterdam\u{202e}\u{2066}x",
        "Den\u{a0}Haag",
    ] {
        std::fs::write(
            d.join("odd.toml"),
            source("lvv", "2099-01-01T00:00:00Z").replace(
                "municipality = \"Utrecht\"",
                &format!("municipality = \"{odd}\""),
            ),
        )
        .unwrap();
        let out = sluis(
            &[
                "federation",
                "sign",
                "--key",
                "fed.key",
                "--source",
                "odd.toml",
                "--out",
                "x.note",
            ],
            d,
        );
        assert!(!out.status.success(), "{odd:?} was signed");
        assert!(
            text(&out).contains("node[0].municipality") && text(&out).contains("printable"),
            "{}",
            text(&out)
        );
        assert!(!d.join("x.note").exists());
    }
}
