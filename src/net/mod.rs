//! TLS and certificates.

pub mod client;
pub mod identity;
pub mod pki;
pub mod tls;
pub mod x509;
