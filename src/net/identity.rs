//! From a verified client certificate to a typed caller.
//!
//! This runs once per connection, right after the TLS handshake, so handlers
//! only ever see a [`Peer`]: a registered [`Caller`], or an unregistered
//! certificate known by its fingerprint (which every request then refuses).

use std::collections::HashMap;

use crate::config::Participant;
use crate::model::{Caller, Role};
use crate::net::x509;

/// Who is on the other end of a connection.
#[derive(Clone, Debug)]
pub enum Peer {
    Registered(Caller),
    /// A certificate the CA vouches for, but no participant is registered
    /// for its OIN or key. Requests get PERMISSION_DENIED and are audited.
    Unregistered {
        fingerprint: String,
    },
}

/// The registered participants, indexed by how certificates name them.
#[derive(Debug, Default)]
pub struct Registry {
    by_oin: HashMap<String, Caller>,
    by_spki: HashMap<String, Caller>,
    by_id: HashMap<String, (Participant, Role)>,
}

impl Registry {
    /// Participants must already be validated by the config loader.
    pub fn new(participants: &[Participant]) -> Registry {
        Registry::build(participants, false)
    }

    /// The federation listener's registry: every entry is a peer node
    /// (its directory id as `participant`), so each [`Caller`] it resolves
    /// names its node (`Caller::node`) and the records of its calls show a
    /// node, not a participant.
    pub(crate) fn nodes(nodes: &[Participant]) -> Registry {
        Registry::build(nodes, true)
    }

    fn build(participants: &[Participant], nodes: bool) -> Registry {
        let mut r = Registry::default();
        for p in participants {
            let Ok(role) = p.role.parse::<Role>() else {
                continue;
            };
            let caller = Caller {
                participant: p.id.clone(),
                role,
                oin: p.oin.clone(),
                node: nodes.then(|| p.id.clone()),
            };
            if let Some(oin) = &p.oin {
                r.by_oin.insert(oin.clone(), caller.clone());
            }
            if let Some(fp) = &p.spki_sha256 {
                r.by_spki.insert(fp.to_ascii_lowercase(), caller.clone());
            }
            r.by_id.insert(p.id.clone(), (p.clone(), role));
        }
        r
    }

    /// Resolves the end-entity certificate a client presented. The OIN in the
    /// subject serialNumber wins; a pinned key fingerprint is the fallback
    /// for organisations without a PKIoverheid certificate.
    pub(crate) fn identify(&self, cert_der: &[u8]) -> Peer {
        if let Ok(Some(serial)) = x509::subject_serial_number(cert_der)
            && let Some(c) = self.by_oin.get(&serial)
        {
            return Peer::Registered(c.clone());
        }
        if let Ok(fp) = x509::spki_sha256_hex(cert_der)
            && let Some(c) = self.by_spki.get(&fp)
        {
            return Peer::Registered(c.clone());
        }
        Peer::Unregistered {
            fingerprint: x509::cert_sha256_hex(cert_der),
        }
    }

    pub(crate) fn participant(&self, id: &str) -> Option<&Participant> {
        self.by_id.get(id).map(|(p, _)| p)
    }

    /// The role of a registered participant.
    pub(crate) fn role_of(&self, id: &str) -> Option<Role> {
        self.by_id.get(id).map(|(_, r)| *r)
    }

    pub(crate) fn participants(&self) -> impl Iterator<Item = (&Participant, Role)> {
        self.by_id.values().map(|(p, r)| (p, *r))
    }
}
