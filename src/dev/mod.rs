//! Development tooling: everything that makes a node you can run, try and
//! measure without an operator. `init` writes a ready-to-run node folder
//! (dev PKI, keys, policy, one participant per LVV role: the dev
//! participant list), `demo` plays the LVV scenario against such a node
//! over real mTLS (and, `referral_demo`, refers the case to a second
//! municipality's node), and `sample` is the case data and consents the demo and
//! the benchmark package both register.
//!
//! A node serving an operator's configuration (`sluis serve --config`)
//! never runs this code. The certificates themselves are made in `net::pki` and
//! the mTLS channel lives in `net::client` (typed clients in `rpc::Clients`), because all certificate code
//! stays in `net/`.

pub(crate) mod demo;
pub mod init;
mod referral_demo;
pub mod sample;
