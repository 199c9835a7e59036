//! What `sluis check-config` asks of the node's TLS files, all in one pass:
//! each file readable and holding what its setting says, the node's key
//! belonging to its certificate, and how long the node certificate, each
//! client CA and each deciding CRL (`crl`) have left.
//!
//! It reads with the very functions the acceptor builds its configuration
//! with (`tls::read_certs`, `crl::read`, `crl::select`), so a file this
//! check passes is one `tls::server_config` reads the same way.

use std::path::{Path, PathBuf};

use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;

use crate::net::crl;
use crate::net::tls::{self, TlsFiles};
use crate::net::x509;

/// One problem with a TLS file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFinding {
    /// An error stops the node from starting; a warning is only reported.
    pub error: bool,
    /// The file the problem is in.
    pub file: PathBuf,
    /// The setting of `sluis.toml` that names the file (`tls.cert`, ...).
    pub setting: &'static str,
    pub problem: String,
    pub fix: String,
}

/// Checks the TLS files at `now` (seconds since the Unix epoch); a
/// certificate or CRL that ends within `warn_secs` is a warning, one that
/// has ended (or not begun) an error.
pub fn check_tls(files: &TlsFiles, now: i64, warn_secs: i64) -> Vec<TlsFinding> {
    let mut out = Vec::new();
    let mut push = |error: bool, file: &Path, setting: &'static str, problem: String, fix: &str| {
        out.push(TlsFinding {
            error,
            file: file.to_path_buf(),
            setting,
            problem,
            fix: fix.to_string(),
        })
    };
    let renew = "renew it with its CA, replace the file, and send the node SIGHUP";
    let (ca_setting, crl_setting) = (files.settings.client_ca, files.settings.crl);
    let (cert_setting, key_setting) = (files.settings.cert, files.settings.key);

    // The node's certificate and key.
    let chain = match tls::read_certs("node certificate", &files.cert) {
        Ok(chain) => Some(chain),
        Err(e) => {
            push(
                true,
                &files.cert,
                cert_setting,
                e.to_string(),
                &format!(
                    "point {cert_setting} at the node's certificate chain (PEM, the node's own certificate first) and make it readable by the node's user"
                ),
            );
            None
        }
    };
    if let Some(leaf) = chain.as_ref().and_then(|c| c.first()) {
        match x509::validity(leaf) {
            Ok(validity) => {
                if let Some((error, problem)) =
                    lifetime("the node certificate", validity, now, warn_secs)
                {
                    push(error, &files.cert, cert_setting, problem, renew);
                }
            }
            Err(e) => push(
                true,
                &files.cert,
                cert_setting,
                format!("the node certificate cannot be read: {e}"),
                "give a DER-valid X.509 certificate in PEM",
            ),
        }
        if let Some((problem, fix)) = wrong_use(leaf, files.settings.cert_use, cert_setting) {
            push(true, &files.cert, cert_setting, problem, &fix);
        }
    }
    let key = match PrivateKeyDer::from_pem_file(&files.key) {
        Ok(key) => Some(key),
        Err(e) => {
            push(
                true,
                &files.key,
                key_setting,
                format!("cannot read the node key: {e}"),
                &format!(
                    "point {key_setting} at the private key of the node certificate (PEM: PKCS#8, SEC1 or PKCS#1) and make it readable by the node's user only"
                ),
            );
            None
        }
    };
    if let (Some(leaf), Some(key)) = (chain.as_ref().and_then(|c| c.first()), key) {
        match tls::provider().key_provider.load_private_key(key) {
            Err(e) => push(
                true,
                &files.key,
                key_setting,
                format!("the node key cannot be used: {e}"),
                "give an ECDSA (P-256, P-384), Ed25519 or RSA private key",
            ),
            Ok(signing) => {
                let matches = signing.public_key().map(|spki| {
                    x509::subject_public_key_info(leaf).is_ok_and(|c| c == spki.as_ref())
                });
                if matches == Some(false) {
                    push(
                        true,
                        &files.key,
                        key_setting,
                        format!(
                            "this key does not belong to the certificate in {}",
                            files.cert.display()
                        ),
                        "give the key the certificate was issued for, or the certificate issued for this key",
                    );
                }
            }
        }
    }

    // The CAs that issue client certificates.
    let cas = match tls::read_certs("client CA", &files.client_ca) {
        Ok(cas) => cas,
        Err(e) => {
            push(
                true,
                &files.client_ca,
                ca_setting,
                e.to_string(),
                &format!(
                    "point {ca_setting} at the certificates (PEM) of the CAs that issue the certificates of those who call this node"
                ),
            );
            Vec::new()
        }
    };
    for (i, ca) in cas.iter().enumerate() {
        let name = x509::subject_name_der(ca).map_or_else(|_| "a CA".into(), crl::issuer_name);
        // A CRL is matched to its CA, and a chain to its issuer, by the
        // subject name: two CAs under one name make both ambiguous.
        if let Ok(subject) = x509::subject_name_der(ca)
            && let Some(first) = cas[..i]
                .iter()
                .position(|c| x509::subject_name_der(c).is_ok_and(|s| s == subject))
        {
            push(
                true,
                &files.client_ca,
                ca_setting,
                format!(
                    "certificates {} and {} of the file are two CAs with the same subject {name}: which one issued a certificate, and whose CRL a CRL is, cannot be told apart",
                    first + 1,
                    i + 1
                ),
                &format!(
                    "keep one certificate per CA subject in {ca_setting} (the CA's current one); a CA renewed with a new key under its old name needs its old certificate removed once nothing it issued is in use"
                ),
            );
        }
        match x509::validity(ca) {
            Ok(validity) => {
                if let Some((error, problem)) =
                    lifetime(&format!("CA {name}"), validity, now, warn_secs)
                {
                    push(
                        error,
                        &files.client_ca,
                        ca_setting,
                        problem,
                        "replace it with the CA's current certificate, and send the node SIGHUP",
                    );
                }
            }
            Err(e) => push(
                true,
                &files.client_ca,
                ca_setting,
                format!("a client CA cannot be read: {e}"),
                "give DER-valid X.509 certificates in PEM",
            ),
        }
    }

    // The CRLs: each file on its own, so that every unreadable one is
    // named, then the set as the acceptor chooses from it.
    let mut crls = Vec::new();
    for path in &files.crls {
        match crl::read(std::slice::from_ref(path)) {
            Ok(found) if found.is_empty() => push(
                true,
                path,
                crl_setting,
                "the file holds no CRL".into(),
                &format!(
                    "put the CA's current CRL (PEM, -----BEGIN X509 CRL-----) in it, or remove the file from {crl_setting}"
                ),
            ),
            Ok(found) => crls.extend(found),
            Err(e) => push(
                true,
                path,
                crl_setting,
                e.to_string(),
                &format!(
                    "fetch the CA's current CRL (PEM) into the file, or remove the file from {crl_setting}"
                ),
            ),
        }
    }
    // `serve` refuses a client CA without a CRL unless
    // `tls.allow_missing_crl` (`crl::require_each_ca`): the same here, so
    // that a configuration this check passes is one the node starts with.
    if files.crls.is_empty() {
        if files.allow_missing_crl {
            push(
                false,
                &files.client_ca,
                crl_setting,
                format!(
                    "no CRL is configured in {crl_setting} (tls.allow_missing_crl): a revoked certificate is still accepted"
                ),
                &format!("add each CA's CRL to {crl_setting}, and keep it current"),
            );
        } else {
            push(
                true,
                &files.client_ca,
                crl_setting,
                format!(
                    "no CRL is configured in {crl_setting}: the node does not start without a CRL of every CA in {ca_setting}"
                ),
                &format!(
                    "add each CA's CRL to {crl_setting}, and keep it current (or set tls.allow_missing_crl = true to serve without one, accepting revoked certificates)"
                ),
            );
        }
    }
    if crls.is_empty() {
        return out;
    }
    match crl::select(&crls, &cas, &tls::provider()) {
        Err(e) => push(
            true,
            &error_file(&e, crl_setting),
            crl_setting,
            e.to_string(),
            &format!("replace the CRL with the CA's current one, or remove it from {crl_setting}"),
        ),
        Ok(deciding) => {
            for d in &deciding {
                let Some(next) = d.next_update else { continue };
                let what = format!("the CRL of {} (CRL {} of the file)", d.issuer, d.position);
                let fix = "fetch the CA's current CRL, put it in the file (or append it), and send the node SIGHUP; every certificate of this CA is refused once its newest CRL has expired";
                if next <= now {
                    push(
                        true,
                        &d.path,
                        crl_setting,
                        format!("{what} expired at {}", crl::rfc3339(next)),
                        fix,
                    );
                } else if next - now <= warn_secs {
                    push(
                        false,
                        &d.path,
                        crl_setting,
                        format!(
                            "{what} expires at {} (in {})",
                            crl::rfc3339(next),
                            days(next - now)
                        ),
                        fix,
                    );
                }
            }
            // With CRLs enforced, a certificate whose issuer has none has
            // an unknown revocation status and is refused.
            for ca in &cas {
                let Ok(subject) = x509::subject_name_der(ca) else {
                    continue;
                };
                let name = crl::issuer_name(subject);
                if !deciding.iter().any(|d| d.issuer == name) {
                    push(
                        !files.allow_missing_crl,
                        &files.client_ca,
                        crl_setting,
                        if files.allow_missing_crl {
                            format!(
                                "CA {name} has no CRL among {crl_setting}: with CRLs enforced, every certificate it issued is refused (revocation status unknown)"
                            )
                        } else {
                            format!(
                                "CA {name} has no CRL among {crl_setting}: the node does not start without a CRL of every CA in {ca_setting}"
                            )
                        },
                        &format!(
                            "add this CA's CRL to {crl_setting} (in a chain, every CA needs its CRL), or remove the CA from {ca_setting}"
                        ),
                    );
                }
            }
        }
    }
    out
}

/// Why the certificate `leaf` cannot be presented as `cert_use` (its
/// extendedKeyUsage leaves that side out), and the fix; `None` if it can.
/// An unreadable extension is named too: webpki refuses it as well.
fn wrong_use(leaf: &[u8], cert_use: tls::CertUse, setting: &str) -> Option<(String, String)> {
    let purposes = match x509::key_purposes(leaf) {
        Ok(p) => p,
        Err(e) => {
            return Some((
                format!("the certificate's extendedKeyUsage cannot be read: {e}"),
                "have the CA issue the certificate again".into(),
            ));
        }
    };
    let listed = match (purposes.server_auth, purposes.client_auth) {
        (true, false) => "serverAuth only",
        (false, true) => "clientAuth only",
        _ => "no TLS use",
    };
    match cert_use {
        tls::CertUse::Server if !purposes.server() => Some((
            format!(
                "the certificate in {setting} is not for TLS servers: its extendedKeyUsage allows {listed}, not serverAuth, so every client (and every peer node) refuses the node's listener"
            ),
            format!(
                "put a server certificate in {setting}: one whose extendedKeyUsage has serverAuth (the node's own key; add clientAuth too if the same certificate calls peers)"
            ),
        )),
        tls::CertUse::Client if !purposes.client() => Some((
            format!(
                "the certificate in {setting} is not for TLS clients: its extendedKeyUsage allows {listed}, not clientAuth, so every peer node refuses this node's calls"
            ),
            format!(
                "put a client certificate in {setting}: one whose extendedKeyUsage has clientAuth (a node certificate with both serverAuth and clientAuth serves for both)"
            ),
        )),
        _ => None,
    }
}

/// The hex SHA-256 of the SubjectPublicKeyInfo of the first certificate
/// in the PEM file at `path` (the key a federation directory pins), if it
/// reads.
pub fn leaf_spki_sha256(path: &Path) -> Option<String> {
    let chain = tls::read_certs("certificate", path).ok()?;
    x509::spki_sha256_hex(chain.first()?).ok()
}

/// The file a refused CRL set names first.
fn error_file(e: &crl::CrlError, crl_setting: &str) -> PathBuf {
    match e {
        crl::CrlError::Read { path, .. } | crl::CrlError::Invalid { path, .. } => path.clone(),
        crl::CrlError::Ambiguous { second, .. } => second.clone(),
        crl::CrlError::RolledBack { path, .. } => path.clone(),
        // A CA with no CRL at all: the setting that lists them.
        crl::CrlError::Missing { .. } | crl::CrlError::Dropped { .. } => PathBuf::from(crl_setting),
    }
}

/// Whether `what`, valid over `(not_before, not_after)`, is out of its
/// validity (an error) or ends within `warn_secs` (a warning), and how to
/// say so.
fn lifetime(
    what: &str,
    (not_before, not_after): (i64, i64),
    now: i64,
    warn_secs: i64,
) -> Option<(bool, String)> {
    if not_after <= now {
        Some((
            true,
            format!("{what} expired at {}", crl::rfc3339(not_after)),
        ))
    } else if not_before > now {
        Some((
            true,
            format!("{what} is not valid before {}", crl::rfc3339(not_before)),
        ))
    } else if not_after - now <= warn_secs {
        Some((
            false,
            format!(
                "{what} expires at {} (in {})",
                crl::rfc3339(not_after),
                days(not_after - now)
            ),
        ))
    } else {
        None
    }
}

fn days(secs: i64) -> String {
    match secs / 86_400 {
        0 => "less than a day".into(),
        1 => "1 day".into(),
        n => format!("{n} days"),
    }
}
