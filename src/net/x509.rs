//! Just enough DER walking to read the few certificate and CRL fields sluis
//! acts on.
//!
//! Chain, signature, validity and revocation checks are rustls/webpki's job and
//! have already happened by the time a certificate gets here. What is left is
//! pulling out identity (the OIN that PKIoverheid certificates carry in the
//! subject `serialNumber`) and fingerprints for pinning and logging; and, for
//! CRLs, the fields that say which of several CRLs from one issuer is the
//! newest (RFC 5280 §5.1: issuer, thisUpdate, nextUpdate, cRLNumber,
//! issuingDistributionPoint) and what their signature covers. webpki uses
//! the first CRL of an issuer it finds, so choosing among several is ours
//! (`net::crl`). A full X.509 parser would pull a large dependency tree into
//! a security-sensitive binary for that, so this walks the structure by hand
//! instead.
//!
//! Every function treats its input as hostile: any input, however truncated or
//! garbled, yields an error rather than a panic, and nothing allocates in
//! proportion to a length field before that many bytes are known to be present.

/// Why a certificate could not be walked.
///
/// The message is static because the bytes come from a peer: echoing them
/// back into logs or errors would hand that peer a way to inject text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum X509Error {
    #[error("malformed certificate: {0}")]
    Malformed(&'static str),
}

/// One attribute of a distinguished name, as encoded.
///
/// Kept at the encoding level (tag plus raw value) so that a caller that has
/// to reproduce a name byte for byte, such as reloading a CA to issue under
/// it, can do so without this module guessing at string conversions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAttribute<'a> {
    /// The attribute type's OID arcs, e.g. `[2, 5, 4, 3]` for commonName.
    pub(crate) oid: Vec<u64>,
    /// The DER tag of the value (0x0c UTF8String, 0x13 PrintableString, ...).
    pub(crate) tag: u8,
    /// The value's content octets.
    pub(crate) value: &'a [u8],
}

/// DER encoding of 2.5.4.5 (serialNumber), compared raw to avoid decoding OIDs.
const OID_SERIAL_NUMBER: &[u8] = &[0x55, 0x04, 0x05];
/// DER encoding of 2.5.4.3 (commonName).
const OID_COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
/// DER encoding of 2.5.29.14 (subjectKeyIdentifier).
const OID_SUBJECT_KEY_IDENTIFIER: &[u8] = &[0x55, 0x1d, 0x0e];
/// 2.5.29.37 extendedKeyUsage.
const OID_EXTENDED_KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x25];
/// 1.3.6.1.5.5.7.3.1 id-kp-serverAuth.
const OID_KP_SERVER_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01];
/// 1.3.6.1.5.5.7.3.2 id-kp-clientAuth.
const OID_KP_CLIENT_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02];
/// DER encoding of 2.5.29.20 (cRLNumber, RFC 5280 §5.2.3).
const OID_CRL_NUMBER: &[u8] = &[0x55, 0x1d, 0x14];
/// DER encoding of 2.5.29.27 (deltaCRLIndicator, RFC 5280 §5.2.4).
const OID_DELTA_CRL_INDICATOR: &[u8] = &[0x55, 0x1d, 0x1b];
/// DER encoding of 2.5.29.28 (issuingDistributionPoint, RFC 5280 §5.2.5).
const OID_ISSUING_DISTRIBUTION_POINT: &[u8] = &[0x55, 0x1d, 0x1c];

const TAG_BOOLEAN: u8 = 0x01;
const TAG_INTEGER: u8 = 0x02;
const TAG_BIT_STRING: u8 = 0x03;
const TAG_OCTET_STRING: u8 = 0x04;
const TAG_OID: u8 = 0x06;
const TAG_UTF8_STRING: u8 = 0x0c;
const TAG_PRINTABLE_STRING: u8 = 0x13;
const TAG_UTC_TIME: u8 = 0x17;
const TAG_GENERALIZED_TIME: u8 = 0x18;
const TAG_SEQUENCE: u8 = 0x30;
const TAG_SET: u8 = 0x31;
const TAG_VERSION: u8 = 0xa0;
/// `crlExtensions [0] EXPLICIT` in a TBSCertList.
const TAG_CRL_EXTENSIONS: u8 = 0xa0;
const TAG_ISSUER_UID: u8 = 0x81;
const TAG_SUBJECT_UID: u8 = 0x82;
const TAG_EXTENSIONS: u8 = 0xa3;

/// The subject `serialNumber` attribute (OID 2.5.4.5).
///
/// PKIoverheid certificates carry the organisation's OIN there, which is what
/// sluis authorises on. `Ok(None)` means the certificate has no such
/// attribute; more than one is an error rather than "take the first", because
/// an identity that depends on attribute order is not an identity.
pub fn subject_serial_number(cert_der: &[u8]) -> Result<Option<String>, X509Error> {
    single_string_attribute(
        cert_der,
        OID_SERIAL_NUMBER,
        "multiple subject serialNumber attributes",
    )
}

/// The subject `commonName` attribute (OID 2.5.4.3), for human-facing logs.
///
/// Same rules as [`subject_serial_number`]: at most one, PrintableString or
/// UTF8String.
pub fn subject_common_name(cert_der: &[u8]) -> Result<Option<String>, X509Error> {
    single_string_attribute(
        cert_der,
        OID_COMMON_NAME,
        "multiple subject commonName attributes",
    )
}

/// The DER SubjectPublicKeyInfo (the whole SEQUENCE, tag and length included).
///
/// Whole-SPKI bytes rather than just the key bits, so that a pin also commits
/// to the algorithm and curve.
pub fn subject_public_key_info(cert_der: &[u8]) -> Result<&[u8], X509Error> {
    Ok(parse_tbs(cert_der)?.spki)
}

/// Lowercase hex SHA-256 of the SubjectPublicKeyInfo DER.
///
/// Pinning the key rather than the certificate lets a participant renew its
/// certificate with the same key without a configuration change.
pub fn spki_sha256_hex(cert_der: &[u8]) -> Result<String, X509Error> {
    let spki = subject_public_key_info(cert_der)?;
    Ok(sha256_hex(spki))
}

/// Lowercase hex SHA-256 of the whole certificate DER.
///
/// Infallible on purpose: it is meant for logging handshakes that failed,
/// where the certificate may well be the very thing that is broken.
pub fn cert_sha256_hex(cert_der: &[u8]) -> String {
    sha256_hex(cert_der)
}

/// The certificate's validity (RFC 5280 §4.1.2.5): notBefore and notAfter,
/// in seconds since the Unix epoch.
///
/// Lets `sluis check-config` say how long the node's certificate and its
/// client CAs have left, before a handshake fails on it.
pub fn validity(cert_der: &[u8]) -> Result<(i64, i64), X509Error> {
    Ok(parse_tbs(cert_der)?.validity)
}

/// The certificate serial number's content octets, as they appear in CRLs.
///
/// Lets an operator revoke a certificate from its file alone.
pub fn serial_number(cert_der: &[u8]) -> Result<&[u8], X509Error> {
    Ok(parse_tbs(cert_der)?.serial)
}

/// The subject Name, DER encoded (the whole SEQUENCE).
///
/// Certificates issued under a CA must carry these exact bytes as their
/// issuer, so reloading a CA needs them verbatim.
pub fn subject_name_der(cert_der: &[u8]) -> Result<&[u8], X509Error> {
    Ok(parse_tbs(cert_der)?.subject)
}

/// The issuer Name, DER encoded (the whole SEQUENCE).
pub fn issuer_name_der(cert_der: &[u8]) -> Result<&[u8], X509Error> {
    Ok(parse_tbs(cert_der)?.issuer)
}

/// The subject's attributes, grouped per RelativeDistinguishedName in order.
///
/// Most names have one attribute per RDN; the grouping is kept so a caller
/// can tell when that is not so instead of silently flattening it.
pub fn subject_attributes(cert_der: &[u8]) -> Result<Vec<Vec<NameAttribute<'_>>>, X509Error> {
    let subject = parse_tbs(cert_der)?.subject;
    let mut rdns = Vec::new();
    for_each_attribute(subject, |rdn_index, oid_der, tag, value| {
        let oid = decode_oid(oid_der)?;
        if rdns.len() <= rdn_index {
            rdns.push(Vec::new());
        }
        if let Some(rdn) = rdns.last_mut() {
            rdn.push(NameAttribute { oid, tag, value });
        }
        Ok(())
    })?;
    Ok(rdns)
}

/// The subjectKeyIdentifier extension's key identifier, when present.
///
/// CRLs and issued certificates name their issuer's key by this value; a CA
/// reloaded from disk has to reuse it rather than recompute it, because the
/// tool that made the CA may have derived it differently.
pub fn subject_key_identifier(cert_der: &[u8]) -> Result<Option<&[u8]>, X509Error> {
    let Some(extensions) = parse_tbs(cert_der)?.extensions else {
        return Ok(None);
    };
    let mut found = None;
    let mut exts = Reader::new(extensions);
    while !exts.is_empty() {
        let (oid, value) = extension(&mut exts)?;
        if oid == OID_SUBJECT_KEY_IDENTIFIER {
            if found.is_some() {
                return Err(X509Error::Malformed("duplicate subjectKeyIdentifier"));
            }
            let mut inner = Reader::new(value);
            let key_id = inner.expect(
                TAG_OCTET_STRING,
                "subjectKeyIdentifier is not an OCTET STRING",
            )?;
            inner.finish("trailing data in subjectKeyIdentifier")?;
            found = Some(key_id);
        }
    }
    Ok(found)
}

/// What a certificate's extendedKeyUsage extension (RFC 5280 §4.2.1.12)
/// lets it be used for in TLS. Without the extension, anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyPurposes {
    /// The extension is there (it then lists every use allowed).
    pub restricted: bool,
    /// `id-kp-serverAuth` (1.3.6.1.5.5.7.3.1) is listed.
    pub server_auth: bool,
    /// `id-kp-clientAuth` (1.3.6.1.5.5.7.3.2) is listed.
    pub client_auth: bool,
}

impl KeyPurposes {
    /// Whether a TLS server may present the certificate.
    pub fn server(&self) -> bool {
        !self.restricted || self.server_auth
    }
    /// Whether a TLS client may present the certificate.
    pub fn client(&self) -> bool {
        !self.restricted || self.client_auth
    }
}

/// The certificate's extendedKeyUsage as far as TLS cares. Errors: a
/// malformed or repeated extension. `anyExtendedKeyUsage` does not count
/// for either side: webpki, which verifies every sluis peer, does not take
/// it in place of the purpose it requires (rustls-webpki 0.103,
/// `KeyUsage::validate`: an extension that is present must list the
/// required purpose itself).
pub fn key_purposes(cert_der: &[u8]) -> Result<KeyPurposes, X509Error> {
    let mut out = KeyPurposes {
        restricted: false,
        server_auth: false,
        client_auth: false,
    };
    let Some(extensions) = parse_tbs(cert_der)?.extensions else {
        return Ok(out);
    };
    let mut exts = Reader::new(extensions);
    while !exts.is_empty() {
        let (oid, value) = extension(&mut exts)?;
        if oid != OID_EXTENDED_KEY_USAGE {
            continue;
        }
        if out.restricted {
            return Err(X509Error::Malformed("duplicate extendedKeyUsage"));
        }
        out.restricted = true;
        let mut inner = Reader::new(value);
        let mut purposes =
            Reader::new(inner.expect(TAG_SEQUENCE, "extendedKeyUsage is not a SEQUENCE")?);
        inner.finish("trailing data in extendedKeyUsage")?;
        while !purposes.is_empty() {
            match purposes.expect(TAG_OID, "extendedKeyUsage holds a non-OID")? {
                OID_KP_SERVER_AUTH => out.server_auth = true,
                OID_KP_CLIENT_AUTH => out.client_auth = true,
                _ => {}
            }
        }
    }
    Ok(out)
}

/// The algorithm and key of a certificate's SubjectPublicKeyInfo, as a
/// signature check needs them (RFC 5280 §4.1.2.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PublicKey<'a> {
    /// The AlgorithmIdentifier's content octets (no outer SEQUENCE), as
    /// `rustls_pki_types::AlgorithmIdentifier` holds them.
    pub(crate) algorithm: &'a [u8],
    /// The subjectPublicKey BIT STRING's bits (the unused-bits octet, which
    /// must be 0, removed).
    pub(crate) key: &'a [u8],
}

/// The public key of a certificate (a CA's, to check what it signed).
pub(crate) fn public_key(cert_der: &[u8]) -> Result<PublicKey<'_>, X509Error> {
    let mut outer = Reader::new(subject_public_key_info(cert_der)?);
    let mut spki = Reader::new(outer.expect(TAG_SEQUENCE, "subjectPublicKeyInfo")?);
    let algorithm = spki.expect(TAG_SEQUENCE, "public key algorithm is not a SEQUENCE")?;
    let key = bit_string_bytes(spki.expect(TAG_BIT_STRING, "subjectPublicKey")?)?;
    spki.finish("trailing data in subjectPublicKeyInfo")?;
    Ok(PublicKey { algorithm, key })
}

/// The fields of a CRL (RFC 5280 §5.1) that decide which of several CRLs
/// from one issuer applies, and what its signature covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlFields<'a> {
    /// The issuer Name, DER encoded (the whole SEQUENCE). webpki matches it
    /// byte for byte against a certificate's issuer; so does `net::crl`
    /// against the CAs' subjects.
    pub(crate) issuer: &'a [u8],
    /// The cRLNumber extension (§5.2.3): the INTEGER's content octets,
    /// non-negative and minimally encoded. Compare with `cmp_crl_numbers`.
    pub crl_number: Option<&'a [u8]>,
    /// thisUpdate (§5.1.2.4), seconds since the Unix epoch (UTC).
    pub this_update: i64,
    /// nextUpdate (§5.1.2.5), seconds since the Unix epoch (UTC).
    pub(crate) next_update: Option<i64>,
    /// The issuingDistributionPoint extension's value (§5.2.5), DER, when
    /// present: two CRLs of one issuer with different values cover
    /// different certificates.
    pub(crate) issuing_distribution_point: Option<&'a [u8]>,
    /// Whether it carries deltaCRLIndicator (§5.2.4): a delta CRL lists
    /// only changes since a base CRL.
    pub(crate) delta: bool,
    /// How many certificates it revokes.
    pub(crate) revoked: usize,
    /// What the signature covers: the tbsCertList, whole (tag and length
    /// included).
    pub(crate) signed: &'a [u8],
    /// The signatureAlgorithm's AlgorithmIdentifier content octets.
    pub(crate) signature_algorithm: &'a [u8],
    /// The signatureValue BIT STRING's bits.
    pub(crate) signature: &'a [u8],
}

/// Reads a DER CertificateList (RFC 5280 §5.1).
///
/// Checks the structure, not the signature (see `CrlFields::signed`).
/// Errors: any deviation from the DER structure of §5.1, an extension
/// listed twice, a negative or non-minimal cRLNumber, a time that is not
/// `YYMMDDHHMMSSZ` (UTCTime) or `YYYYMMDDHHMMSSZ` (GeneralizedTime).
pub fn crl_fields(crl_der: &[u8]) -> Result<CrlFields<'_>, X509Error> {
    let mut outer = Reader::new(crl_der);
    let list = outer.expect(TAG_SEQUENCE, "CRL is not a SEQUENCE")?;
    outer.finish("trailing data after CRL")?;

    let mut list = Reader::new(list);
    let signed = list.expect_whole(TAG_SEQUENCE, "tbsCertList is not a SEQUENCE")?;
    let signature_algorithm =
        list.expect(TAG_SEQUENCE, "CRL signatureAlgorithm is not a SEQUENCE")?;
    let signature = bit_string_bytes(list.expect(TAG_BIT_STRING, "CRL signatureValue")?)?;
    list.finish("trailing data in CRL")?;

    let mut tbs = Reader::new(Reader::new(signed).expect(TAG_SEQUENCE, "tbsCertList")?);
    // version is absent (v1) or INTEGER 1 (v2): not [0] as in certificates.
    if tbs.peek_tag() == Some(TAG_INTEGER) {
        let version = tbs.expect(TAG_INTEGER, "CRL version")?;
        if version != [1] {
            return Err(X509Error::Malformed("CRL version is not v2"));
        }
    }
    let inner_algorithm = tbs.expect(TAG_SEQUENCE, "CRL signature algorithm is not a SEQUENCE")?;
    if inner_algorithm != signature_algorithm {
        return Err(X509Error::Malformed(
            "CRL signature algorithms inside and outside tbsCertList differ",
        ));
    }
    let issuer = tbs.expect_whole(TAG_SEQUENCE, "CRL issuer is not a SEQUENCE")?;
    for_each_attribute(issuer, |_, _, _, _| Ok(()))?;
    let this_update = time(tbs.expect_any("CRL without thisUpdate")?)?;
    let next_update = match tbs.peek_tag() {
        Some(TAG_UTC_TIME | TAG_GENERALIZED_TIME) => Some(time(tbs.expect_any("CRL nextUpdate")?)?),
        _ => None,
    };
    let mut revoked = 0;
    if tbs.peek_tag() == Some(TAG_SEQUENCE) {
        let mut entries = Reader::new(tbs.expect(TAG_SEQUENCE, "revokedCertificates")?);
        while !entries.is_empty() {
            let mut entry =
                Reader::new(entries.expect(TAG_SEQUENCE, "revoked entry is not a SEQUENCE")?);
            entry.expect(TAG_INTEGER, "revoked entry without a serial number")?;
            time(entry.expect_any("revoked entry without a revocation date")?)?;
            if !entry.is_empty() {
                entry.expect(TAG_SEQUENCE, "revoked entry extensions")?;
            }
            entry.finish("trailing data in revoked entry")?;
            revoked += 1;
        }
    }
    let mut crl_number = None;
    let mut issuing_distribution_point = None;
    let mut delta = false;
    if tbs.peek_tag() == Some(TAG_CRL_EXTENSIONS) {
        let mut explicit = Reader::new(tbs.expect(TAG_CRL_EXTENSIONS, "crlExtensions")?);
        let mut exts =
            Reader::new(explicit.expect(TAG_SEQUENCE, "crlExtensions are not a SEQUENCE")?);
        explicit.finish("trailing data after crlExtensions")?;
        let mut seen: Vec<&[u8]> = Vec::new();
        while !exts.is_empty() {
            let (oid, value) = extension(&mut exts)?;
            if seen.contains(&oid) {
                return Err(X509Error::Malformed("CRL extension listed twice"));
            }
            seen.push(oid);
            match oid {
                OID_CRL_NUMBER => {
                    let mut inner = Reader::new(value);
                    let number = inner.expect(TAG_INTEGER, "cRLNumber is not an INTEGER")?;
                    inner.finish("trailing data in cRLNumber")?;
                    crl_number = Some(non_negative_integer(number)?);
                }
                OID_DELTA_CRL_INDICATOR => delta = true,
                OID_ISSUING_DISTRIBUTION_POINT => issuing_distribution_point = Some(value),
                _ => {}
            }
        }
    }
    tbs.finish("unexpected field in tbsCertList")?;
    Ok(CrlFields {
        issuer,
        crl_number,
        this_update,
        next_update,
        issuing_distribution_point,
        delta,
        revoked,
        signed,
        signature_algorithm,
        signature,
    })
}

/// Orders two cRLNumbers ([`CrlFields::crl_number`]) as the integers they
/// encode (RFC 5280 §5.2.3: a CA's CRL numbers increase).
pub(crate) fn cmp_crl_numbers(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    let strip = |x: &[u8]| -> usize { x.iter().take_while(|&&b| b == 0).count() };
    let (a, b) = (&a[strip(a)..], &b[strip(b)..]);
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// The `commonName` of a DER Name (the whole SEQUENCE), for logs that name
/// a CA. `None` when absent, repeated or not a string.
pub(crate) fn name_common_name(name_der: &[u8]) -> Option<String> {
    name_string_attribute(name_der, OID_COMMON_NAME, "multiple commonName attributes")
        .ok()
        .flatten()
}

/// One Extension (RFC 5280 §4.1): its OID and the extnValue's content.
fn extension<'a>(exts: &mut Reader<'a>) -> Result<(&'a [u8], &'a [u8]), X509Error> {
    let mut ext = Reader::new(exts.expect(TAG_SEQUENCE, "extension is not a SEQUENCE")?);
    let oid = ext.expect(TAG_OID, "extension without an OID")?;
    if ext.peek_tag() == Some(TAG_BOOLEAN) {
        ext.expect(TAG_BOOLEAN, "extension criticality")?;
    }
    let value = ext.expect(TAG_OCTET_STRING, "extension value is not an OCTET STRING")?;
    ext.finish("trailing data in extension")?;
    Ok((oid, value))
}

/// The bits of a BIT STRING whose length is a whole number of octets (all
/// keys and signatures in X.509).
fn bit_string_bytes(content: &[u8]) -> Result<&[u8], X509Error> {
    match content.split_first() {
        Some((0, bits)) => Ok(bits),
        _ => Err(X509Error::Malformed("BIT STRING with unused bits")),
    }
}

/// An INTEGER's content octets, checked to be minimal and non-negative.
fn non_negative_integer(content: &[u8]) -> Result<&[u8], X509Error> {
    match content {
        [] => Err(X509Error::Malformed("empty INTEGER")),
        [b, ..] if b & 0x80 != 0 => Err(X509Error::Malformed("negative INTEGER")),
        [0, b, ..] if b & 0x80 == 0 => Err(X509Error::Malformed("non-minimal INTEGER")),
        _ if content.len() > 21 => Err(X509Error::Malformed("INTEGER longer than 20 octets")),
        _ => Ok(content),
    }
}

/// A Time (RFC 5280 §4.1.2.5): UTCTime `YYMMDDHHMMSSZ` (years 1950-2049)
/// or GeneralizedTime `YYYYMMDDHHMMSSZ`, as seconds since the Unix epoch.
fn time(tlv: Tlv<'_>) -> Result<i64, X509Error> {
    let bad = X509Error::Malformed("invalid time");
    let digits = |s: &[u8]| -> Result<i64, X509Error> {
        s.iter().try_fold(0i64, |acc, &b| {
            if b.is_ascii_digit() {
                Ok(acc * 10 + i64::from(b - b'0'))
            } else {
                Err(X509Error::Malformed("invalid time"))
            }
        })
    };
    let (year, rest) = match (tlv.tag, tlv.value.len()) {
        (TAG_UTC_TIME, 13) => {
            let yy = digits(&tlv.value[..2])?;
            (
                if yy >= 50 { 1900 + yy } else { 2000 + yy },
                &tlv.value[2..],
            )
        }
        (TAG_GENERALIZED_TIME, 15) => (digits(&tlv.value[..4])?, &tlv.value[4..]),
        _ => return Err(bad),
    };
    if rest.last() != Some(&b'Z') {
        return Err(bad);
    }
    let field = |i: usize| digits(&rest[i..i + 2]);
    let (month, day, hour, minute, second) =
        (field(0)?, field(2)?, field(4)?, field(6)?, field(8)?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return Err(bad),
    };
    if !(1..=days_in_month).contains(&day) || hour > 23 || minute > 59 || second > 59 {
        return Err(bad);
    }
    Ok(days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, data))
}

/// The fields of a TBSCertificate that this module hands out.
struct Tbs<'a> {
    serial: &'a [u8],
    issuer: &'a [u8],
    subject: &'a [u8],
    spki: &'a [u8],
    /// notBefore and notAfter, seconds since the Unix epoch.
    validity: (i64, i64),
    extensions: Option<&'a [u8]>,
}

fn parse_tbs(cert_der: &[u8]) -> Result<Tbs<'_>, X509Error> {
    let mut outer = Reader::new(cert_der);
    let cert = outer.expect(TAG_SEQUENCE, "certificate is not a SEQUENCE")?;
    outer.finish("trailing data after certificate")?;

    let mut cert = Reader::new(cert);
    let tbs = cert.expect(TAG_SEQUENCE, "tbsCertificate is not a SEQUENCE")?;
    cert.expect(TAG_SEQUENCE, "signatureAlgorithm is not a SEQUENCE")?;
    cert.expect_any("missing signatureValue")?;
    cert.finish("trailing data in certificate")?;

    let mut tbs = Reader::new(tbs);
    // Version is absent for v1 certificates; present ([0] EXPLICIT) otherwise.
    if tbs.peek_tag() == Some(TAG_VERSION) {
        tbs.expect(TAG_VERSION, "version")?;
    }
    let serial = tbs.expect(TAG_INTEGER, "serialNumber is not an INTEGER")?;
    tbs.expect(TAG_SEQUENCE, "signature algorithm is not a SEQUENCE")?;
    let issuer = tbs.expect_whole(TAG_SEQUENCE, "issuer is not a SEQUENCE")?;
    let mut validity = Reader::new(tbs.expect(TAG_SEQUENCE, "validity is not a SEQUENCE")?);
    let not_before = time(validity.expect_any("missing notBefore")?)?;
    let not_after = time(validity.expect_any("missing notAfter")?)?;
    validity.finish("trailing data in validity")?;
    let subject = tbs.expect_whole(TAG_SEQUENCE, "subject is not a SEQUENCE")?;
    let spki = tbs.expect_whole(TAG_SEQUENCE, "subjectPublicKeyInfo is not a SEQUENCE")?;
    if tbs.peek_tag() == Some(TAG_ISSUER_UID) {
        tbs.expect(TAG_ISSUER_UID, "issuerUniqueID")?;
    }
    if tbs.peek_tag() == Some(TAG_SUBJECT_UID) {
        tbs.expect(TAG_SUBJECT_UID, "subjectUniqueID")?;
    }
    let extensions = if tbs.peek_tag() == Some(TAG_EXTENSIONS) {
        let mut explicit = Reader::new(tbs.expect(TAG_EXTENSIONS, "extensions")?);
        let seq = explicit.expect(TAG_SEQUENCE, "extensions are not a SEQUENCE")?;
        explicit.finish("trailing data after extensions")?;
        Some(seq)
    } else {
        None
    };
    tbs.finish("unexpected field in tbsCertificate")?;

    // Name fields are walked here, once, so every accessor rejects a
    // structurally broken name rather than only the ones that look inside.
    for_each_attribute(issuer, |_, _, _, _| Ok(()))?;
    for_each_attribute(subject, |_, _, _, _| Ok(()))?;

    Ok(Tbs {
        serial,
        issuer,
        subject,
        spki,
        validity: (not_before, not_after),
        extensions,
    })
}

/// Calls `f(rdn_index, oid_der, value_tag, value)` for every attribute of a
/// Name given as its whole DER SEQUENCE.
fn for_each_attribute<'a>(
    name_der: &'a [u8],
    mut f: impl FnMut(usize, &'a [u8], u8, &'a [u8]) -> Result<(), X509Error>,
) -> Result<(), X509Error> {
    let mut outer = Reader::new(name_der);
    let mut rdns = Reader::new(outer.expect(TAG_SEQUENCE, "name is not a SEQUENCE")?);
    outer.finish("trailing data after name")?;
    let mut rdn_index = 0;
    while !rdns.is_empty() {
        let mut attrs =
            Reader::new(rdns.expect(TAG_SET, "relative distinguished name is not a SET")?);
        if attrs.is_empty() {
            return Err(X509Error::Malformed("empty relative distinguished name"));
        }
        while !attrs.is_empty() {
            let mut attr =
                Reader::new(attrs.expect(TAG_SEQUENCE, "name attribute is not a SEQUENCE")?);
            let oid = attr.expect(TAG_OID, "name attribute without an OID")?;
            let value = attr.expect_any("name attribute without a value")?;
            attr.finish("trailing data in name attribute")?;
            f(rdn_index, oid, value.tag, value.value)?;
        }
        rdn_index += 1;
    }
    Ok(())
}

fn single_string_attribute(
    cert_der: &[u8],
    wanted_oid: &[u8],
    duplicate: &'static str,
) -> Result<Option<String>, X509Error> {
    name_string_attribute(parse_tbs(cert_der)?.subject, wanted_oid, duplicate)
}

fn name_string_attribute(
    name_der: &[u8],
    wanted_oid: &[u8],
    duplicate: &'static str,
) -> Result<Option<String>, X509Error> {
    let mut found: Option<String> = None;
    for_each_attribute(name_der, |_, oid, tag, value| {
        if oid != wanted_oid {
            return Ok(());
        }
        if found.is_some() {
            return Err(X509Error::Malformed(duplicate));
        }
        let text = match tag {
            TAG_PRINTABLE_STRING => {
                if !value.iter().all(|&b| is_printable_string_char(b)) {
                    return Err(X509Error::Malformed("invalid PrintableString"));
                }
                // All PrintableString characters are ASCII, hence valid UTF-8.
                std::str::from_utf8(value)
                    .map_err(|_| X509Error::Malformed("invalid PrintableString"))?
            }
            TAG_UTF8_STRING => std::str::from_utf8(value)
                .map_err(|_| X509Error::Malformed("invalid UTF8String"))?,
            _ => {
                return Err(X509Error::Malformed(
                    "attribute is not a PrintableString or UTF8String",
                ));
            }
        };
        found = Some(text.to_owned());
        Ok(())
    })?;
    Ok(found)
}

fn is_printable_string_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b" '()+,-./:=?".contains(&b)
}

/// Decodes OID content octets into arcs, rejecting arcs that overflow `u64`.
fn decode_oid(der: &[u8]) -> Result<Vec<u64>, X509Error> {
    if der.is_empty() {
        return Err(X509Error::Malformed("empty OID"));
    }
    let mut arcs = Vec::new();
    let mut acc: u64 = 0;
    let mut in_arc = false;
    for &b in der {
        if !in_arc && b == 0x80 {
            return Err(X509Error::Malformed("non-minimal OID arc"));
        }
        acc = acc
            .checked_mul(128)
            .and_then(|a| a.checked_add(u64::from(b & 0x7f)))
            .ok_or(X509Error::Malformed("OID arc too large"))?;
        in_arc = b & 0x80 != 0;
        if !in_arc {
            if arcs.is_empty() {
                let (first, second) = match acc {
                    0..=39 => (0, acc),
                    40..=79 => (1, acc - 40),
                    _ => (2, acc - 80),
                };
                arcs.push(first);
                arcs.push(second);
            } else {
                arcs.push(acc);
            }
            acc = 0;
        }
    }
    if in_arc {
        return Err(X509Error::Malformed("truncated OID"));
    }
    Ok(arcs)
}

/// One decoded TLV: its tag, its content octets, and the whole encoding.
struct Tlv<'a> {
    tag: u8,
    value: &'a [u8],
    whole: &'a [u8],
}

/// A cursor over a sequence of DER TLVs.
struct Reader<'a> {
    input: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(input: &'a [u8]) -> Self {
        Self { input }
    }

    fn is_empty(&self) -> bool {
        self.input.is_empty()
    }

    fn peek_tag(&self) -> Option<u8> {
        self.input.first().copied()
    }

    fn finish(&self, what: &'static str) -> Result<(), X509Error> {
        if self.input.is_empty() {
            Ok(())
        } else {
            Err(X509Error::Malformed(what))
        }
    }

    fn expect_any(&mut self, what: &'static str) -> Result<Tlv<'a>, X509Error> {
        if self.input.is_empty() {
            return Err(X509Error::Malformed(what));
        }
        let (tlv, rest) = read_tlv(self.input)?;
        self.input = rest;
        Ok(tlv)
    }

    /// The content octets of the next TLV, which must carry `tag`.
    fn expect(&mut self, tag: u8, what: &'static str) -> Result<&'a [u8], X509Error> {
        Ok(self.expect_tlv(tag, what)?.value)
    }

    /// The whole encoding (tag and length included) of the next TLV.
    fn expect_whole(&mut self, tag: u8, what: &'static str) -> Result<&'a [u8], X509Error> {
        Ok(self.expect_tlv(tag, what)?.whole)
    }

    fn expect_tlv(&mut self, tag: u8, what: &'static str) -> Result<Tlv<'a>, X509Error> {
        if self.peek_tag() != Some(tag) {
            return Err(X509Error::Malformed(what));
        }
        let (tlv, rest) = read_tlv(self.input)?;
        self.input = rest;
        Ok(tlv)
    }
}

/// Splits one DER TLV off the front of `input`.
///
/// Multi-byte tags, indefinite lengths and lengths over four octets never
/// occur in certificates and are rejected rather than supported.
fn read_tlv(input: &[u8]) -> Result<(Tlv<'_>, &[u8]), X509Error> {
    let (&tag, rest) = input
        .split_first()
        .ok_or(X509Error::Malformed("truncated tag"))?;
    if tag & 0x1f == 0x1f {
        return Err(X509Error::Malformed("multi-byte tag"));
    }
    let (&first, mut rest) = rest
        .split_first()
        .ok_or(X509Error::Malformed("truncated length"))?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 {
            return Err(X509Error::Malformed("indefinite length"));
        }
        if count > 4 {
            return Err(X509Error::Malformed("length too large"));
        }
        let (len_bytes, after) = rest
            .split_at_checked(count)
            .ok_or(X509Error::Malformed("truncated length"))?;
        rest = after;
        let mut len: usize = 0;
        for &b in len_bytes {
            len = len
                .checked_mul(256)
                .and_then(|l| l.checked_add(usize::from(b)))
                .ok_or(X509Error::Malformed("length too large"))?;
        }
        len
    };
    let (value, rest) = rest
        .split_at_checked(len)
        .ok_or(X509Error::Malformed("truncated value"))?;
    let header_len = input.len() - rest.len() - value.len();
    let whole = input
        .get(..header_len + value.len())
        .ok_or(X509Error::Malformed("truncated value"))?;
    Ok((Tlv { tag, value, whole }, rest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, DnValue, KeyPair, PublicKeyData};

    const OIN: &str = "00000001234567890000";

    fn make_cert(serial_number: Option<&str>) -> (Vec<u8>, KeyPair) {
        let key = KeyPair::generate().expect("key");
        let mut params =
            CertificateParams::new(vec!["client.example".to_string()]).expect("params");
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CountryName, "NL");
        params
            .distinguished_name
            .push(DnType::CommonName, "Gemeente Voorbeeld");
        if let Some(sn) = serial_number {
            params.distinguished_name.push(
                DnType::CustomDnType(vec![2, 5, 4, 5]),
                DnValue::PrintableString(sn.try_into().expect("printable")),
            );
        }
        let cert = params.self_signed(&key).expect("self-signed");
        (cert.der().to_vec(), key)
    }

    #[test]
    fn key_purposes_follow_extended_key_usage() {
        use rcgen::ExtendedKeyUsagePurpose as Eku;
        let purposes = |ekus: Vec<Eku>| {
            let key = KeyPair::generate().expect("key");
            let mut params =
                CertificateParams::new(vec!["node.example".to_string()]).expect("params");
            params.extended_key_usages = ekus;
            key_purposes(params.self_signed(&key).expect("self-signed").der()).expect("reads")
        };
        let none = purposes(vec![]);
        assert!(!none.restricted && none.server() && none.client());
        let server = purposes(vec![Eku::ServerAuth]);
        assert!(server.server() && !server.client());
        let client = purposes(vec![Eku::ClientAuth]);
        assert!(!client.server() && client.client());
        let both = purposes(vec![Eku::ServerAuth, Eku::ClientAuth]);
        assert!(both.server() && both.client());
        // anyExtendedKeyUsage stands in for neither (webpki does not take it).
        let any = purposes(vec![Eku::Any]);
        assert!(any.restricted && !any.server() && !any.client());
    }

    #[test]
    fn reads_serial_number_and_common_name() {
        let (der, _) = make_cert(Some(OIN));
        assert_eq!(subject_serial_number(&der).unwrap().as_deref(), Some(OIN));
        assert_eq!(
            subject_common_name(&der).unwrap().as_deref(),
            Some("Gemeente Voorbeeld")
        );
    }

    #[test]
    fn missing_serial_number_is_none() {
        let (der, _) = make_cert(None);
        assert_eq!(subject_serial_number(&der).unwrap(), None);
    }

    #[test]
    fn utf8_serial_number_is_accepted() {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(
            DnType::CustomDnType(vec![2, 5, 4, 5]),
            DnValue::Utf8String("oin-é".into()),
        );
        let der = params.self_signed(&key).unwrap().der().to_vec();
        assert_eq!(
            subject_serial_number(&der).unwrap().as_deref(),
            Some("oin-é")
        );
    }

    #[test]
    fn duplicate_serial_number_is_rejected() {
        // rcgen's DistinguishedName cannot hold a repeated type, so splice a
        // second serialNumber RDN into the subject by hand.
        let (der, _) = make_cert(Some(OIN));
        let subject = subject_name_der(&der).unwrap();
        let attr = [
            &[
                0x31, 0x0b, 0x30, 0x09, 0x06, 0x03, 0x55, 0x04, 0x05, 0x13, 0x02,
            ][..],
            b"42",
        ]
        .concat();
        let body = [&subject[2..], &attr[..]].concat();
        let new_subject = [&[0x30, body.len() as u8][..], &body].concat();
        let spliced = replace_and_fix_lengths(&der, subject, &new_subject);
        assert_eq!(
            subject_serial_number(&spliced),
            Err(X509Error::Malformed(
                "multiple subject serialNumber attributes"
            ))
        );
    }

    /// Re-encodes `cert` with `old` (a sub-slice of the subject) replaced,
    /// fixing up the tbsCertificate and Certificate lengths.
    fn replace_and_fix_lengths(cert: &[u8], old: &[u8], new: &[u8]) -> Vec<u8> {
        let mut outer = Reader::new(cert);
        let mut c = Reader::new(outer.expect(TAG_SEQUENCE, "").unwrap());
        let tbs = c.expect(TAG_SEQUENCE, "").unwrap();
        let rest_of_cert = c.input;
        let start = old.as_ptr() as usize - tbs.as_ptr() as usize;
        let new_tbs = [&tbs[..start], new, &tbs[start + old.len()..]].concat();
        let tbs_tlv = encode(TAG_SEQUENCE, &new_tbs);
        encode(TAG_SEQUENCE, &[&tbs_tlv[..], rest_of_cert].concat())
    }

    fn encode(tag: u8, value: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let len = value.len();
        if len < 0x80 {
            out.push(len as u8);
        } else if len < 0x100 {
            out.extend([0x81, len as u8]);
        } else {
            out.extend([0x82, (len >> 8) as u8, len as u8]);
        }
        out.extend_from_slice(value);
        out
    }

    #[test]
    fn spki_matches_rcgen_key() {
        let (der, key) = make_cert(Some(OIN));
        let spki = subject_public_key_info(&der).unwrap();
        assert_eq!(spki, key.subject_public_key_info().as_slice());
        assert_eq!(
            spki_sha256_hex(&der).unwrap(),
            hex::encode(ring::digest::digest(&ring::digest::SHA256, spki))
        );
        let fp = cert_sha256_hex(&der);
        assert_eq!(fp.len(), 64);
        assert!(
            fp.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
    }

    #[test]
    fn pins_differ_per_key_and_are_stable_per_key() {
        let (a, _) = make_cert(None);
        let (b, _) = make_cert(None);
        assert_ne!(spki_sha256_hex(&a).unwrap(), spki_sha256_hex(&b).unwrap());
        assert_eq!(spki_sha256_hex(&a).unwrap(), spki_sha256_hex(&a).unwrap());
    }

    #[test]
    fn subject_attributes_and_names() {
        let (der, _) = make_cert(Some(OIN));
        let rdns = subject_attributes(&der).unwrap();
        assert_eq!(rdns.len(), 3);
        assert!(rdns.iter().all(|rdn| rdn.len() == 1));
        assert_eq!(rdns[0][0].oid, vec![2, 5, 4, 6]);
        assert_eq!(rdns[1][0].oid, vec![2, 5, 4, 3]);
        assert_eq!(rdns[1][0].value, b"Gemeente Voorbeeld");
        assert_eq!(rdns[2][0].tag, TAG_PRINTABLE_STRING);
        // Self-signed: issuer and subject are the same bytes.
        assert_eq!(
            issuer_name_der(&der).unwrap(),
            subject_name_der(&der).unwrap()
        );
        // No SKI on a non-CA rcgen certificate.
        assert_eq!(subject_key_identifier(&der).unwrap(), None);
    }

    #[test]
    fn ca_subject_key_identifier_and_serial() {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&[0x12, 0x34, 0x56]));
        let der = params.self_signed(&key).unwrap().der().to_vec();
        let ski = subject_key_identifier(&der).unwrap().expect("CA has SKI");
        assert_eq!(ski, params.key_identifier(&key).as_slice());
        assert_eq!(serial_number(&der).unwrap(), &[0x12, 0x34, 0x56]);
    }

    #[test]
    fn decodes_oids() {
        assert_eq!(decode_oid(&[0x55, 0x04, 0x05]).unwrap(), vec![2, 5, 4, 5]);
        assert_eq!(
            decode_oid(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b]).unwrap(),
            vec![1, 2, 840, 113549, 1, 1, 11]
        );
        assert!(decode_oid(&[]).is_err());
        assert!(decode_oid(&[0x55, 0x84]).is_err());
        assert!(decode_oid(&[0x55, 0x80, 0x01]).is_err());
        assert!(decode_oid(&[0xff; 12]).is_err());
    }

    #[test]
    fn rejects_handcrafted_garbage() {
        let cases: &[&[u8]] = &[
            &[],
            &[0x30],
            &[0x30, 0x80, 0x00, 0x00],
            &[0x30, 0x85, 0xff, 0xff, 0xff, 0xff, 0xff],
            &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff],
            &[0x3f, 0x01, 0x00],
            &[0x30, 0x00],
            &[0x30, 0x02, 0x30, 0x00],
            &[0x04, 0x00],
        ];
        for case in cases {
            assert!(subject_serial_number(case).is_err(), "{case:02x?}");
            assert!(subject_public_key_info(case).is_err(), "{case:02x?}");
            assert!(spki_sha256_hex(case).is_err(), "{case:02x?}");
            assert_eq!(cert_sha256_hex(case).len(), 64);
        }
    }

    #[test]
    fn trailing_data_is_rejected() {
        let (mut der, _) = make_cert(Some(OIN));
        der.push(0);
        assert!(subject_public_key_info(&der).is_err());
    }

    fn tlv(tag: u8, value: &[u8]) -> Tlv<'_> {
        Tlv {
            tag,
            value,
            whole: value,
        }
    }

    #[test]
    fn reads_times_as_rfc_5280_writes_them() {
        let utc = |s: &str| time(tlv(TAG_UTC_TIME, s.as_bytes()));
        let generalized = |s: &str| time(tlv(TAG_GENERALIZED_TIME, s.as_bytes()));
        assert_eq!(utc("700101000000Z"), Ok(0));
        assert_eq!(utc("491231235959Z"), Ok(2_524_607_999), "YY < 50 is 20YY");
        assert_eq!(utc("500101000000Z"), Ok(-631_152_000), "YY >= 50 is 19YY");
        assert_eq!(generalized("20500101000000Z"), Ok(2_524_608_000));
        assert_eq!(
            generalized("20240229120000Z"),
            Ok(1_709_208_000),
            "a leap day"
        );
        for bad in [
            "20230229120000Z",
            "20241301000000Z",
            "20240100000000Z",
            "20240101240000Z",
            "20240101000060Z",
            "20240101000000",
            "2024010100000Z",
            "20240101000000+0100",
            "2024-1-01000000Z",
        ] {
            assert!(generalized(bad).is_err(), "{bad}");
        }
        assert!(
            utc("20240101000000Z").is_err(),
            "a GeneralizedTime as UTCTime"
        );
    }

    #[test]
    fn orders_crl_numbers_as_integers() {
        use std::cmp::Ordering::*;
        assert_eq!(cmp_crl_numbers(&[0x01, 0x00], &[0x7f]), Greater);
        assert_eq!(cmp_crl_numbers(&[0x00, 0x80], &[0x7f]), Greater);
        assert_eq!(cmp_crl_numbers(&[0x00, 0x80], &[0x00, 0x80]), Equal);
        assert_eq!(cmp_crl_numbers(&[0x02], &[0x03]), Less);
        assert!(non_negative_integer(&[0x80]).is_err());
        assert!(non_negative_integer(&[0x00, 0x01]).is_err());
        assert!(non_negative_integer(&[]).is_err());
        assert!(non_negative_integer(&[0x00, 0x80]).is_ok());
    }

    fn test_crl(revoked: &[Vec<u8>], number: u64) -> (Vec<u8>, crate::net::pki::CertAuthority) {
        use rustls_pki_types::pem::PemObject;
        let ca = crate::net::pki::CertAuthority::generate("CRL Test CA").unwrap();
        let this_update = time::macros::datetime!(2026-01-02 03:04:05 UTC);
        let pem = ca
            .crl_pem_numbered(
                revoked,
                number,
                this_update,
                this_update + time::Duration::days(7),
            )
            .unwrap();
        let der =
            rustls_pki_types::CertificateRevocationListDer::from_pem_slice(pem.as_bytes()).unwrap();
        (der.to_vec(), ca)
    }

    #[test]
    fn reads_the_fields_of_a_crl() {
        let (der, ca) = test_crl(&[vec![0x11, 0x22], vec![0x33]], 1_747_000_000_123);
        let f = crl_fields(&der).unwrap();
        assert_eq!(f.issuer, subject_name_der(&ca.cert_der()).unwrap());
        assert_eq!(f.crl_number, Some(&1_747_000_000_123u64.to_be_bytes()[2..]));
        assert_eq!(f.this_update, 1_767_323_045);
        assert_eq!(f.next_update, Some(1_767_323_045 + 7 * 86_400));
        assert_eq!(f.revoked, 2);
        assert!(!f.delta);
        assert_eq!(f.issuing_distribution_point, None);
        assert_eq!(name_common_name(f.issuer).as_deref(), Some("CRL Test CA"));
        // What the signature covers verifies with the CA's key.
        let ca_der = ca.cert_der();
        let key = public_key(&ca_der).unwrap();
        let verified = rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .all
            .iter()
            .filter(|a| {
                a.public_key_alg_id().as_ref() == key.algorithm
                    && a.signature_alg_id().as_ref() == f.signature_algorithm
            })
            .any(|a| a.verify_signature(key.key, f.signed, f.signature).is_ok());
        assert!(verified);
    }

    #[test]
    fn crl_truncations_and_garbles_never_panic_and_truncations_never_parse() {
        let (der, _) = test_crl(&[vec![0x01]], 7);
        assert!(crl_fields(&der).is_ok());
        for len in 0..der.len() {
            assert!(crl_fields(&der[..len]).is_err(), "truncated to {len}");
        }
        for i in 0..der.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut garbled = der.clone();
                garbled[i] ^= flip;
                let _ = crl_fields(&garbled);
            }
        }
    }

    /// Runs every accessor; the point is that none of them panics.
    fn poke(input: &[u8]) -> bool {
        let a = subject_serial_number(input).is_ok();
        let b = subject_public_key_info(input).is_ok();
        let _ = spki_sha256_hex(input);
        let _ = cert_sha256_hex(input);
        let _ = subject_common_name(input);
        let _ = subject_attributes(input);
        let _ = subject_key_identifier(input);
        let _ = serial_number(input);
        let _ = issuer_name_der(input);
        let _ = public_key(input);
        let _ = crl_fields(input);
        a && b
    }

    #[test]
    fn truncations_never_panic_and_never_succeed() {
        let (der, _) = make_cert(Some(OIN));
        assert!(poke(&der));
        for len in 0..der.len() {
            assert!(!poke(&der[..len]), "truncated to {len} bytes parsed");
        }
    }

    #[test]
    fn garbled_inputs_never_panic() {
        let (der, _) = make_cert(Some(OIN));
        // xorshift: deterministic, so a failure reproduces.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for i in 0..der.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut garbled = der.clone();
                garbled[i] ^= flip;
                poke(&garbled);
            }
        }
        for _ in 0..3000 {
            let mut garbled = der.clone();
            for _ in 0..(next() % 8 + 1) {
                let pos = (next() as usize) % garbled.len();
                garbled[pos] = next() as u8;
            }
            if next() % 4 == 0 {
                let cut = (next() as usize) % garbled.len();
                garbled.truncate(cut);
            }
            poke(&garbled);
        }
        for _ in 0..3000 {
            let len = (next() % 200) as usize;
            let random: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            poke(&random);
            // Random bytes behind a plausible header reach deeper.
            let mut framed = vec![0x30, 0x82, (len >> 8) as u8, len as u8];
            framed.extend_from_slice(&random);
            poke(&framed);
        }
    }
}
