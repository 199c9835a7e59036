//! sluis: a privacy-preserving data-exchange gateway.
//!
//! Government bodies and NGOs share LVV case data through a node over gRPC
//! with mutual TLS. Each category of a case is released only when the
//! node's policy and the subject's consent allow it, the subject appears
//! under a pseudonym per recipient, and every access is recorded before any
//! data leaves. See ARCHITECTURE.md for the map.
#![forbid(unsafe_code)]

pub mod cli;
pub mod config;
pub mod dev;
pub mod gateway;
pub mod model;
pub mod net;
pub mod node;
pub mod policy;
pub mod rpc;
pub mod store;
pub mod tlog;
