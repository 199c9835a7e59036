//! sluis: a privacy-preserving data-exchange gateway.
//!
//! Government bodies and NGOs share LVV case data through a node over gRPC
//! with mutual TLS. Each category of a case is released only when the
//! node's policy and the subject's consent allow it, the subject appears
//! under a pseudonym per recipient, and every access is recorded before any
//! data leaves. ARCHITECTURE.md has the code map and the invariants, each
//! with the type or module that enforces it.
//!
//! The crate is a binary first. The library exposes the subsystems, each
//! through its `mod.rs`, for three users and no others (the console, the
//! bounded file reads and `init` are the binary's alone and stay private):
//!
//! - **the `sluis` binary**: [`cli::main`];
//! - **the integration tests** (`tests/`), which start real nodes and check
//!   them from outside: [`node::Node`] and [`config::Config`], a dev node
//!   ([`dev`]), the configuration check ([`check`]), certificates made on
//!   the fly and the mTLS channel ([`net`]), the API and its clients
//!   ([`rpc`]), the signed federation directory and its keys
//!   ([`federation`]), the disclosure-control checks run against published
//!   tables ([`stats`]), and what a privacy officer checks offline — records,
//!   proofs, checkpoints, verification ([`tlog`]) and the node's database
//!   read as an officer would ([`store`]);
//! - **the benchmark package** (`bench/`), which starts nodes as the tests
//!   do ([`node`], [`config`], [`dev::init`], [`dev::sample`]'s cases) and
//!   loads them through the API ([`rpc`], [`net::client`]); serves bare
//!   tonic over the same mTLS accept loop for comparison ([`net::tls`],
//!   [`net::identity`], [`net::sources`]); fills and checks large logs
//!   through the one log writer ([`store::Store`] and its `LogSink`,
//!   [`tlog::AuditLog`], [`tlog::verify`], [`tlog::proof`],
//!   [`tlog::checkpoint`]); times the pieces of the request path on their
//!   own: the [`policy`], consent evaluation ([`model`]), pseudonyms and the
//!   vault ([`gateway`]), record encoding and leaf hashing ([`tlog`]); and
//!   logs, exports and runs as the binary does ([`telemetry::init`],
//!   [`cli::init_tracing`], [`cli::runtime`]).
//!
//! Dependencies point down: `cli → node → rpc → gateway → {policy, tlog,
//! stats} → store`; `net` beside them for the transport; everything may use
//! `model`, the shared vocabulary. ARCHITECTURE.md lists the exceptions.
#![forbid(unsafe_code)]

pub mod check;
pub mod cli;
pub mod config;
pub(crate) mod console;
pub mod dev;
pub mod federation;
pub(crate) mod files;
pub mod gateway;
pub(crate) mod init;
pub mod model;
pub mod net;
pub mod node;
pub mod policy;
pub mod rpc;
pub mod stats;
pub mod store;
pub mod telemetry;
pub mod tlog;
