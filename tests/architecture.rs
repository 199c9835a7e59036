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
//!
//! A name is found however it is brought in: written out on a line, inside
//! a grouped import (`use tonic::transport::{Certificate, Identity}` over
//! one line or several), renamed (`use crate::rpc::proto::v1 as wire`), or
//! behind a glob or an alias of a module that holds one
//! (`use tonic::transport::*`, `use tonic::transport as t`).

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
            // The same, through `use tonic::transport;`.
            "transport::Certificate",
            "transport::Identity",
        ],
    },
    Rule {
        what: "protobuf types",
        allowed_in: &["rpc/", "dev/"],
        // `rpc::proto` is the generated code; `proto::` and `pb::` are how
        // a path into it reads, however the module was brought in.
        names: &[
            "prost",
            "prost_types",
            "tonic_prost",
            "rpc::proto",
            "proto::",
            "pb::",
        ],
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

/// The code of a file: its lines without comments, joined.
fn code_text(text: &str) -> String {
    text.lines().map(code_of).collect::<Vec<_>>().join("\n")
}

/// One path a `use` declaration brings in.
#[derive(Debug, PartialEq)]
struct Imported {
    /// The full path (`tonic::transport::Certificate`, `a::b::*`).
    path: String,
    /// Whether it is renamed (`as x`).
    renamed: bool,
    /// The 1-based line of its `use`.
    line: usize,
}

/// Every path the `use` declarations of `code` bring in, groups expanded:
/// `use a::{b, c::{d as e, *}};` gives `a::b`, `a::c::d` (renamed) and
/// `a::c::*`.
fn imports(code: &str) -> Vec<Imported> {
    let mut out = Vec::new();
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    for (at, _) in code.match_indices("use ") {
        // The `use` keyword where a declaration can start (after another
        // item, an attribute or a visibility), not the end of a longer word
        // or a word in a string.
        let before = code[..at].trim_end();
        let starts = before.is_empty()
            || before.ends_with([';', '{', '}', ']', ')'])
            || before.ends_with("pub") && !before[..before.len() - 3].ends_with(word);
        if !starts || code[..at].chars().next_back().is_some_and(word) {
            continue;
        }
        let Some(len) = code[at..].find(';') else {
            continue;
        };
        let tree = &code[at + "use ".len()..at + len];
        let tree_chars = |c: char| word(c) || c.is_whitespace() || ":{},*".contains(c);
        if !tree.chars().all(tree_chars) {
            continue;
        }
        let line = code[..at].matches('\n').count() + 1;
        let mut paths = Vec::new();
        expand("", tree, &mut paths);
        out.extend(paths.into_iter().map(|(path, renamed)| Imported {
            path,
            renamed,
            line,
        }));
    }
    out
}

/// Expands one use tree under `prefix` into (path, renamed) pairs.
fn expand(prefix: &str, tree: &str, out: &mut Vec<(String, bool)>) {
    let tree = tree.trim();
    let join = |rest: &str| match (prefix.is_empty(), rest) {
        (_, "self") => prefix.to_string(),
        (true, _) => rest.to_string(),
        (false, _) => format!("{prefix}::{rest}"),
    };
    let Some(open) = tree.find('{') else {
        // A leaf: a path, maybe renamed.
        let mut words = tree.split_whitespace();
        let path: String = words.next().unwrap_or_default().to_string();
        let renamed = words.next() == Some("as");
        if !path.is_empty() {
            out.push((join(&path), renamed));
        }
        return;
    };
    let Some(close) = tree.rfind('}') else {
        return;
    };
    let base = tree[..open].trim().trim_end_matches("::");
    let base = if base.is_empty() {
        prefix.to_string()
    } else {
        join(base)
    };
    // Split the group at its top-level commas.
    let (mut depth, mut start) = (0, open + 1);
    let inner = &tree[..close];
    for (i, c) in inner.char_indices().skip(open + 1) {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                expand(&base, &inner[start..i], out);
                start = i + 1;
            }
            _ => {}
        }
    }
    expand(&base, &inner[start..], out);
}

/// Whether a glob of `module`, or `module` renamed, reaches the forbidden
/// path `name`: the module is a leading part of it (`tonic::transport` for
/// `tonic::transport::Certificate`, `crate::rpc` for `rpc::proto`).
fn reaches(module: &str, name: &str) -> bool {
    let name: Vec<&str> = name.split("::").filter(|s| !s.is_empty()).collect();
    let module: Vec<&str> = module.split("::").collect();
    (1..name.len()).any(|k| module.ends_with(&name[..k]))
}

/// Where `text` (a file's source) names something of `rule`.
fn breaches_of(text: &str, rule: &Rule) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = code_of(line);
        for name in rule.names {
            if names(code, name) {
                found.push((n + 1, format!("`{name}`")));
            }
        }
    }
    for import in imports(&code_text(text)) {
        let module = import.path.strip_suffix("::*");
        for name in rule.names {
            if names(&import.path, name) {
                found.push((import.line, format!("`{name}` in `use {}`", import.path)));
            } else if let Some(module) = module.filter(|m| reaches(m, name)) {
                found.push((import.line, format!("`{name}` through `use {module}::*`")));
            } else if import.renamed && reaches(&import.path, name) {
                found.push((
                    import.line,
                    format!("`{name}` through `use {} as …`", import.path),
                ));
            }
        }
    }
    found.sort();
    found.dedup();
    found
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
            for (line, how) in breaches_of(&text, rule) {
                breaches.push(format!(
                    "src/{rel}:{line}: names {} ({how}), which only {} may",
                    rule.what,
                    rule.allowed_in.join(" and ")
                ));
            }
        }
    }
    assert!(
        breaches.is_empty(),
        "layering rules broken:\n{}",
        breaches.join("\n")
    );
}

/// The rules a piece of source breaks, by what they keep.
fn broken(text: &str) -> Vec<&'static str> {
    RULES
        .iter()
        .filter(|rule| !breaches_of(text, rule).is_empty())
        .map(|rule| rule.what)
        .collect()
}

#[test]
fn the_checker_sees_imports_however_they_are_written() {
    let tls = vec!["rustls or certificate types"];
    let pb = vec!["protobuf types"];
    // Grouped, on one line and over several.
    assert_eq!(
        broken("use tonic::transport::{Certificate, Identity};"),
        tls
    );
    assert_eq!(
        broken("use tonic::{\n    Status,\n    transport::{Channel, Identity},\n};"),
        tls
    );
    // The module imported, the type named through it.
    assert_eq!(
        broken("use tonic::transport;\nfn f(c: transport::Certificate) {}"),
        tls
    );
    // Globs and aliases of a module that holds one.
    assert_eq!(broken("use tonic::transport::*;"), tls);
    assert_eq!(broken("use tonic::transport as t;"), tls);
    assert_eq!(broken("use crate::rpc::proto::v1 as wire;"), pb);
    assert_eq!(broken("use crate::rpc::proto::*;"), pb);
    assert_eq!(broken("use crate::rpc::{Clients, proto};"), pb);
    assert_eq!(
        broken("pub(crate) use crate::rpc::proto::v1::{CaseData as D};"),
        pb
    );
    assert_eq!(broken("use crate::rpc::*;"), pb);
    // What is allowed everywhere stays allowed.
    assert!(broken("use tonic::transport::{Channel, Endpoint};").is_empty());
    assert!(broken("use tonic::{Request, Status};").is_empty());
    assert!(broken("use crate::rpc::{Clients, REQUEST_ID_HEADER};").is_empty());
    assert!(broken("use std::fmt::Write as _;").is_empty());
    // A comment is not code.
    assert!(broken("// use crate::rpc::proto::v1 as pb;").is_empty());
}

#[test]
fn use_trees_expand_to_their_paths() {
    let paths: Vec<(String, bool)> = imports("use a::{b, c::{self, d as e, *}};\nuse f;")
        .into_iter()
        .map(|i| (i.path, i.renamed))
        .collect();
    let want = [
        ("a::b", false),
        ("a::c", false),
        ("a::c::d", true),
        ("a::c::*", false),
        ("f", false),
    ];
    assert_eq!(paths, want.map(|(p, r)| (p.to_string(), r)).to_vec());
    assert_eq!(imports("x;\n\nuse a::b;")[0].line, 3);
    // Words in a string are not a declaration.
    assert!(imports("let m = \"use sqlite://FILE or postgres://HOST/DB\";").is_empty());
    assert!(imports("let m = \"then use it\"; let n = 1;").is_empty());
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
