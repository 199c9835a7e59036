//! A test that cannot run where it is run must say so: it is ignored with
//! its reason (`#[ignore = "…"]`, listed as `ignored`), or it fails with a
//! message. It never returns early and reports `ok` in 0.00 s, which reads
//! as "checked" when nothing was.
//!
//! These rules are read off the sources, like the layering rules in
//! `architecture.rs`: the tests of the gateway and of the bench package.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every Rust file of the workspace but this one.
fn sources() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["src", "tests", "bench/src", "bench/tests", "benches"] {
        rust_files(&root.join(dir), &mut files);
    }
    files
        .into_iter()
        .filter(|p| !p.ends_with("tests/test_honesty.rs"))
        .map(|p| {
            let name = p.strip_prefix(root).unwrap().display().to_string();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect()
}

#[test]
fn every_ignored_test_gives_its_reason() {
    let mut found = Vec::new();
    for (name, text) in sources() {
        for (i, line) in text.lines().enumerate() {
            if line.trim() == "#[ignore]" {
                found.push(format!("{name}:{}", i + 1));
            }
        }
    }
    assert!(
        found.is_empty(),
        "#[ignore] without a reason (write #[ignore = \"why, and how to run it\"]): {found:?}"
    );
}

/// The shape of a test that passes without running: a condition on the
/// environment, then `return` — reported as `ok`. (A function tests call may still do
/// nothing on one backend; it does not return early to say so.)
#[test]
fn no_test_returns_early_when_its_environment_is_missing() {
    let mut found = Vec::new();
    for (name, text) in sources() {
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let t = line.trim();
            // "SKIPPED: …", "skipping …": however it is spelled, a test
            // that says it skips and goes on to report ok.
            let lower = t.to_lowercase();
            let prints_a_skip = (t.contains("eprintln!(") || t.contains("println!("))
                && (lower.contains("\"skipped") || lower.contains("\"skipping"));
            let guard = t.starts_with("if ")
                && (t.contains("on_postgres()")
                    || t.contains("env::var")
                    || t.contains("pg_bin()")
                    || t.contains("is_root()"));
            let returns_next = lines
                .iter()
                .skip(i + 1)
                .take(3)
                .any(|l| l.trim() == "return;");
            if prints_a_skip || (guard && returns_next) {
                found.push(format!("{name}:{}: {t}", i + 1));
            }
        }
    }
    assert!(
        found.is_empty(),
        "tests that report ok without running (use #[ignore = \"reason\"] or fail with a message): {found:?}"
    );
}
