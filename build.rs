//! Compiles `proto/sluis/v1/*.proto` with protox (pure Rust), so a fresh
//! machine needs no `protoc` binary. The encoded descriptor set is kept in
//! `OUT_DIR` for gRPC server reflection.

use std::path::PathBuf;

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/sluis/v1/case.proto",
        "proto/sluis/v1/consent.proto",
        "proto/sluis/v1/audit.proto",
        "proto/sluis/v1/stats.proto",
        "proto/sluis/v1/errors.proto",
        "proto/sluis/v1/federation.proto",
        "proto/sluis/v1/witness.proto",
    ];
    for p in &protos {
        println!("cargo:rerun-if-changed={p}");
    }
    // The console's browser test (tests/console.rs) needs Chromium and its
    // WebDriver as the distribution packages them; without them it is
    // listed as ignored, with that reason, instead of passing unrun.
    println!("cargo:rustc-check-cfg=cfg(has_chromium)");
    println!("cargo:rerun-if-changed=/usr/bin");
    if ["/usr/bin/chromium", "/usr/bin/chromedriver"]
        .iter()
        .all(|p| std::path::Path::new(p).exists())
    {
        println!("cargo:rustc-cfg=has_chromium");
    }
    let fds = protox::compile(protos, ["proto"])?;
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(out.join("sluis_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        // Identity must never reach a log line through `{:?}`: its Debug is
        // written by hand in `src/rpc/proto.rs` and prints nothing personal.
        .skip_debug([".sluis.v1.Identity"])
        .compile_fds(fds)?;
    Ok(())
}
