//! The gRPC face of a node.

pub mod proto;
mod service;

pub use service::*;
