//! The layering rules of ARCHITECTURE.md, checked over the source tree.
//!
//! Each subsystem keeps one kind of foreign type to itself, so that a
//! change of TLS library, wire format or database driver stays in one
//! folder, and so that a reader of the request path never meets a
//! certificate, a protobuf message or a SQL row:
//!
//! - only `src/net/` names rustls, certificates or the certificate tooling;
//! - only `src/rpc/` names protobuf types (the gateway sees category
//!   payloads as opaque bytes); `src/dev/` is the exception, because the
//!   demo is a gRPC *client* of a node, as agency back-ends and the tests are;
//! - only `src/store/` names a database driver.
//!
//! Comments are not code: a doc comment may name what a module avoids.

use std::path::{Path, PathBuf};

struct Rule {
    /// What the rule keeps inside its folders.
    what: &'static str,
    /// Folders (relative to `src/`) where the names are allowed.
    allowed_in: &'static [&'static str],
    /// Names (whole words or paths) that must not appear elsewhere.
    names: &'static [&'static str],
}

const RULES: &[Rule] = &[
    Rule {
        what: "rustls or certificate types",
        allowed_in: &["net/"],
        names: &[
            "rustls",
            "tokio_rustls",
            "rustls_pki_types",
            "rcgen",
            "webpki",
            "CertificateDer",
            "CertificateRevocationListDer",
            "PrivateKeyDer",
            "ClientTlsConfig",
            "ServerTlsConfig",
            "tonic::transport::Certificate",
            "tonic::transport::Identity",
        ],
    },
    Rule {
        what: "protobuf types",
        allowed_in: &["rpc/", "dev/"],
        names: &["prost", "prost_types", "tonic_prost", "proto::v1", "pb::"],
    },
    Rule {
        what: "a database driver",
        allowed_in: &["store/"],
        names: &["sqlx", "rusqlite", "libsqlite3_sys"],
    },
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src/") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The line without its comment (good enough for this code base: no
/// string literal here holds `//` followed by a forbidden name).
fn code_of(line: &str) -> &str {
    let trimmed = line.trim_start();
    if trimmed.starts_with("//") {
        return "";
    }
    match line.find("//") {
        Some(i) if !line[..i].contains('"') => &line[..i],
        _ => line,
    }
}

/// Whether `name` stands in `code` as a word (not inside a longer
/// identifier such as `my_rustls_thing`).
fn names(code: &str, name: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    code.match_indices(name).any(|(i, _)| {
        let before = code[..i].chars().next_back();
        let after = code[i + name.len()..].chars().next();
        before.is_none_or(|c| !word(c)) && (name.ends_with(':') || after.is_none_or(|c| !word(c)))
    })
}

#[test]
fn foreign_types_stay_in_their_subsystem() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    assert!(files.len() > 10, "expected the source tree under {src:?}");
    let mut breaches = Vec::new();
    for file in &files {
        let rel = file
            .strip_prefix(&src)
            .expect("under src/")
            .to_string_lossy()
            .replace('\\', "/");
        let text = std::fs::read_to_string(file).expect("read source file");
        for rule in RULES {
            if rule.allowed_in.iter().any(|dir| rel.starts_with(dir)) {
                continue;
            }
            for (n, line) in text.lines().enumerate() {
                let code = code_of(line);
                for name in rule.names {
                    if names(code, name) {
                        breaches.push(format!(
                            "src/{rel}:{}: names {} (`{name}`), which only {} may",
                            n + 1,
                            rule.what,
                            rule.allowed_in.join(" and ")
                        ));
                    }
                }
            }
        }
    }
    assert!(
        breaches.is_empty(),
        "layering rules broken:\n{}",
        breaches.join("\n")
    );
}

#[test]
fn the_checker_sees_what_it_must() {
    // The rule test above passes on an empty match; this one shows the
    // matcher finds what it looks for and ignores what it should.
    assert!(names("use rustls::ServerConfig;", "rustls"));
    assert!(names("let x: sqlx::PgPool;", "sqlx"));
    assert!(names("pb::CaseData::default()", "pb::"));
    assert!(!names("let my_rustls_thing = 1;", "rustls"));
    assert!(!names("let pbx::y = 1;", "pb::"));
    assert_eq!(code_of("    //! only net/ names rustls"), "");
    assert_eq!(code_of("let a = 1; // rustls"), "let a = 1; ");
}
