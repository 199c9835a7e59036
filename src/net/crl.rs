//! Which CRL decides, when several come from one issuer.
//!
//! An operator revokes a certificate by appending the CA's new CRL to the
//! CRL file (or adding a second file) and sending SIGHUP. webpki, given
//! several CRLs of one issuer, consults the first it finds and never looks
//! at the others, so the old, empty CRL kept deciding and the revoked
//! certificate kept working. Here the set is reduced before webpki sees it:
//! per scope — issuer and issuingDistributionPoint (RFC 5280 §5.2.5), as
//! two CRLs with different distribution points cover different
//! certificates — the **newest** CRL decides: the higher cRLNumber
//! (§5.2.3: a CA's CRL numbers increase), then the later thisUpdate. The
//! others are superseded and logged as such, as is which CRL decides for
//! which issuer, at every load and reload.
//!
//! A CRL is checked before it may decide: its structure (`x509::crl_fields`);
//! not a delta CRL (webpki has no base to apply one to); and, when its issuer
//! is one of the configured client CAs, its signature, with that CA's key
//! and the node's crypto provider. A set with a broken CRL, or with two
//! different CRLs that claim the same number and thisUpdate for one scope,
//! is refused, naming the files, so a reload keeps the configuration that
//! worked. Neither may a reload un-revoke: a set that lacks a scope the
//! running one has, or holds an older CRL for it, is refused
//! (`no_rollback`), and every client CA must have a CRL unless the
//! operator says otherwise (`require_each_ca`). A CRL from an issuer that is not a configured CA (an
//! intermediate) takes part in the choice unverified; webpki verifies its
//! signature when a certificate of that issuer is checked, and fails closed
//! if it does not verify.

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer};

use crate::net::x509::{self, CrlFields};

/// Why a set of CRLs was refused.
#[derive(Debug, thiserror::Error)]
pub enum CrlError {
    #[error("cannot read CRL file {path}: {source}")]
    Read {
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error("CRL {position} in {path}: {reason}")]
    Invalid {
        path: PathBuf,
        /// 1-based position of the CRL in its file.
        position: usize,
        reason: String,
    },
    #[error(
        "CRL {first_position} in {first} and CRL {second_position} in {second} are different CRLs from {issuer} with the same CRL number and thisUpdate, so neither can be said to be newer; remove the one that is wrong"
    )]
    Ambiguous {
        issuer: String,
        first: PathBuf,
        first_position: usize,
        second: PathBuf,
        second_position: usize,
    },
    #[error(
        "no CRL from the client CA {issuer}: revocation of its certificates would not be checked; add its CRL to {setting}, or set tls.allow_missing_crl = true to serve without one"
    )]
    Missing {
        issuer: String,
        /// The setting that lists the CRLs (`tls.crl`, `federation.peer_crl`).
        setting: &'static str,
    },
    #[error(
        "the CRLs no longer hold one from {issuer}, which the running configuration has: a reload may not un-revoke certificates; the running configuration is kept"
    )]
    Dropped { issuer: String },
    #[error(
        "CRL {position} in {path} from {issuer} is older than the one in force (CRL number {now} < {was}, RFC 5280 §5.2.3): a reload may not un-revoke certificates; the running configuration is kept"
    )]
    RolledBack {
        issuer: String,
        path: PathBuf,
        position: usize,
        was: String,
        now: String,
    },
}

/// One CRL as found: its file, its 1-based position there, its DER.
#[derive(Clone, Debug)]
pub(crate) struct CrlFile {
    pub(crate) path: PathBuf,
    pub(crate) position: usize,
    pub(crate) der: CertificateRevocationListDer<'static>,
}

/// Every CRL in `paths`, in order (a PEM file may hold several).
pub(crate) fn read(paths: &[PathBuf]) -> Result<Vec<CrlFile>, CrlError> {
    let mut out = Vec::new();
    for path in paths {
        let bytes =
            crate::files::read(path, crate::files::Kind::Crl).map_err(|e| CrlError::Read {
                path: path.clone(),
                source: rustls::pki_types::pem::Error::Io(e),
            })?;
        let items = CertificateRevocationListDer::pem_slice_iter(&bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| CrlError::Read {
                path: path.clone(),
                source,
            })?;
        out.extend(items.into_iter().enumerate().map(|(i, der)| CrlFile {
            path: path.clone(),
            position: i + 1,
            der,
        }));
    }
    Ok(out)
}

/// What a CRL covers: its issuer's Name (DER) and its
/// issuingDistributionPoint (DER), if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CrlScope {
    pub(crate) issuer: Vec<u8>,
    pub(crate) idp: Option<Vec<u8>>,
}

/// The CRL that decides for one scope (issuer and distribution point).
#[derive(Clone, Debug)]
pub(crate) struct Deciding {
    /// The issuer's commonName, or a digest of its Name when it has none.
    pub(crate) issuer: String,
    pub(crate) path: PathBuf,
    pub(crate) position: usize,
    /// cRLNumber in decimal (hex with `0x` beyond 128 bits), if present.
    pub(crate) crl_number: Option<String>,
    /// Seconds since the Unix epoch.
    pub(crate) this_update: i64,
    pub(crate) next_update: Option<i64>,
    pub(crate) revoked: usize,
    /// Whether it has a issuingDistributionPoint (a partitioned CRL).
    pub(crate) partitioned: bool,
    /// Whether its signature was checked here (its issuer is a configured
    /// CA); otherwise webpki checks it when it is used.
    pub(crate) signature_checked: bool,
    /// The CRLs of the same scope it supersedes: (file, position).
    pub(crate) superseded: Vec<(PathBuf, usize)>,
    /// Its scope: the issuer's Name (DER) and issuingDistributionPoint.
    pub(crate) scope: CrlScope,
    /// cRLNumber's content octets, for comparison with a later reload.
    pub(crate) number: Option<Vec<u8>>,
    pub(crate) der: CertificateRevocationListDer<'static>,
}

impl Deciding {
    /// Logs which CRL decides for which issuer, and what it supersedes.
    pub(crate) fn log(&self) {
        let superseded: Vec<String> = self
            .superseded
            .iter()
            .map(|(p, i)| describe(p, *i))
            .collect();
        tracing::info!(
            issuer = %self.issuer,
            crl = %describe(&self.path, self.position),
            crl_number = self.crl_number.as_deref().unwrap_or("-"),
            this_update = %rfc3339(self.this_update),
            next_update = %self.next_update.map(rfc3339).unwrap_or_else(|| "-".into()),
            revoked = self.revoked,
            partitioned = self.partitioned,
            signature_checked = self.signature_checked,
            superseded = %superseded.join(", "),
            "CRL decides for issuer"
        );
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        if self.next_update.is_some_and(|t| t <= now) {
            tracing::warn!(
                issuer = %self.issuer,
                crl = %describe(&self.path, self.position),
                "the newest CRL of this issuer has expired: every certificate it covers is refused until a current CRL is loaded"
            );
        }
    }
}

/// Reduces `crls` to the newest CRL per scope, checking each as the module
/// documentation says, against the client CAs `cas`.
///
/// Errors: [`CrlError::Invalid`] for a CRL that does not parse, is a delta
/// CRL, or is not signed by the configured CA it names;
/// [`CrlError::Ambiguous`] for two different CRLs of one scope with the
/// same number and thisUpdate.
pub(crate) fn select(
    crls: &[CrlFile],
    cas: &[CertificateDer<'_>],
    provider: &CryptoProvider,
) -> Result<Vec<Deciding>, CrlError> {
    struct Scope<'a> {
        issuer: &'a [u8],
        idp: Option<&'a [u8]>,
        newest: (&'a CrlFile, CrlFields<'a>, bool),
        superseded: Vec<(PathBuf, usize)>,
    }
    let mut scopes: Vec<Scope<'_>> = Vec::new();
    for crl in crls {
        let invalid = |reason: String| CrlError::Invalid {
            path: crl.path.clone(),
            position: crl.position,
            reason,
        };
        let fields = x509::crl_fields(&crl.der).map_err(|e| invalid(e.to_string()))?;
        if fields.delta {
            return Err(invalid(
                "a delta CRL (deltaCRLIndicator); give the complete CRL instead".into(),
            ));
        }
        let checked = check_signature(&fields, cas, provider).map_err(invalid)?;
        let scope = scopes
            .iter_mut()
            .find(|s| s.issuer == fields.issuer && s.idp == fields.issuing_distribution_point);
        let Some(scope) = scope else {
            scopes.push(Scope {
                issuer: fields.issuer,
                idp: fields.issuing_distribution_point,
                newest: (crl, fields, checked),
                superseded: Vec::new(),
            });
            continue;
        };
        let (held, held_fields, _) = &scope.newest;
        let older = match newer(&fields, held_fields) {
            Ordering::Greater => std::mem::replace(&mut scope.newest, (crl, fields, checked)).0,
            Ordering::Less => crl,
            Ordering::Equal if crl.der.as_ref() == held.der.as_ref() => crl,
            Ordering::Equal => {
                return Err(CrlError::Ambiguous {
                    issuer: issuer_name(fields.issuer),
                    first: held.path.clone(),
                    first_position: held.position,
                    second: crl.path.clone(),
                    second_position: crl.position,
                });
            }
        };
        scope.superseded.push((older.path.clone(), older.position));
    }
    Ok(scopes
        .into_iter()
        .map(|s| {
            let (crl, fields, checked) = s.newest;
            Deciding {
                issuer: issuer_name(s.issuer),
                path: crl.path.clone(),
                position: crl.position,
                crl_number: fields.crl_number.map(number_text),
                this_update: fields.this_update,
                next_update: fields.next_update,
                revoked: fields.revoked,
                partitioned: s.idp.is_some(),
                signature_checked: checked,
                superseded: s.superseded,
                scope: CrlScope {
                    issuer: s.issuer.to_vec(),
                    idp: s.idp.map(<[u8]>::to_vec),
                },
                number: fields.crl_number.map(<[u8]>::to_vec),
                der: crl.der.clone(),
            }
        })
        .collect())
}

/// Refuses a deciding set in which a client CA of `cas` has no CRL (unless
/// `allow_missing`, which only warns): without one, its revoked
/// certificates pass.
pub(crate) fn require_each_ca(
    deciding: &[Deciding],
    cas: &[CertificateDer<'_>],
    allow_missing: bool,
    setting: &'static str,
) -> Result<(), CrlError> {
    for ca in cas {
        let Ok(subject) = x509::subject_name_der(ca) else {
            continue;
        };
        if deciding.iter().any(|d| d.scope.issuer == subject) {
            continue;
        }
        let issuer = issuer_name(subject);
        if !allow_missing {
            return Err(CrlError::Missing { issuer, setting });
        }
        tracing::warn!(
            %issuer,
            setting,
            "no CRL from this client CA (tls.allow_missing_crl): revoked certificates of it are accepted"
        );
    }
    Ok(())
}

/// Refuses a reload that would un-revoke: every scope the running set
/// (`before`) has must still be there in `after`, with a CRL no older
/// (cRLNumber, else thisUpdate; RFC 5280 §5.2.3).
pub(crate) fn no_rollback(before: &[Deciding], after: &[Deciding]) -> Result<(), CrlError> {
    for old in before {
        let Some(new) = after.iter().find(|d| d.scope == old.scope) else {
            return Err(CrlError::Dropped {
                issuer: old.issuer.clone(),
            });
        };
        let older = match (&new.number, &old.number) {
            (Some(n), Some(o)) => x509::cmp_crl_numbers(n, o) == Ordering::Less,
            _ => new.this_update < old.this_update,
        };
        if older {
            let show = |d: &Deciding| {
                d.crl_number
                    .clone()
                    .unwrap_or_else(|| format!("none, thisUpdate {}", rfc3339(d.this_update)))
            };
            return Err(CrlError::RolledBack {
                issuer: new.issuer.clone(),
                path: new.path.clone(),
                position: new.position,
                was: show(old),
                now: show(new),
            });
        }
    }
    Ok(())
}

/// Which of two CRLs of one scope is newer: the higher cRLNumber when both
/// have one and they differ, else the later thisUpdate.
fn newer(a: &CrlFields<'_>, b: &CrlFields<'_>) -> Ordering {
    let by_number = match (a.crl_number, b.crl_number) {
        (Some(x), Some(y)) => x509::cmp_crl_numbers(x, y),
        _ => Ordering::Equal,
    };
    by_number.then(a.this_update.cmp(&b.this_update))
}

/// `Ok(true)` when a configured CA with the CRL's issuer as subject
/// verifies its signature, `Ok(false)` when no configured CA is its issuer,
/// `Err` with the reason when the CA's key does not verify it.
fn check_signature(
    crl: &CrlFields<'_>,
    cas: &[CertificateDer<'_>],
    provider: &CryptoProvider,
) -> Result<bool, String> {
    let issuers: Vec<&CertificateDer<'_>> = cas
        .iter()
        .filter(|ca| x509::subject_name_der(ca).is_ok_and(|s| s == crl.issuer))
        .collect();
    if issuers.is_empty() {
        return Ok(false);
    }
    let mut supported = false;
    for ca in issuers {
        let Ok(key) = x509::public_key(ca) else {
            continue;
        };
        for alg in provider.signature_verification_algorithms.all {
            if alg.public_key_alg_id().as_ref() != key.algorithm
                || alg.signature_alg_id().as_ref() != crl.signature_algorithm
            {
                continue;
            }
            supported = true;
            if alg
                .verify_signature(key.key, crl.signed, crl.signature)
                .is_ok()
            {
                return Ok(true);
            }
        }
    }
    Err(if supported {
        format!(
            "its signature does not verify with the key of the client CA {}; it was not issued by that CA or it was altered",
            issuer_name(crl.issuer)
        )
    } else {
        format!(
            "it is signed with an algorithm this node does not support for the key of the client CA {}",
            issuer_name(crl.issuer)
        )
    })
}

/// A CA's name for logs and errors: its commonName, or the start of the
/// SHA-256 of its Name.
pub(crate) fn issuer_name(name_der: &[u8]) -> String {
    match x509::name_common_name(name_der) {
        Some(cn) if cn.chars().all(|c| !c.is_control()) => format!("\"{cn}\""),
        _ => format!("issuer sha256:{}", &x509::cert_sha256_hex(name_der)[..16]),
    }
}

fn number_text(n: &[u8]) -> String {
    let digits: Vec<u8> = n.iter().copied().skip_while(|&b| b == 0).collect();
    if digits.len() <= 16 {
        let v = digits
            .iter()
            .fold(0u128, |acc, &b| (acc << 8) | u128::from(b));
        v.to_string()
    } else {
        format!("0x{}", hex::encode(digits))
    }
}

pub(crate) fn rfc3339(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| t.to_string())
}

/// Where a CRL came from, for logs: `file #position`.
fn describe(path: &Path, position: usize) -> String {
    format!("{} #{position}", path.display())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::pki::CertAuthority;
    use time::{Duration, OffsetDateTime};

    fn provider() -> CryptoProvider {
        rustls::crypto::ring::default_provider()
    }

    fn at(minutes_ago: i64) -> OffsetDateTime {
        OffsetDateTime::now_utc() - Duration::minutes(minutes_ago)
    }

    /// A CRL of `ca` as it would be found at `file` #`position`.
    fn crl(
        ca: &CertAuthority,
        revoked: &[Vec<u8>],
        number: u64,
        this_update: OffsetDateTime,
        file: &str,
        position: usize,
    ) -> CrlFile {
        let pem = ca
            .crl_pem_numbered(
                revoked,
                number,
                this_update,
                this_update + Duration::days(7),
            )
            .unwrap();
        CrlFile {
            path: PathBuf::from(file),
            position,
            der: CertificateRevocationListDer::from_pem_slice(pem.as_bytes()).unwrap(),
        }
    }

    fn ca_der(ca: &CertAuthority) -> Vec<CertificateDer<'static>> {
        vec![CertificateDer::from(ca.cert_der())]
    }

    fn chosen(d: &Deciding) -> (String, usize) {
        (d.path.display().to_string(), d.position)
    }

    #[test]
    fn the_newest_crl_of_an_issuer_decides_wherever_it_is() {
        let ca = CertAuthority::generate("Test CA").unwrap();
        let serial = vec![0x42];
        let old = crl(&ca, &[], 1, at(60), "crl.pem", 1);
        let new = crl(&ca, std::slice::from_ref(&serial), 2, at(1), "crl.pem", 2);
        for set in [
            vec![old.clone(), new.clone()],
            vec![new.clone(), old.clone()],
        ] {
            let d = select(&set, &ca_der(&ca), &provider()).unwrap();
            assert_eq!(d.len(), 1, "one CRL per issuer goes to webpki");
            assert_eq!(chosen(&d[0]), ("crl.pem".into(), 2));
            assert_eq!(d[0].crl_number.as_deref(), Some("2"));
            assert_eq!(d[0].revoked, 1);
            assert_eq!(d[0].superseded, vec![(PathBuf::from("crl.pem"), 1)]);
            assert!(d[0].signature_checked);
            assert_eq!(d[0].issuer, "\"Test CA\"");
        }
    }

    #[test]
    fn the_crl_number_decides_before_this_update() {
        let ca = CertAuthority::generate("Test CA").unwrap();
        // A higher number with an earlier thisUpdate still wins...
        let a = crl(&ca, &[], 7, at(1), "a.pem", 1);
        let b = crl(&ca, &[], 8, at(30), "b.pem", 1);
        let d = select(&[a, b], &ca_der(&ca), &provider()).unwrap();
        assert_eq!(chosen(&d[0]), ("b.pem".into(), 1));
        // ...and with equal numbers the later thisUpdate does.
        let a = crl(&ca, &[], 8, at(10), "a.pem", 1);
        let b = crl(&ca, &[], 8, at(30), "b.pem", 1);
        let d = select(&[a, b], &ca_der(&ca), &provider()).unwrap();
        assert_eq!(chosen(&d[0]), ("a.pem".into(), 1));
    }

    #[test]
    fn each_issuer_keeps_its_own_newest_crl() {
        let (one, two) = (
            CertAuthority::generate("CA one").unwrap(),
            CertAuthority::generate("CA two").unwrap(),
        );
        let set = [
            crl(&one, &[], 5, at(5), "crl.pem", 1),
            crl(&two, &[], 9, at(5), "crl.pem", 2),
            crl(&one, &[], 6, at(1), "crl.pem", 3),
        ];
        let cas = [ca_der(&one), ca_der(&two)].concat();
        let d = select(&set, &cas, &provider()).unwrap();
        let mut got: Vec<(String, usize)> = d.iter().map(chosen).collect();
        got.sort();
        assert_eq!(got, vec![("crl.pem".into(), 2), ("crl.pem".into(), 3)]);
    }

    #[test]
    fn the_same_crl_twice_is_no_conflict_but_two_different_with_one_number_are() {
        let ca = CertAuthority::generate("Test CA").unwrap();
        let t = at(5);
        let a = crl(&ca, &[], 3, t, "a.pem", 1);
        let same = CrlFile {
            path: "b.pem".into(),
            ..a.clone()
        };
        let d = select(&[a.clone(), same], &ca_der(&ca), &provider()).unwrap();
        assert_eq!(chosen(&d[0]), ("a.pem".into(), 1));

        let other = crl(&ca, &[vec![0x01]], 3, t, "b.pem", 4);
        let err = select(&[a, other], &ca_der(&ca), &provider()).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, CrlError::Ambiguous { .. }), "{text}");
        assert!(
            text.contains("a.pem") && text.contains("b.pem") && text.contains("CRL 4"),
            "names both files: {text}"
        );
    }

    #[test]
    fn a_crl_not_signed_by_the_ca_it_names_is_refused_naming_its_file() {
        let ca = CertAuthority::generate("Test CA").unwrap();
        // Same name, other key: the CRL names the CA but is not its.
        let impostor = CertAuthority::generate("Test CA").unwrap();
        let forged = crl(&impostor, &[], 99, at(1), "crl.pem", 2);
        let err = select(&[forged], &ca_der(&ca), &provider()).unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(err, CrlError::Invalid { position: 2, .. }),
            "{text}"
        );
        assert!(
            text.contains("crl.pem") && text.contains("signature"),
            "{text}"
        );
    }

    #[test]
    fn a_crl_of_an_issuer_that_is_not_a_configured_ca_is_kept_unchecked() {
        let ca = CertAuthority::generate("Test CA").unwrap();
        let intermediate = CertAuthority::generate("Intermediate").unwrap();
        let d = select(
            &[crl(&intermediate, &[], 1, at(1), "crl.pem", 1)],
            &ca_der(&ca),
            &provider(),
        )
        .unwrap();
        assert!(!d[0].signature_checked);
    }

    #[test]
    fn garbage_is_refused_naming_its_file() {
        let bad = CrlFile {
            path: "crl.pem".into(),
            position: 3,
            der: CertificateRevocationListDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x01]),
        };
        let err = select(&[bad], &[], &provider()).unwrap_err();
        assert!(
            matches!(err, CrlError::Invalid { position: 3, .. }),
            "{err}"
        );
    }
}
