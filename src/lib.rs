//! sluis: a privacy-preserving data-exchange gateway.
//!
//! Government bodies and NGOs share LVV case data through a node over gRPC
//! with mutual TLS. Each category of a case is released only when the
//! node's policy and the subject's consent allow it, the subject appears
//! under a pseudonym per recipient, and every access is recorded before any
//! data leaves. See ARCHITECTURE.md for the map.
#![forbid(unsafe_code)]

pub mod api;
pub mod audit;
pub mod audit_cli;
pub mod certs;
pub mod checkpoint;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod consent;
pub mod demo;
pub mod devnode;
pub mod exchange;
pub mod identity;
pub mod log_scan;
pub mod merkle;
pub mod model;
pub mod node;
pub mod note;
pub mod oversight;
pub mod policy;
pub mod proto;
pub mod pseudonym;
pub mod read_cache;
pub mod sqlite_log;
pub mod sqlite_read;
pub mod store;
pub mod tls;
pub mod vault;
pub mod verify;
pub mod x509;
