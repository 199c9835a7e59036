//! A development PKI: a private CA that issues node and participant
//! certificates and CRLs.
//!
//! Production deployments use PKIoverheid certificates; this exists so that
//! `sluis certs init`, `sluis init` and the integration tests can stand up
//! mutual TLS with nothing but this binary. Tests need odd certificates too
//! (expired, not yet valid, from another CA, revoked), so validity is the
//! caller's to choose and nothing here second-guesses it.
//!
//! Keys are ECDSA P-256 throughout: fast enough to mint certificates per test,
//! and accepted by every rustls/webpki configuration sluis uses.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, DnValue, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    PublicKeyData, RevokedCertParams, SerialNumber,
};
use ring::rand::SecureRandom;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use time::{Duration, OffsetDateTime};

use crate::net::x509;

/// OID arcs of the X.520 `serialNumber` attribute, where PKIoverheid puts the OIN.
const OID_SERIAL_NUMBER: &[u64] = &[2, 5, 4, 5];

/// Ten years, so a dev PKI never needs re-creating within a development cycle.
const CA_VALIDITY: Duration = Duration::days(3650);
/// Default validity of leaf certificates: long enough not to bother anyone
/// during development, short enough to notice if dev certificates leak into
/// something long-lived.
const LEAF_VALIDITY: Duration = Duration::days(730);
/// Backdating absorbs clock skew between the machine that issues and the
/// machine that verifies, which otherwise shows up as "not yet valid".
const BACKDATE: Duration = Duration::days(1);

/// Everything that can go wrong making or storing dev certificates.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid PEM ({what}): {source}")]
    Pem {
        what: &'static str,
        source: rustls_pki_types::pem::Error,
    },
    #[error("CA certificate: {0}")]
    X509(#[from] x509::X509Error),
    #[error("CA key does not belong to the CA certificate")]
    KeyMismatch,
    #[error("CA certificate cannot be reproduced for issuing: {0}")]
    UnsupportedCa(&'static str),
    #[error("server certificate needs at least one host name or IP address")]
    NoHosts,
    #[error("cannot encode the certificate: {0}")]
    Unencodable(&'static str),
    #[error("certificate time out of the encodable range (years 0..=9999)")]
    TimeOutOfRange,
    #[error(
        "invalid participant id {0:?}: use letters, digits, '-', '_' and '.' (not leading), since it becomes a file name"
    )]
    InvalidParticipantId(String),
    #[error("participant id {0:?} given more than once")]
    DuplicateParticipantId(String),
    #[error(
        "{} already exists; refusing to overwrite an existing CA (remove the directory's PKI files deliberately to start over)",
        path.display()
    )]
    AlreadyExists { path: PathBuf },
}

/// A certificate authority that can issue node and client certificates and CRLs.
///
/// Holds the issuing identity rather than a parsed certificate, so a CA
/// reloaded from disk issues certificates that chain to the original bytes.
#[derive(Debug)]
pub struct CertAuthority {
    /// rcgen's Debug for Issuer elides the key, so deriving Debug is safe.
    issuer: Issuer<'static, KeyPair>,
    /// Kept beside the issuer because rcgen's Issuer does not expose it and
    /// CRLs must name the CA key exactly as issued certificates do.
    key_id: KeyIdMethod,
    cert_der: CertificateDer<'static>,
}

/// A freshly issued certificate with its private key.
#[derive(Clone)]
pub struct IssuedCert {
    pub cert_pem: String,
    pub key_pem: String,
    pub cert_der: Vec<u8>,
    /// The serial number's bytes, as a CRL must list them to revoke this certificate.
    pub serial: Vec<u8>,
}

impl std::fmt::Debug for IssuedCert {
    /// Keeps the private key out of logs and test failure output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedCert")
            .field("serial", &hex::encode(&self.serial))
            .field("cert_sha256", &x509::cert_sha256_hex(&self.cert_der))
            .field("key_pem", &"[elided]")
            .finish()
    }
}

/// What to put in a participant's client certificate.
///
/// A struct rather than arguments so tests can make expired or future-dated
/// certificates by adjusting one field of the default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertSpec {
    pub common_name: String,
    /// Organisation identification number, placed in the subject
    /// `serialNumber` as PKIoverheid does, so dev certificates exercise the
    /// same identity path as production ones.
    pub oin: Option<String>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl ClientCertSpec {
    /// Valid from a day ago for two years.
    pub fn new(common_name: &str, oin: Option<&str>) -> Self {
        let now = OffsetDateTime::now_utc();
        Self {
            common_name: common_name.to_owned(),
            oin: oin.map(str::to_owned),
            not_before: now - BACKDATE,
            not_after: now + LEAF_VALIDITY,
        }
    }
}

impl CertAuthority {
    /// New self-signed CA (ECDSA P-256), CN = `name`, valid ten years from a day ago.
    pub fn generate(name: &str) -> Result<Self, CertError> {
        let key = KeyPair::generate()?;
        let now = OffsetDateTime::now_utc();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        let params = ca_params(dn, KeyIdMethod::Sha256, now - BACKDATE, now + CA_VALIDITY)?;
        let cert = params.self_signed(&key)?;
        Ok(Self {
            key_id: params.key_identifier_method.clone(),
            issuer: Issuer::new(params, key),
            cert_der: cert.der().clone(),
        })
    }

    /// Reloads a CA from the PEM files `write_dev_pki` wrote, so later runs can
    /// issue more certificates or a fresh CRL under the same trust anchor.
    ///
    /// Certificates chain by exact issuer-name bytes, so the subject is
    /// rebuilt from the certificate and re-encoded, and the result checked to
    /// be byte-identical; a CA whose name rcgen cannot reproduce (multi-valued
    /// RDNs, unusual string types) is refused instead of issuing certificates
    /// that would not chain. The key must match the certificate.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, CertError> {
        let cert_der = CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(|source| {
            CertError::Pem {
                what: "CA certificate",
                source,
            }
        })?;
        let key = KeyPair::from_pem(key_pem)?;
        if x509::subject_public_key_info(&cert_der)? != key.subject_public_key_info().as_slice() {
            return Err(CertError::KeyMismatch);
        }

        let mut dn = DistinguishedName::new();
        for rdn in x509::subject_attributes(&cert_der)? {
            let [attr] = rdn.as_slice() else {
                return Err(CertError::UnsupportedCa("multi-valued RDN in subject"));
            };
            dn.push(DnType::from_oid(&attr.oid), dn_value(attr.tag, attr.value)?);
        }
        // Reuse the CA's own key identifier: issued certificates and CRLs name
        // their issuer's key by it, and whoever made the CA chose how to derive it.
        let key_id = match x509::subject_key_identifier(&cert_der)? {
            Some(ski) => KeyIdMethod::PreSpecified(ski.to_vec()),
            None => KeyIdMethod::Sha256,
        };
        let now = OffsetDateTime::now_utc();
        let params = ca_params(dn, key_id.clone(), now - BACKDATE, now + CA_VALIDITY)?;

        let probe = params.self_signed(&key)?;
        if x509::subject_name_der(probe.der())? != x509::subject_name_der(&cert_der)? {
            return Err(CertError::UnsupportedCa(
                "subject name does not re-encode identically",
            ));
        }
        Ok(Self {
            issuer: Issuer::new(params, key),
            key_id,
            cert_der,
        })
    }

    pub fn cert_pem(&self) -> String {
        pem_encode("CERTIFICATE", &self.cert_der)
    }

    pub(crate) fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    pub fn cert_der(&self) -> Vec<u8> {
        self.cert_der.to_vec()
    }

    /// Server certificate for the node: SANs from `hosts` (DNS names or IP
    /// addresses, e.g. "localhost", "127.0.0.1"), serverAuth EKU, valid two
    /// years from a day ago.
    ///
    /// Hosts are required because TLS clients verify the SAN, never the CN.
    pub fn issue_server(
        &self,
        common_name: &str,
        hosts: &[String],
    ) -> Result<IssuedCert, CertError> {
        if hosts.is_empty() {
            return Err(CertError::NoHosts);
        }
        let now = OffsetDateTime::now_utc();
        let mut params = CertificateParams::new(hosts.to_vec())?;
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(params, now - BACKDATE, now + LEAF_VALIDITY)
    }

    /// A federation node's certificate: one key for both directions —
    /// serverAuth for the federation listener (SANs from `hosts`) and
    /// clientAuth for calling peers — so the one key the directory pins
    /// holds both ways. Valid two years from a day ago.
    pub fn issue_node(&self, common_name: &str, hosts: &[String]) -> Result<IssuedCert, CertError> {
        if hosts.is_empty() {
            return Err(CertError::NoHosts);
        }
        let now = OffsetDateTime::now_utc();
        let mut params = CertificateParams::new(hosts.to_vec())?;
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        self.issue(params, now - BACKDATE, now + LEAF_VALIDITY)
    }

    /// Client certificate for a participant: CN = name, subject serialNumber =
    /// OIN when given, clientAuth EKU, validity as given.
    ///
    /// The OIN is encoded as PrintableString, as X.520 prescribes for
    /// serialNumber; an OIN with other characters is an error.
    pub fn issue_client(&self, spec: &ClientCertSpec) -> Result<IssuedCert, CertError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, spec.common_name.as_str());
        if let Some(oin) = &spec.oin {
            params.distinguished_name.push(
                DnType::CustomDnType(OID_SERIAL_NUMBER.to_vec()),
                printable(oin)?,
            );
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params, spec.not_before, spec.not_after)
    }

    /// A PEM CRL signed by this CA revoking `revoked` (serials as in
    /// [`IssuedCert::serial`]), valid from a minute ago for `valid_for`.
    ///
    /// This update is backdated a little for clock skew. The CRL number is
    /// the current Unix time in milliseconds, and above any this process
    /// made before, so a newer CRL always has the higher number (the node
    /// lets the highest decide, `net::crl`) — also when two are made within
    /// a second, or in later runs without shared state.
    pub fn crl_pem(&self, revoked: &[Vec<u8>], valid_for: Duration) -> Result<String, CertError> {
        static LAST_CRL_NUMBER: AtomicU64 = AtomicU64::new(0);
        let now = OffsetDateTime::now_utc();
        let this_update = checked_time(now.checked_sub(Duration::minutes(1)))?;
        let next_update = checked_time(now.checked_add(valid_for))?;
        let millis = u64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
        let previous = LAST_CRL_NUMBER
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
                Some(millis.max(last + 1))
            })
            .unwrap_or(0);
        let crl_number = millis.max(previous + 1);
        self.crl_pem_numbered(revoked, crl_number, this_update, next_update)
    }

    /// A PEM CRL signed by this CA revoking `revoked`, with the CRL number
    /// and update times given (tests that need CRLs out of order).
    pub fn crl_pem_numbered(
        &self,
        revoked: &[Vec<u8>],
        crl_number: u64,
        this_update: OffsetDateTime,
        next_update: OffsetDateTime,
    ) -> Result<String, CertError> {
        let this_update = encodable(this_update)?;
        let next_update = encodable(next_update)?;
        let params = CertificateRevocationListParams {
            this_update,
            next_update,
            crl_number: SerialNumber::from(crl_number),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|serial| RevokedCertParams {
                    serial_number: SerialNumber::from_slice(serial),
                    revocation_time: this_update,
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: self.key_id.clone(),
        };
        Ok(params.signed_by(&self.issuer)?.pem()?)
    }

    fn issue(
        &self,
        mut params: CertificateParams,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Result<IssuedCert, CertError> {
        let key = KeyPair::generate()?;
        let serial = random_serial()?;
        params.not_before = encodable(not_before)?;
        params.not_after = encodable(not_after)?;
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        // webpki's CRL checks, and most other verifiers, find the issuing key by AKI.
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().to_vec(),
            serial,
        })
    }
}

fn ca_params(
    dn: DistinguishedName,
    key_identifier_method: KeyIdMethod,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<CertificateParams, CertError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.key_identifier_method = key_identifier_method;
    params.not_before = encodable(not_before)?;
    params.not_after = encodable(not_after)?;
    params.serial_number = Some(SerialNumber::from_slice(&random_serial()?));
    Ok(params)
}

/// The common name of a dev CA: `sluis development CA <folder> <random>`,
/// `<folder>` the name of the node folder `dir` is in (printable ASCII,
/// at most 32 characters) and `<random>` eight hex digits. Distinct per
/// dev PKI because peers tell CAs apart by subject (RFC 5280 §4.1.2.6: a
/// CRL and a chain name their CA by it) and `check-config` refuses two
/// peer CAs under one subject: with one fixed name, dev nodes could not
/// trust each other's CAs and so could not form a federation.
fn dev_ca_name(dir: &Path) -> Result<String, CertError> {
    let folder: String = dir
        .parent()
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy())
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(32)
        .collect();
    let mut random = [0u8; 4];
    ring::rand::SystemRandom::new()
        .fill(&mut random)
        .map_err(|_| rcgen::Error::RingUnspecified)?;
    let random = hex::encode(random);
    Ok(if folder.is_empty() {
        format!("sluis development CA {random}")
    } else {
        format!("sluis development CA {folder} {random}")
    })
}

/// 16 random bytes with the top bit clear and the first byte non-zero, so the
/// DER INTEGER's content octets are exactly these bytes: what a CRL lists is
/// then byte-for-byte what the certificate carries.
fn random_serial() -> Result<Vec<u8>, CertError> {
    let mut serial = vec![0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut serial)
        .map_err(|_| rcgen::Error::RingUnspecified)?;
    serial[0] = (serial[0] & 0x7f) | 0x40;
    Ok(serial)
}

/// Normalises to UTC and checks the year fits ASN.1 time types, because the
/// encoder beneath rcgen asserts on out-of-range years instead of failing.
fn encodable(t: OffsetDateTime) -> Result<OffsetDateTime, CertError> {
    let utc = t.to_offset(time::UtcOffset::UTC);
    if (0..=9999).contains(&utc.year()) {
        Ok(utc)
    } else {
        Err(CertError::TimeOutOfRange)
    }
}

fn checked_time(t: Option<OffsetDateTime>) -> Result<OffsetDateTime, CertError> {
    encodable(t.ok_or(CertError::TimeOutOfRange)?)
}

/// A PrintableString name value. X.680 allows '?' in one, but the DER
/// writer under rcgen (yasna 0.6) panics on it when the certificate is
/// written, so it is refused here with an error instead.
fn printable(s: &str) -> Result<DnValue, CertError> {
    if s.contains('?') {
        return Err(CertError::Unencodable(
            "'?' in a PrintableString name attribute",
        ));
    }
    Ok(DnValue::PrintableString(s.try_into()?))
}

/// Maps a DER string value back to the rcgen type that re-encodes it with the
/// same tag and bytes.
fn dn_value(tag: u8, value: &[u8]) -> Result<DnValue, CertError> {
    let text = || {
        std::str::from_utf8(value).map_err(|_| CertError::UnsupportedCa("non-UTF-8 name attribute"))
    };
    Ok(match tag {
        0x0c => DnValue::Utf8String(text()?.to_owned()),
        0x13 => printable(text()?)?,
        0x16 => DnValue::Ia5String(text()?.try_into()?),
        0x14 => DnValue::TeletexString(text()?.try_into()?),
        0x1e => DnValue::BmpString(rcgen::string::BmpString::from_utf16be(value.to_vec())?),
        0x1c => DnValue::UniversalString(rcgen::string::UniversalString::from_utf32be(
            value.to_vec(),
        )?),
        _ => {
            return Err(CertError::UnsupportedCa(
                "unsupported string type in subject",
            ));
        }
    })
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    // rcgen produces PEM for what it generates; the CA certificate may have
    // been loaded instead, so encode by hand (64-column base64, as RFC 7468).
    let b64 = base64_encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        // Base64 output is ASCII, so each chunk is valid UTF-8.
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn base64_encode(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 0x3f) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Paths of a dev PKI written by [`write_dev_pki`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevPki {
    pub ca_cert: PathBuf,
    pub(crate) ca_key: PathBuf,
    pub node_cert: PathBuf,
    pub node_key: PathBuf,
    pub crl: PathBuf,
    /// (participant id, certificate path, key path), in the order given.
    pub(crate) clients: Vec<(String, PathBuf, PathBuf)>,
}

/// Writes a whole dev PKI into `dir`: `ca.pem`, `ca.key`, `node.pem`,
/// `node.key`, `crl.pem` (empty, valid a year) and `clients/<id>.pem` +
/// `.key` for each (participant id, common name, OIN). The CA's subject
/// is [`dev_ca_name`]'s, its own to each dev PKI.
///
/// Refuses to run when `ca.key` already exists, so re-running `init` never
/// silently replaces a PKI that participants may already trust. Everything is
/// generated before anything is written, and `ca.key` is created exclusively
/// first, so a refusal leaves the directory untouched. Key files are mode 0600
/// on unix.
pub fn write_dev_pki(
    dir: &Path,
    node_hosts: &[String],
    participants: &[(String, String, Option<String>)],
) -> Result<DevPki, CertError> {
    let ca_key_path = dir.join("ca.key");
    if ca_key_path.exists() {
        return Err(CertError::AlreadyExists { path: ca_key_path });
    }
    let mut seen = std::collections::HashSet::new();
    for (id, _, _) in participants {
        if !is_safe_file_stem(id) {
            return Err(CertError::InvalidParticipantId(id.clone()));
        }
        if !seen.insert(id.as_str()) {
            return Err(CertError::DuplicateParticipantId(id.clone()));
        }
    }

    let ca = CertAuthority::generate(&dev_ca_name(dir)?)?;
    // A node certificate both ways: its listener's (serverAuth) and, in a
    // federation, its calls to peer nodes (clientAuth), with one key.
    let node = ca.issue_node("sluis node", node_hosts)?;
    let crl = ca.crl_pem(&[], Duration::days(365))?;
    let clients = participants
        .iter()
        .map(|(id, cn, oin)| {
            let cert = ca.issue_client(&ClientCertSpec::new(cn, oin.as_deref()))?;
            Ok((id.clone(), cert))
        })
        .collect::<Result<Vec<_>, CertError>>()?;

    create_dir(dir)?;
    write_file(&ca_key_path, &ca.key_pem(), FileKind::NewSecret)?;
    let mut pki = DevPki {
        ca_cert: dir.join("ca.pem"),
        ca_key: ca_key_path,
        node_cert: dir.join("node.pem"),
        node_key: dir.join("node.key"),
        crl: dir.join("crl.pem"),
        clients: Vec::with_capacity(clients.len()),
    };
    write_file(&pki.ca_cert, &ca.cert_pem(), FileKind::Public)?;
    write_file(&pki.node_cert, &node.cert_pem, FileKind::Public)?;
    write_file(&pki.node_key, &node.key_pem, FileKind::Secret)?;
    write_file(&pki.crl, &crl, FileKind::Public)?;

    if !clients.is_empty() {
        let clients_dir = dir.join("clients");
        create_dir(&clients_dir)?;
        for (id, cert) in clients {
            let cert_path = clients_dir.join(format!("{id}.pem"));
            let key_path = clients_dir.join(format!("{id}.key"));
            write_file(&cert_path, &cert.cert_pem, FileKind::Public)?;
            write_file(&key_path, &cert.key_pem, FileKind::Secret)?;
            pki.clients.push((id, cert_path, key_path));
        }
    }
    Ok(pki)
}

/// Participant ids become file names; keep them from escaping the directory
/// or turning into hidden files.
fn is_safe_file_stem(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn create_dir(dir: &Path) -> Result<(), CertError> {
    fs::create_dir_all(dir).map_err(|source| CertError::Io {
        path: dir.to_path_buf(),
        source,
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum FileKind {
    Public,
    /// Private key; may replace a stale file left by an interrupted run.
    Secret,
    /// Private key that must not exist yet: the exclusive create is what makes
    /// the "never replace a CA" promise hold even against a concurrent run.
    NewSecret,
}

fn write_file(path: &Path, contents: &str, kind: FileKind) -> Result<(), CertError> {
    let io_err = |source| CertError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut options = fs::OpenOptions::new();
    options.write(true);
    if kind == FileKind::NewSecret {
        options.create_new(true);
    } else {
        options.create(true).truncate(true);
    }
    #[cfg(unix)]
    if kind != FileKind::Public {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            CertError::AlreadyExists {
                path: path.to_path_buf(),
            }
        } else {
            io_err(source)
        }
    })?;
    // The mode above only applies to newly created files; tighten a
    // pre-existing key file before the secret lands in it.
    #[cfg(unix)]
    if kind != FileKind::Public {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(io_err)?;
    }
    file.write_all(contents.as_bytes()).map_err(io_err)?;
    file.sync_all().map_err(io_err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::RootCertStore;
    use rustls::pki_types::{CertificateRevocationListDer, UnixTime};
    use rustls::server::WebPkiClientVerifier;
    use rustls::server::danger::ClientCertVerifier;
    use std::sync::Arc;

    const OIN: &str = "00000001003214345000";

    fn verifier(ca_der: &[u8], crl_pem: &str) -> Arc<dyn ClientCertVerifier> {
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from(ca_der.to_vec()))
            .expect("CA cert accepted as trust anchor");
        let crl =
            CertificateRevocationListDer::from_pem_slice(crl_pem.as_bytes()).expect("CRL PEM");
        WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .with_crls([crl])
        .build()
        .expect("verifier")
    }

    fn verify(v: &Arc<dyn ClientCertVerifier>, cert: &IssuedCert) -> Result<(), rustls::Error> {
        v.verify_client_cert(
            &CertificateDer::from(cert.cert_der.clone()),
            &[],
            UnixTime::now(),
        )
        .map(|_| ())
    }

    #[test]
    fn client_certificates_verify_with_webpki() {
        let ca = CertAuthority::generate("test CA").unwrap();
        let good = ca
            .issue_client(&ClientCertSpec::new("Gemeente A", Some(OIN)))
            .unwrap();
        let revoked = ca
            .issue_client(&ClientCertSpec::new("Gemeente B", None))
            .unwrap();
        let mut expired_spec = ClientCertSpec::new("Gemeente C", Some(OIN));
        expired_spec.not_before = OffsetDateTime::now_utc() - Duration::days(30);
        expired_spec.not_after = OffsetDateTime::now_utc() - Duration::days(1);
        let expired = ca.issue_client(&expired_spec).unwrap();
        let other_ca = CertAuthority::generate("test CA").unwrap();
        let foreign = other_ca
            .issue_client(&ClientCertSpec::new("Gemeente A", Some(OIN)))
            .unwrap();

        let crl = ca
            .crl_pem(std::slice::from_ref(&revoked.serial), Duration::days(1))
            .unwrap();
        let v = verifier(&ca.cert_der(), &crl);

        verify(&v, &good).expect("good client cert verifies");
        assert_eq!(
            x509::subject_serial_number(&good.cert_der)
                .unwrap()
                .as_deref(),
            Some(OIN)
        );
        assert_eq!(
            x509::subject_serial_number(&revoked.cert_der).unwrap(),
            None
        );
        assert_eq!(
            x509::serial_number(&good.cert_der).unwrap(),
            good.serial.as_slice()
        );

        let err = verify(&v, &expired).expect_err("expired cert must fail");
        assert!(
            matches!(
                err,
                rustls::Error::InvalidCertificate(rustls::CertificateError::ExpiredContext { .. })
                    | rustls::Error::InvalidCertificate(rustls::CertificateError::Expired)
            ),
            "{err:?}"
        );
        let err = verify(&v, &foreign).expect_err("cert from another CA must fail");
        assert!(
            matches!(
                err,
                rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
                    | rustls::Error::InvalidCertificate(rustls::CertificateError::BadSignature)
            ),
            "{err:?}"
        );
        let err = verify(&v, &revoked).expect_err("revoked cert must fail");
        assert!(
            matches!(
                err,
                rustls::Error::InvalidCertificate(rustls::CertificateError::Revoked)
            ),
            "{err:?}"
        );

        // The same certificate passes against a CRL that does not list it, so
        // the failure above really is the revocation entry.
        let empty = ca.crl_pem(&[], Duration::days(1)).unwrap();
        verify(&verifier(&ca.cert_der(), &empty), &revoked).expect("not revoked in empty CRL");
    }

    #[test]
    fn not_yet_valid_fails() {
        let ca = CertAuthority::generate("test CA").unwrap();
        let mut spec = ClientCertSpec::new("later", None);
        spec.not_before = OffsetDateTime::now_utc() + Duration::days(1);
        let cert = ca.issue_client(&spec).unwrap();
        let v = verifier(&ca.cert_der(), &ca.crl_pem(&[], Duration::days(1)).unwrap());
        assert!(verify(&v, &cert).is_err());
    }

    #[test]
    fn server_cert_is_not_a_client_cert() {
        let ca = CertAuthority::generate("test CA").unwrap();
        let server = ca
            .issue_server("node", &["localhost".into(), "127.0.0.1".into()])
            .unwrap();
        let v = verifier(&ca.cert_der(), &ca.crl_pem(&[], Duration::days(1)).unwrap());
        // serverAuth-only EKU: webpki must refuse it for client authentication.
        assert!(verify(&v, &server).is_err());
        assert!(matches!(
            ca.issue_server("node", &[]),
            Err(CertError::NoHosts)
        ));
    }

    #[test]
    fn server_cert_verifies_for_its_hosts() {
        use rustls::client::WebPkiServerVerifier;
        use rustls::client::danger::ServerCertVerifier;
        use rustls::pki_types::ServerName;

        let ca = CertAuthority::generate("test CA").unwrap();
        let server = ca
            .issue_server("node", &["localhost".into(), "127.0.0.1".into()])
            .unwrap();
        let mut roots = RootCertStore::empty();
        roots.add(CertificateDer::from(ca.cert_der())).unwrap();
        let v = WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .unwrap();
        let der = CertificateDer::from(server.cert_der.clone());
        for host in ["localhost", "127.0.0.1"] {
            let name = ServerName::try_from(host).unwrap();
            v.verify_server_cert(&der, &[], &name, &[], UnixTime::now())
                .unwrap_or_else(|e| panic!("{host}: {e:?}"));
        }
        let other = ServerName::try_from("example.org").unwrap();
        assert!(
            v.verify_server_cert(&der, &[], &other, &[], UnixTime::now())
                .is_err()
        );
    }

    #[test]
    fn from_pem_round_trips() {
        let ca = CertAuthority::generate("round trip CA").unwrap();
        let reloaded = CertAuthority::from_pem(&ca.cert_pem(), &ca.key_pem()).unwrap();
        assert_eq!(reloaded.cert_der(), ca.cert_der());
        assert_eq!(reloaded.cert_pem(), ca.cert_pem());

        let cert = reloaded
            .issue_client(&ClientCertSpec::new("after reload", Some(OIN)))
            .unwrap();
        let early = ca
            .issue_client(&ClientCertSpec::new("before reload", None))
            .unwrap();
        // A CRL from the reloaded CA must be accepted for the original CA cert.
        let crl = reloaded
            .crl_pem(std::slice::from_ref(&early.serial), Duration::days(1))
            .unwrap();
        let v = verifier(&ca.cert_der(), &crl);
        verify(&v, &cert).expect("cert from reloaded CA verifies against original CA");
        assert!(matches!(
            verify(&v, &early),
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Revoked
            ))
        ));
        assert_eq!(
            x509::issuer_name_der(&cert.cert_der).unwrap(),
            x509::subject_name_der(&ca.cert_der()).unwrap()
        );
    }

    #[test]
    fn from_pem_rejects_wrong_key_and_garbage() {
        let ca = CertAuthority::generate("a").unwrap();
        let other = CertAuthority::generate("b").unwrap();
        assert!(matches!(
            CertAuthority::from_pem(&ca.cert_pem(), &other.key_pem()),
            Err(CertError::KeyMismatch)
        ));
        assert!(matches!(
            CertAuthority::from_pem("not pem", &ca.key_pem()),
            Err(CertError::Pem { .. })
        ));
        assert!(CertAuthority::from_pem(&ca.cert_pem(), "not a key").is_err());
    }

    #[test]
    fn oin_must_be_printable() {
        let ca = CertAuthority::generate("a").unwrap();
        let spec = ClientCertSpec::new("x", Some("oin\u{e9}"));
        assert!(matches!(ca.issue_client(&spec), Err(CertError::Rcgen(_))));
    }

    #[test]
    fn serials_are_random_and_encode_verbatim() {
        let ca = CertAuthority::generate("a").unwrap();
        let a = ca.issue_client(&ClientCertSpec::new("a", None)).unwrap();
        let b = ca.issue_client(&ClientCertSpec::new("b", None)).unwrap();
        assert_ne!(a.serial, b.serial);
        assert_eq!(
            x509::serial_number(&a.cert_der).unwrap(),
            a.serial.as_slice()
        );
        assert!(!format!("{a:?}").contains("PRIVATE KEY"));
    }

    #[test]
    fn out_of_range_times_are_errors_not_panics() {
        let ca = CertAuthority::generate("a").unwrap();
        let mut spec = ClientCertSpec::new("x", None);
        spec.not_before = time::macros::datetime!(-0001-01-01 0:00 UTC);
        assert!(matches!(
            ca.issue_client(&spec),
            Err(CertError::TimeOutOfRange)
        ));
        assert!(matches!(
            ca.crl_pem(&[], Duration::MAX),
            Err(CertError::TimeOutOfRange)
        ));
    }

    #[test]
    fn base64_matches_known_vectors() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(input.as_bytes()), want);
        }
    }

    #[test]
    fn write_dev_pki_writes_a_usable_pki_once() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("pki");
        let participants = vec![
            (
                "gemeente-a".to_string(),
                "Gemeente A".to_string(),
                Some(OIN.to_string()),
            ),
            ("uwv".to_string(), "UWV".to_string(), None),
        ];
        let pki = write_dev_pki(
            &dir,
            &["localhost".into(), "127.0.0.1".into()],
            &participants,
        )
        .unwrap();

        let read = |p: &Path| fs::read_to_string(p).unwrap();
        let ca = CertAuthority::from_pem(&read(&pki.ca_cert), &read(&pki.ca_key)).unwrap();
        let v = verifier(&ca.cert_der(), &read(&pki.crl));
        assert_eq!(pki.clients.len(), 2);
        for ((id, cert_path, key_path), (want_id, _, oin)) in pki.clients.iter().zip(&participants)
        {
            assert_eq!(id, want_id);
            assert_eq!(cert_path, &dir.join("clients").join(format!("{id}.pem")));
            let der = CertificateDer::from_pem_slice(read(cert_path).as_bytes()).unwrap();
            v.verify_client_cert(&der, &[], UnixTime::now()).unwrap();
            assert_eq!(&x509::subject_serial_number(&der).unwrap(), oin);
            KeyPair::from_pem(&read(key_path)).unwrap();
        }
        KeyPair::from_pem(&read(&pki.node_key)).unwrap();
        CertificateDer::from_pem_slice(read(&pki.node_cert).as_bytes()).unwrap();

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for p in [&pki.ca_key, &pki.node_key, &pki.clients[0].2] {
                let mode = fs::metadata(p).unwrap().permissions().mode() & 0o777;
                assert_eq!(mode, 0o600, "{}", p.display());
            }
        }

        let ca_key_before = read(&pki.ca_key);
        let err = write_dev_pki(&dir, &["localhost".into()], &[]).unwrap_err();
        assert!(matches!(err, CertError::AlreadyExists { .. }), "{err}");
        assert!(err.to_string().contains("ca.key"), "{err}");
        assert_eq!(read(&pki.ca_key), ca_key_before);
    }

    /// Two dev PKIs, even of folders with one name, have CAs of distinct
    /// subjects naming their node folder: peers can trust both.
    #[test]
    fn dev_cas_have_distinct_subjects() {
        let tmp = tempfile::tempdir().unwrap();
        let subject = |node: &str| {
            let pki = write_dev_pki(
                &tmp.path().join(node).join("pki"),
                &["localhost".into()],
                &[],
            )
            .unwrap();
            let der = CertificateDer::from_pem_slice(
                fs::read_to_string(&pki.ca_cert).unwrap().as_bytes(),
            )
            .unwrap();
            crate::net::crl::issuer_name(x509::subject_name_der(&der).unwrap())
        };
        let (a, b) = (subject("node-a"), subject("node-b"));
        assert!(a.contains("sluis development CA node-a "), "{a}");
        assert!(b.contains("sluis development CA node-b "), "{b}");
        let other = tempfile::tempdir().unwrap();
        let again = write_dev_pki(
            &other.path().join("node-a").join("pki"),
            &["localhost".into()],
            &[],
        )
        .unwrap();
        let der =
            CertificateDer::from_pem_slice(fs::read_to_string(&again.ca_cert).unwrap().as_bytes())
                .unwrap();
        assert_ne!(
            crate::net::crl::issuer_name(x509::subject_name_der(&der).unwrap()),
            a
        );
    }

    #[test]
    fn write_dev_pki_rejects_bad_participant_ids() {
        let tmp = tempfile::tempdir().unwrap();
        for bad in ["", "../x", "a/b", ".hidden"] {
            let p = vec![(bad.to_string(), "X".to_string(), None)];
            let err = write_dev_pki(tmp.path(), &["localhost".into()], &p).unwrap_err();
            assert!(
                matches!(err, CertError::InvalidParticipantId(_)),
                "{bad}: {err}"
            );
        }
        let p = vec![
            ("a".to_string(), "A".to_string(), None),
            ("a".to_string(), "A2".to_string(), None),
        ];
        assert!(matches!(
            write_dev_pki(tmp.path(), &["localhost".into()], &p),
            Err(CertError::DuplicateParticipantId(_))
        ));
        // Nothing was written by the refused runs.
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 0);
    }
}
