//! Everything about TLS and certificates, and nothing else: the only place
//! that touches rustls, X.509 or the certificate tooling.
//!
//! What it promises:
//!
//! - **mTLS or no connection.** [`tls`] accepts TLS 1.3 only, with a client
//!   certificate from a configured CA, CRLs enforced including their expiry
//!   (of several CRLs from one issuer the newest decides: [`crl`]); each
//!   handshake runs in its own task under a timeout, and every refused
//!   handshake is reported (with the presented certificate's fingerprint)
//!   so the gateway can record it.
//! - **Handlers never see certificates.** [`identity`] turns the client
//!   certificate into a typed [`identity::Peer`] once per connection: a
//!   registered participant (by the OIN in the subject `serialNumber`, as
//!   on PKIoverheid certificates, or a pinned SPKI fingerprint) or an
//!   unregistered fingerprint. It travels to handlers as
//!   [`tls::ConnectionInfo`].
//! - **A reload reaches open connections.** After a reload each open
//!   connection's certificate is checked again on its next request
//!   ([`tls::CertCheck`]).
//!
//! It exposes the acceptor ([`tls`]), the CRL choice ([`crl`]), the
//! registry ([`identity`]), the DER reading of certificates and CRLs
//! ([`x509`]: OIN, SPKI, fingerprints, CRL fields), the mTLS client channel
//! ([`client`]) and a small certificate authority ([`pki`]) that issues the
//! development PKI and the tests' certificates.

pub mod client;
pub mod crl;
pub mod identity;
pub mod pki;
pub mod tls;
pub mod x509;
