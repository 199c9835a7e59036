//! The layering rules of ARCHITECTURE.md, checked over the source text.
//!
//! A grep, not a type check: it catches a module that names a type of a
//! layer it must not know, which is how such a dependency starts.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Files below `src/` whose code (comments aside) names one of `needles`,
/// except those below one of `allowed`.
fn offenders(needles: &[&str], allowed: &[&str]) -> Vec<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut found = Vec::new();
    for file in files {
        let rel = file
            .strip_prefix(&src)
            .expect("below src")
            .to_string_lossy()
            .replace('\\', "/");
        if allowed.iter().any(|a| rel.starts_with(a)) {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("read source");
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if let Some(needle) = needles.iter().find(|needle| code.contains(*needle)) {
                found.push(format!("src/{rel}:{}: names {needle}", n + 1));
            }
        }
    }
    found
}

/// Only the gRPC layer knows protobuf; below it, category payloads are
/// opaque bytes. gRPC clients (the mTLS client, the demo, the benchmark
/// tool) speak protobuf by nature.
#[test]
fn no_protobuf_outside_rpc() {
    let found = offenders(
        &["rpc::proto", "pb::", "prost", "tonic_prost"],
        &["rpc/", "net/client.rs", "dev/", "bin/"],
    );
    assert!(
        found.is_empty(),
        "protobuf outside rpc/:\n{}",
        found.join("\n")
    );
}
