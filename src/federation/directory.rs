//! The federation directory: which nodes form the network, how each is
//! recognised, and which participants each is home to.
//!
//! Issued by the network's operator as a C2SP signed note
//! (<https://c2sp.org/signed-note>, Ed25519) under the federation key, whose
//! key name is the network's name. The body is line-based and canonical —
//! one spelling per directory — so what a node verifies is exactly what
//! `sluis federation show` prints and what [`Directory::body`] makes:
//!
//! ```text
//! sluis federation directory v1
//! network <network>
//! serial <n>
//! valid <not-before RFC 3339> <not-after RFC 3339>
//! node <node id>
//! municipality <CBS code> <name>
//! endpoint <host:port> <TLS server name>
//! tls-spki <SHA-256 of the node certificate's SubjectPublicKeyInfo, hex>
//! tls-ca <SHA-256 of the DER of the CA certificate that issues it, hex>
//! log-key <the node's checkpoint verifier key, C2SP signed-note vkey>
//! witness-key <the node's witness key, C2SP tlog-cosignature vkey>   (optional)
//! host <participant id> <role>
//! ```
//!
//! Nodes follow in id order, each node's hosts in participant order; a
//! participant is hosted by one node only. The operator writes a TOML
//! source of the same fields ([`Directory::from_toml`]); `sluis federation
//! sign` checks it and signs its body.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::model::Role;
use crate::tlog::note;

/// The first line of every directory body: names the format and its version.
const MAGIC: &str = "sluis federation directory v1";
/// Most nodes in one directory. A signed note is at most 64 KiB and a node
/// takes a few hundred bytes plus its hosts.
pub const MAX_NODES: usize = 128;
/// Most participants one node is home to.
pub const MAX_HOSTS_PER_NODE: usize = 256;
/// Longest municipality name, in bytes.
const MAX_MUNICIPALITY: usize = 100;
/// Longest endpoint or server name, in bytes.
const MAX_HOST_NAME: usize = 253;

/// Why a directory (its source, its body or its signature) is refused.
/// Each message names the line or field and says what is expected; none
/// quotes a personal value (a directory names organisations and machines
/// only).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DirectoryError {
    #[error("the directory source is not valid TOML: {0}")]
    Source(String),
    #[error("{at}: {message}")]
    Invalid { at: String, message: String },
    #[error("the directory's signature: {0}")]
    Signature(#[from] note::NoteError),
}

fn invalid(at: impl Into<String>, message: impl Into<String>) -> DirectoryError {
    DirectoryError::Invalid {
        at: at.into(),
        message: message.into(),
    }
}

/// A participant a node is home to, with the role the network knows it by.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Host {
    /// Participant id, as in the nodes' `[[participant]]` entries.
    pub participant: String,
    /// One of the LVV roles (`municipality`, `ind`, `dtv`, `avim`, `ngo`,
    /// `monitor`).
    pub role: String,
}

/// One node of the network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryNode {
    /// The node's id: its `node.name`, a signed-note key name.
    pub id: String,
    /// The CBS municipality code, `GM` and four digits (e.g. `GM0344`).
    pub municipality_code: String,
    /// The municipality's name, one printable line.
    pub municipality: String,
    /// Where peers call it, `host:port`.
    pub endpoint: String,
    /// The name its server certificate carries.
    pub server_name: String,
    /// SHA-256 of its node certificate's SubjectPublicKeyInfo, lower-case
    /// hex: the key it calls peers with.
    pub tls_spki_sha256: String,
    /// SHA-256 of the DER of the CA certificate that issues its
    /// certificates, lower-case hex.
    pub tls_ca_sha256: String,
    /// Its checkpoint verifier key (`<node id>+<key id>+<base64 key>`).
    pub log_key: String,
    /// Its witness key (`<node id>/witness+<key id>+<base64 0x04 ‖ key>`,
    /// C2SP tlog-cosignature `cosignature/v1`), with which it cosigns its
    /// peers' checkpoints; none: the node does not witness.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub witness_key: Option<String>,
    /// The participants it is home to.
    #[serde(default, rename = "host")]
    pub hosts: Vec<Host>,
}

/// The whole directory, as signed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Directory {
    /// The network's name: also the federation key's name.
    pub network: String,
    /// Issue number; a node never replaces a directory with a lower one.
    pub serial: u64,
    /// Start of validity (RFC 3339, UTC, whole seconds).
    pub not_before: String,
    /// End of validity (RFC 3339, UTC, whole seconds).
    pub not_after: String,
    #[serde(default, rename = "node")]
    pub nodes: Vec<DirectoryNode>,
}

/// The validity period, in ms since the Unix epoch (the node's clock unit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validity {
    pub not_before: i64,
    pub not_after: i64,
}

impl Directory {
    /// Reads the operator's TOML source and checks it ([`Directory::check`]);
    /// nodes and hosts are put in canonical order.
    pub fn from_toml(text: &str) -> Result<Directory, DirectoryError> {
        let mut d: Directory =
            toml::from_str(text).map_err(|e| DirectoryError::Source(e.message().to_string()))?;
        d.nodes.sort_by(|a, b| a.id.cmp(&b.id));
        for n in &mut d.nodes {
            n.hosts.sort_by(|a, b| a.participant.cmp(&b.participant));
        }
        d.check()?;
        Ok(d)
    }

    /// Every rule of the format, the first broken one reported by its field.
    pub fn check(&self) -> Result<Validity, DirectoryError> {
        if !note::valid_key_name(&self.network) || !is_token(&self.network) {
            return Err(invalid(
                "network",
                "must be 1-64 characters of a-z, 0-9, '-', '_' or '.' (it names the federation key)",
            ));
        }
        if self.serial == 0 {
            return Err(invalid("serial", "must be 1 or more"));
        }
        let validity = Validity {
            not_before: instant("not_before", &self.not_before)?,
            not_after: instant("not_after", &self.not_after)?,
        };
        if validity.not_after <= validity.not_before {
            return Err(invalid("not_after", "must be later than not_before"));
        }
        if self.nodes.is_empty() {
            return Err(invalid("node", "a directory names at least one node"));
        }
        if self.nodes.len() > MAX_NODES {
            return Err(invalid(
                "node",
                format!("at most {MAX_NODES} nodes in one directory"),
            ));
        }
        let mut participants = BTreeSet::new();
        let mut keys = BTreeSet::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let at = |field: &str| format!("node[{i}].{field}");
            if !is_token(&n.id) {
                return Err(invalid(
                    at("id"),
                    "must be 1-64 characters of a-z, 0-9, '-', '_' or '.' (the node's node.name)",
                ));
            }
            if i > 0 && self.nodes[i - 1].id >= n.id {
                return Err(invalid(at("id"), "node ids must be unique, in order"));
            }
            let code = n.municipality_code.as_bytes();
            if code.len() != 6 || &code[..2] != b"GM" || !code[2..].iter().all(u8::is_ascii_digit) {
                return Err(invalid(
                    at("municipality_code"),
                    "must be a CBS municipality code: GM and four digits, e.g. GM0344",
                ));
            }
            if n.municipality.is_empty()
                || n.municipality.len() > MAX_MUNICIPALITY
                || n.municipality.trim() != n.municipality
                || !n.municipality.chars().all(crate::model::printable_in_line)
            {
                return Err(invalid(
                    at("municipality"),
                    format!(
                        "must be one line of 1-{MAX_MUNICIPALITY} bytes of printable text without leading or trailing spaces (no control characters, line separators, invisible characters, direction overrides or white space other than a plain space): it is signed and shown as given"
                    ),
                ));
            }
            if !is_endpoint(&n.endpoint) {
                return Err(invalid(
                    at("endpoint"),
                    "must be host:port (a DNS name or IP address, a port 1-65535)",
                ));
            }
            if !is_host_name(&n.server_name) {
                return Err(invalid(
                    at("server_name"),
                    "must be the DNS name (or IP address) in the node's server certificate",
                ));
            }
            for (field, v) in [
                ("tls_spki_sha256", &n.tls_spki_sha256),
                ("tls_ca_sha256", &n.tls_ca_sha256),
            ] {
                if !is_sha256_hex(v) {
                    return Err(invalid(
                        at(field),
                        "must be a SHA-256 in lower-case hex (64 characters)",
                    ));
                }
            }
            if !keys.insert(n.tls_spki_sha256.as_str()) {
                return Err(invalid(
                    at("tls_spki_sha256"),
                    "two nodes with one key: each node calls its peers with a key of its own",
                ));
            }
            check_log_key(&n.id, &n.log_key).map_err(|m| invalid(at("log_key"), m))?;
            if let Some(w) = &n.witness_key {
                check_witness_key(&n.id, w).map_err(|m| invalid(at("witness_key"), m))?;
            }
            if n.hosts.len() > MAX_HOSTS_PER_NODE {
                return Err(invalid(
                    at("host"),
                    format!("at most {MAX_HOSTS_PER_NODE} participants per node"),
                ));
            }
            for (j, h) in n.hosts.iter().enumerate() {
                let at = |field: &str| format!("node[{i}].host[{j}].{field}");
                if !is_token(&h.participant) {
                    return Err(invalid(
                        at("participant"),
                        "must be a participant id: 1-64 characters of a-z, 0-9, '-', '_' or '.'",
                    ));
                }
                if h.role.parse::<Role>().is_err() {
                    let roles: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
                    return Err(invalid(
                        at("role"),
                        format!("must be one of: {}", roles.join(", ")),
                    ));
                }
                if !participants.insert(h.participant.as_str()) {
                    return Err(invalid(
                        at("participant"),
                        "a participant has one home node: it is hosted twice",
                    ));
                }
                if j > 0 && n.hosts[j - 1].participant >= h.participant {
                    return Err(invalid(at("participant"), "hosts must be in order"));
                }
            }
        }
        Ok(validity)
    }

    /// The canonical body the federation key signs (see the module doc).
    pub fn body(&self) -> String {
        let mut s = format!(
            "{MAGIC}\nnetwork {}\nserial {}\nvalid {} {}\n",
            self.network, self.serial, self.not_before, self.not_after
        );
        for n in &self.nodes {
            s.push_str(&format!(
                "node {}\nmunicipality {} {}\nendpoint {} {}\ntls-spki {}\ntls-ca {}\nlog-key {}\n",
                n.id,
                n.municipality_code,
                n.municipality,
                n.endpoint,
                n.server_name,
                n.tls_spki_sha256,
                n.tls_ca_sha256,
                n.log_key
            ));
            if let Some(w) = &n.witness_key {
                s.push_str(&format!("witness-key {w}\n"));
            }
            for h in &n.hosts {
                s.push_str(&format!("host {} {}\n", h.participant, h.role));
            }
        }
        s
    }

    /// Parses a body ([`Directory::body`]'s form), checks it, and refuses
    /// one that is not in canonical form.
    pub fn parse_body(body: &str) -> Result<Directory, DirectoryError> {
        let mut it = body.lines().enumerate().map(|(i, l)| (i + 1, l)).peekable();
        if it.next().map(|(_, l)| l) != Some(MAGIC) {
            return Err(invalid("line 1", format!("expected '{MAGIC}'")));
        }
        let network = take(&mut it, "network")?.to_string();
        let serial =
            crate::model::canonical_decimal(take(&mut it, "serial")?).ok_or_else(|| {
                invalid(
                    "serial",
                    "must be a whole number in digits only, without sign or leading zeros",
                )
            })?;
        let (not_before, not_after) = take(&mut it, "valid")?
            .split_once(' ')
            .ok_or_else(|| invalid("valid", "expected 'valid <not-before> <not-after>'"))?;
        let mut d = Directory {
            network,
            serial,
            not_before: not_before.to_string(),
            not_after: not_after.to_string(),
            nodes: Vec::new(),
        };
        while it.peek().is_some() {
            let id = take(&mut it, "node")?;
            let (code, name) = take(&mut it, "municipality")?
                .split_once(' ')
                .ok_or_else(|| {
                    invalid(
                        format!("node {id}"),
                        "expected 'municipality <code> <name>'",
                    )
                })?;
            let (endpoint, server_name) =
                take(&mut it, "endpoint")?.split_once(' ').ok_or_else(|| {
                    invalid(
                        format!("node {id}"),
                        "expected 'endpoint <host:port> <server name>'",
                    )
                })?;
            let tls_spki_sha256 = take(&mut it, "tls-spki")?.to_string();
            let tls_ca_sha256 = take(&mut it, "tls-ca")?.to_string();
            let log_key = take(&mut it, "log-key")?.to_string();
            let witness_key = match it.peek() {
                Some((_, l)) if l.starts_with("witness-key ") => {
                    Some(take(&mut it, "witness-key")?.to_string())
                }
                _ => None,
            };
            let mut hosts = Vec::new();
            while it.peek().is_some_and(|(_, l)| l.starts_with("host ")) {
                let (participant, role) =
                    take(&mut it, "host")?.split_once(' ').ok_or_else(|| {
                        invalid(format!("node {id}"), "expected 'host <participant> <role>'")
                    })?;
                hosts.push(Host {
                    participant: participant.to_string(),
                    role: role.to_string(),
                });
            }
            d.nodes.push(DirectoryNode {
                id: id.to_string(),
                municipality_code: code.to_string(),
                municipality: name.to_string(),
                endpoint: endpoint.to_string(),
                server_name: server_name.to_string(),
                tls_spki_sha256,
                tls_ca_sha256,
                log_key,
                witness_key,
                hosts,
            });
        }
        d.check()?;
        if d.body() != body {
            return Err(invalid(
                "body",
                "not in canonical form (one space between fields, nodes and hosts in order, nothing else)",
            ));
        }
        Ok(d)
    }

    /// The node with this id.
    pub fn node(&self, id: &str) -> Option<&DirectoryNode> {
        self.nodes
            .binary_search_by(|n| n.id.as_str().cmp(id))
            .ok()
            .map(|i| &self.nodes[i])
    }

    /// The home node of a participant, and the role the network knows it by.
    pub fn home_of(&self, participant: &str) -> Option<(&DirectoryNode, Role)> {
        self.nodes.iter().find_map(|n| {
            n.hosts
                .iter()
                .find(|h| h.participant == participant)
                .and_then(|h| h.role.parse().ok().map(|r| (n, r)))
        })
    }
}

/// Verifies a signed directory with the federation's verifier key and
/// returns it with its validity. The key's name must be the directory's
/// network. Errors: the note's ([`DirectoryError::Signature`]), or the body's.
pub fn verify(signed: &str, verifier_key: &str) -> Result<(Directory, Validity), DirectoryError> {
    let body = note::verify(signed, verifier_key)?;
    let d = Directory::parse_body(body)?;
    if verifier_key.split('+').next() != Some(d.network.as_str()) {
        return Err(invalid(
            "network",
            "the directory's network is not the name of the key it was verified with",
        ));
    }
    let validity = d.check()?;
    Ok((d, validity))
}

/// Parses a signed directory without checking its signature, for a reader
/// who has no verifier key at hand (`sluis federation show` says so). A node
/// never uses this.
pub fn unverified(signed: &str) -> Result<Directory, DirectoryError> {
    let split = signed.rfind("\n\n").ok_or(note::NoteError::Malformed(
        "no blank line before the signatures",
    ))?;
    Directory::parse_body(&signed[..split + 1])
}

/// Signs a checked directory as its network's key.
pub fn sign(d: &Directory, signer: &dyn note::Signer) -> Result<String, DirectoryError> {
    d.check()?;
    Ok(note::sign(signer, &d.network, &d.body())?)
}

/// The rest of the next line, which must start with `keyword` and a space.
fn take<'a>(
    lines: &mut impl Iterator<Item = (usize, &'a str)>,
    keyword: &str,
) -> Result<&'a str, DirectoryError> {
    let (no, line) = lines
        .next()
        .ok_or_else(|| invalid("end", format!("the body ends before '{keyword} …'")))?;
    line.strip_prefix(keyword)
        .and_then(|r| r.strip_prefix(' '))
        .ok_or_else(|| invalid(format!("line {no}"), format!("expected '{keyword} …'")))
}

/// An RFC 3339 instant in UTC with whole seconds (`2026-12-01T00:00:00Z`),
/// as ms since the epoch.
fn instant(field: &str, s: &str) -> Result<i64, DirectoryError> {
    let bad = || {
        invalid(
            field,
            "must be an RFC 3339 instant in UTC with whole seconds, e.g. 2026-12-01T00:00:00Z",
        )
    };
    let t = OffsetDateTime::parse(s, &Rfc3339).map_err(|_| bad())?;
    if !s.ends_with('Z') || t.nanosecond() != 0 || t.format(&Rfc3339).ok().as_deref() != Some(s) {
        return Err(bad());
    }
    Ok(t.unix_timestamp() * 1000)
}

pub(crate) fn is_token(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
        })
}

fn is_host_name(s: &str) -> bool {
    (1..=MAX_HOST_NAME).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b':' | b'[' | b']'))
}

/// `host:port` with a host that names something (a letter or digit in
/// it: `[]:7443` or `::7443` name no host) and a port from 1 to 65535.
fn is_endpoint(s: &str) -> bool {
    s.rsplit_once(':').is_some_and(|(host, port)| {
        is_host_name(host)
            && host.bytes().any(|b| b.is_ascii_alphanumeric())
            && port.parse::<u16>().is_ok_and(|p| p > 0)
    })
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A checkpoint verifier key named after its node, checked whole
/// (`note::parse_verifier_key`: an Ed25519 key whose key id matches), so a
/// directory never pins a key no checkpoint can verify against.
fn check_log_key(id: &str, key: &str) -> Result<(), String> {
    let help = || {
        format!(
            "must be the node's verifier key '{id}+<key id>+<key>' (its `sluis audit` checkpoint key, as `sluis audit checkpoint` prints it)"
        )
    };
    match note::parse_verifier_key(key) {
        Ok((name, _, _)) if name == id => Ok(()),
        Ok((name, _, _)) => Err(format!("names '{name}', not the node: {}", help())),
        Err(e) => Err(format!("is not a valid key ({e}): {}", help())),
    }
}

/// The witness key name a node cosigns as: `<node id>/witness`, so a
/// cosignature line names the node that made it.
pub fn witness_name(id: &str) -> String {
    format!("{id}/witness")
}

fn check_witness_key(id: &str, key: &str) -> Result<(), String> {
    match crate::tlog::cosignature::WitnessKey::parse(key) {
        Ok(k) if k.name == witness_name(id) => Ok(()),
        Ok(_) => Err(format!(
            "must be named '{}' (the node's witness key, `sluis federation witness-keygen`)",
            witness_name(id)
        )),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::tlog::note::{Signer, TestSigner};

    pub(crate) fn sample() -> Directory {
        let key = |id: &str, seed: u8| note::verifier_key(id, &[seed; 32]);
        Directory {
            network: "lvv".into(),
            serial: 1,
            not_before: "2026-01-01T00:00:00Z".into(),
            not_after: "2027-01-01T00:00:00Z".into(),
            nodes: vec![
                DirectoryNode {
                    id: "gm0344".into(),
                    municipality_code: "GM0344".into(),
                    municipality: "Utrecht".into(),
                    endpoint: "sluis.utrecht.example:7443".into(),
                    server_name: "sluis.utrecht.example".into(),
                    tls_spki_sha256: "a".repeat(64),
                    tls_ca_sha256: "b".repeat(64),
                    log_key: key("gm0344", 1),
                    witness_key: Some(crate::tlog::cosignature::verifier_key(
                        &witness_name("gm0344"),
                        &[3; 32],
                    )),
                    hosts: vec![Host {
                        participant: "ind".into(),
                        role: "ind".into(),
                    }],
                },
                DirectoryNode {
                    id: "gm0518".into(),
                    municipality_code: "GM0518".into(),
                    municipality: "'s-Gravenhage".into(),
                    endpoint: "10.0.0.2:7443".into(),
                    server_name: "sluis.denhaag.example".into(),
                    tls_spki_sha256: "c".repeat(64),
                    tls_ca_sha256: "d".repeat(64),
                    log_key: key("gm0518", 2),
                    witness_key: None,
                    hosts: vec![],
                },
            ],
        }
    }

    #[test]
    fn body_round_trips_and_verifies() {
        let d = sample();
        let signer = TestSigner::new(9);
        let signed = sign(&d, &signer).unwrap();
        let vkey = note::verifier_key("lvv", &signer.public_key());
        let (back, validity) = verify(&signed, &vkey).unwrap();
        assert_eq!(back, d);
        assert_eq!(validity.not_before, 1_767_225_600_000);
        assert_eq!(
            back.home_of("ind").map(|(n, r)| (n.id.as_str(), r)),
            Some(("gm0344", Role::Ind))
        );
        assert!(back.home_of("unknown").is_none());
    }

    #[test]
    fn a_serial_has_one_text() {
        let body = sample().body();
        for other in ["serial +1", "serial 01", "serial 1 ", "serial"] {
            let changed = body.replacen("serial 1", other, 1);
            assert!(
                Directory::parse_body(&changed).is_err(),
                "{other:?} was taken as a serial"
            );
        }
        assert_eq!(Directory::parse_body(&body), Ok(sample()));
    }

    #[test]
    fn a_changed_body_or_another_key_is_refused() {
        let d = sample();
        let signer = TestSigner::new(9);
        let signed = sign(&d, &signer).unwrap();
        let vkey = note::verifier_key("lvv", &signer.public_key());
        let forged = signed.replace("host ind ind", "host ind dtv");
        assert!(matches!(
            verify(&forged, &vkey),
            Err(DirectoryError::Signature(note::NoteError::BadSignature(_)))
        ));
        let other = note::verifier_key("lvv", &TestSigner::new(8).public_key());
        assert!(matches!(
            verify(&signed, &other),
            Err(DirectoryError::Signature(note::NoteError::NoSignature(_)))
        ));
        // Another network's key cannot vouch for this directory.
        let mut d2 = d.clone();
        d2.network = "other".into();
        let signed2 = sign(&d2, &signer).unwrap();
        assert!(verify(&signed2, &vkey).is_err());
    }

    #[test]
    fn non_canonical_bodies_are_refused() {
        let body = sample().body();
        for bad in [
            body.replace("serial 1", "serial 01"),
            body.replace("endpoint sluis", "endpoint  sluis"),
            format!("{body}extra line\n"),
            body.replace("gm0344", "gm0999"),
        ] {
            assert!(Directory::parse_body(&bad).is_err(), "{bad}");
        }
        assert_eq!(Directory::parse_body(&body).unwrap(), sample());
    }

    #[test]
    fn each_rule_names_its_field() {
        type Change = fn(&mut Directory);
        let cases: Vec<(Change, &str)> = vec![
            (|d| d.serial = 0, "serial"),
            (|d| d.not_after = d.not_before.clone(), "not_after"),
            (
                |d| d.not_before = "2026-01-01 00:00:00".into(),
                "not_before",
            ),
            (
                |d| d.nodes[0].municipality_code = "0344".into(),
                "node[0].municipality_code",
            ),
            (
                |d| d.nodes[0].endpoint = "no-port".into(),
                "node[0].endpoint",
            ),
            (
                |d| d.nodes[0].endpoint = "[]:7443".into(),
                "node[0].endpoint",
            ),
            (
                |d| d.nodes[0].endpoint = "::7443".into(),
                "node[0].endpoint",
            ),
            (
                |d| d.nodes[0].endpoint = "sluis.example:70000".into(),
                "node[0].endpoint",
            ),
            (
                |d| d.nodes[0].tls_spki_sha256 = "AB".into(),
                "node[0].tls_spki_sha256",
            ),
            (
                |d| d.nodes[1].tls_spki_sha256 = "a".repeat(64),
                "node[1].tls_spki_sha256",
            ),
            (
                |d| d.nodes[0].log_key = "other+00000000+AQ".into(),
                "node[0].log_key",
            ),
            // Shaped like a key, but none: no checkpoint could verify.
            (
                |d| d.nodes[0].log_key = "gm0344+0a1b2c3d+AQ".into(),
                "node[0].log_key",
            ),
            // A real key of the node's name whose key id is not its own.
            (
                |d| {
                    let k = note::verifier_key("gm0344", &[9; 32]);
                    d.nodes[0].log_key = format!("gm0344+00000000{}", &k[15..]);
                },
                "node[0].log_key",
            ),
            (
                |d| d.nodes[0].hosts[0].role = "mayor".into(),
                "node[0].host[0].role",
            ),
            (
                |d| d.nodes[1].hosts = d.nodes[0].hosts.clone(),
                "node[1].host[0].participant",
            ),
            (
                |d| d.nodes[0].municipality = "Utrecht\nnode x".into(),
                "node[0].municipality",
            ),
        ];
        for (change, field) in cases {
            let mut d = sample();
            change(&mut d);
            match d.check() {
                Err(DirectoryError::Invalid { at, .. }) => assert_eq!(at, field),
                other => panic!("{field}: {other:?}"),
            }
        }
    }

    #[test]
    fn toml_source_is_put_in_order() {
        let text = r#"
network = "lvv"
serial = 2
not_before = "2026-01-01T00:00:00Z"
not_after = "2027-01-01T00:00:00Z"

[[node]]
id = "gm0518"
municipality_code = "GM0518"
municipality = "'s-Gravenhage"
endpoint = "10.0.0.2:7443"
server_name = "sluis.denhaag.example"
tls_spki_sha256 = "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
tls_ca_sha256 = "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"
log_key = "KEY_GM0518"

[[node]]
id = "gm0344"
municipality_code = "GM0344"
municipality = "Utrecht"
endpoint = "sluis.utrecht.example:7443"
server_name = "sluis.utrecht.example"
tls_spki_sha256 = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
tls_ca_sha256 = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
log_key = "KEY_GM0344"
host = [{ participant = "ngo-b", role = "ngo" }, { participant = "ind", role = "ind" }]
"#
        .replace("KEY_GM0518", &note::verifier_key("gm0518", &[2; 32]))
        .replace("KEY_GM0344", &note::verifier_key("gm0344", &[1; 32]));
        let text = text.as_str();
        let d = Directory::from_toml(text).unwrap();
        assert_eq!(d.nodes[0].id, "gm0344");
        assert_eq!(d.nodes[0].hosts[0].participant, "ind");
        assert!(matches!(
            Directory::from_toml("network = 1"),
            Err(DirectoryError::Source(_))
        ));
        assert!(matches!(
            Directory::from_toml(&text.replace("[[node]]", "[[nodes]]")),
            Err(DirectoryError::Source(_))
        ));
    }
}
