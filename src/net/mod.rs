//! Everything about TLS and certificates, and nothing else: the only place
//! that touches rustls, X.509 or the certificate tooling.
//!
//! What it promises:
//!
//! - **mTLS or no connection.** [`tls`] accepts TLS 1.3 only, with a client
//!   certificate from a configured CA, CRLs enforced including their expiry
//!   (of several CRLs from one issuer the newest decides: `crl`; a client
//!   CA without a CRL is refused unless `tls.allow_missing_crl`, and a
//!   reload that drops a CRL or brings back an older one is refused, the
//!   running set kept); each
//!   handshake runs in its own task under a timeout, and every refused
//!   handshake that presented a certificate is reported (with its
//!   fingerprint) so the gateway can record it.
//! - **Peers without a certificate cannot flood the log or the handshake
//!   slots.** Connections that never present a certificate are counted per
//!   source and interval ([`sources`]), for one access record per source
//!   and interval; a source has a bounded number of handshakes in progress
//!   and a short time to send its first byte.
//! - **The plain probes port is bounded too** ([`plain`]): connections in
//!   all and per source, and an idle time, so a client that opens
//!   connections and sends nothing cannot take the node's descriptors.
//! - **No one holds the connection slots.** Whatever certificate it
//!   presents, a source has at most `max_connections_per_source` open; a
//!   connection on which no request runs is closed after
//!   `idle_timeout_ms`, an unregistered certificate's soon after its first
//!   refusal; at a limit a connection is closed at once and the node's log
//!   says so (at most every few seconds).
//! - **Handlers never see certificates.** [`identity`] turns the client
//!   certificate into a typed [`identity::Peer`] once per connection: a
//!   registered participant (by the OIN in the subject `serialNumber`, as
//!   on PKIoverheid certificates, or a pinned SPKI fingerprint) or an
//!   unregistered fingerprint. It travels to handlers as
//!   [`tls::ConnectionInfo`].
//! - **A peer node is who the directory says, both ways.** A node calling a
//!   peer ([`peer`]) accepts its server certificate only from a peer CA,
//!   for the directory's server name, with the key the directory pins for
//!   that node (`peer::PinnedServerVerifier`); the federation listener
//!   knows calling nodes only by those pins ([`identity`]).
//! - **A reload reaches open connections.** After a reload each open
//!   connection's certificate is checked again on its next request
//!   (`tls::CertCheck`).
//!
//! It exposes the acceptor ([`tls`]), the per-source accounting
//! ([`sources`]), the registry ([`identity`]), the DER reading of
//! certificates and CRLs ([`x509`]: OIN, SPKI, fingerprints, CRL fields),
//! the mTLS client side ([`client`]; between federation nodes, [`peer`]) and a small certificate authority
//! ([`pki`]) that issues the development PKI and the tests' certificates;
//! the CRL choice (`crl`) is the acceptor's own.

pub mod check;
pub mod client;
pub(crate) mod crl;
pub mod identity;
pub mod peer;
pub mod pki;
pub(crate) mod plain;
pub mod sources;
pub mod tls;
pub mod x509;
