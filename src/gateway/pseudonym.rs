//! Per-recipient pseudonyms.
//!
//! Each recipient gets its own HMAC-SHA256 key, derived with HKDF from the
//! node's pseudonymisation secret and the recipient's participant id. The
//! same subject therefore has one stable pseudonym per recipient, and two
//! recipients comparing notes cannot link their pseudonyms without the
//! node's secret. The prefix names the secret's version: `ps1.` is the
//! first secret (`pseudonym.key`), `ps2.` the one `sluis keys
//! rotate-pseudonym` made next, and so on. A recipient's new pseudonyms are
//! issued under the newest version; those issued before keep resolving,
//! because every pseudonym a node hands out is stored with the access record
//! of the request that issued it (`store::IssuedPseudonym`) and resolved
//! by that table, per recipient, never recomputed.
//!
//! What never leaves the node stays under the first secret whatever the
//! rotations: the audit domain's pseudonym of a subject (so a privacy
//! officer's query groups a subject's accesses across rotations), the actor
//! hashes, the subject-index digests and the write digests (all stored and
//! compared later).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use ring::{hkdf, hmac};

const PREFIX: &str = "ps";
/// Recipient name for pseudonyms in the access log: privacy officers can
/// group accesses per subject without learning who the subject is.
const AUDIT_DOMAIN: &str = "@audit";
/// Domain for hashing the acting person's id into the access log.
const ACTOR_DOMAIN: &str = "@actor";
/// Longest pseudonym we accept as input; anything else is malformed.
const MAX_LEN: usize = 64;
/// Highest secret version a pseudonym may name (`ps9999.`): a bound on the
/// prefix, far beyond any number of rotations.
pub(crate) const MAX_VERSION: u32 = 9999;

/// Issues pseudonyms: recipients' under the newest secret, the log's own
/// under the first.
pub struct Pseudonymiser {
    /// The first secret: the audit domain, actor hashes, digests, and the
    /// recipients' pseudonyms while it is the only one.
    base: Derivation,
    /// The newest secret and its version (2 or more), if it was rotated.
    issuing: Option<(u32, Derivation)>,
}

/// One secret's HKDF pseudo-random key and the keys derived from it.
struct Derivation {
    prk: hkdf::Prk,
    /// Derived keys by recipient: every request needs two or three, and the
    /// HKDF expansion cost as much as the HMAC itself. Recipients are the
    /// registered participants and a few fixed domains, never request
    /// input; the map is still bounded.
    keys: std::sync::RwLock<std::collections::HashMap<String, hmac::Key>>,
}

/// Most derived keys kept (emptied when full).
const MAX_KEYS: usize = 4096;

struct HmacKeyLen;
impl hkdf::KeyType for HmacKeyLen {
    fn len(&self) -> usize {
        32
    }
}

impl Derivation {
    /// Version 1 keeps the salt it always had, so its values never change.
    fn new(version: u32, secret: &[u8; 32]) -> Derivation {
        let label = format!("sluis pseudonym v{version}");
        let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, label.as_bytes());
        Derivation {
            prk: salt.extract(secret),
            keys: Default::default(),
        }
    }

    fn key_for(&self, recipient: &str) -> hmac::Key {
        if let Some(k) = self
            .keys
            .read()
            .ok()
            .and_then(|m| m.get(recipient).cloned())
        {
            return k;
        }
        let key = self.derive(recipient);
        if let Ok(mut m) = self.keys.write() {
            if m.len() >= MAX_KEYS {
                m.clear();
            }
            m.insert(recipient.to_string(), key.clone());
        }
        key
    }

    fn derive(&self, recipient: &str) -> hmac::Key {
        let info = [recipient.as_bytes()];
        let okm = self
            .prk
            .expand(&info, HmacKeyLen)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        let mut key = [0u8; 32];
        okm.fill(&mut key)
            .expect("buffer length equals the requested length");
        hmac::Key::new(hmac::HMAC_SHA256, &key)
    }

    /// `ps<version>.` and 20 bytes of HMAC-SHA256(recipient's key, subject_ref).
    fn pseudonym(&self, version: u32, recipient: &str, subject_ref: &[u8]) -> String {
        let tag = hmac::sign(&self.key_for(recipient), subject_ref);
        format!("{PREFIX}{version}.{}", B64URL.encode(&tag.as_ref()[..20]))
    }
}

impl Pseudonymiser {
    /// Pseudonyms under the first secret only (`ps1.`).
    pub fn new(secret: &[u8; 32]) -> Self {
        Pseudonymiser {
            base: Derivation::new(1, secret),
            issuing: None,
        }
    }

    /// Recipients' pseudonyms under `secret`, version `version` (2 or
    /// more; 1 is the first secret's); everything else stays under the
    /// first.
    pub fn issuing_under(mut self, version: u32, secret: &[u8; 32]) -> Self {
        if version > 1 {
            self.issuing = Some((version, Derivation::new(version, secret)));
        }
        self
    }

    fn key_for(&self, domain: &str) -> hmac::Key {
        self.base.key_for(domain)
    }

    /// The pseudonym of subject `subject_ref` for `recipient`, under the
    /// newest secret: `ps<version>.` and 27 base64url characters.
    pub fn pseudonym(&self, recipient: &str, subject_ref: &[u8]) -> String {
        match &self.issuing {
            Some((version, d)) => d.pseudonym(*version, recipient, subject_ref),
            None => self.base.pseudonym(1, recipient, subject_ref),
        }
    }

    /// The subject's pseudonym in the access log (the audit domain), under
    /// the first secret whatever the rotations, so that a privacy officer
    /// groups a subject's entries across them.
    pub fn audit_pseudonym(&self, subject_ref: &[u8]) -> String {
        self.base.pseudonym(1, AUDIT_DOMAIN, subject_ref)
    }

    /// Keyed hash of the acting person's id: the organisation that knows the
    /// id can recompute it to trace an access, nobody else can invert it.
    pub fn actor_hash(&self, participant: &str, actor: &str) -> String {
        let key = self.key_for(&format!("{ACTOR_DOMAIN}/{participant}"));
        let tag = hmac::sign(&key, actor.as_bytes());
        format!("ah1.{}", B64URL.encode(&tag.as_ref()[..20]))
    }
}

impl Pseudonymiser {
    /// Keyed hash of a write request (its method and encoding) of a
    /// participant, to tell a retry from another request under the same
    /// `request_id` without storing the request (it may hold an identity).
    pub(crate) fn request_digest(&self, participant: &str, method: &str, body: &[u8]) -> String {
        let key = self.key_for(&format!("@request/{participant}"));
        let mut ctx = hmac::Context::with_key(&key);
        ctx.update(method.as_bytes());
        ctx.update(&[0]);
        ctx.update(body);
        format!("rq1.{}", B64URL.encode(ctx.sign().as_ref()))
    }

    /// Keyed hash of a subject identifier (V-number, BSN) for the subject
    /// index. Only the node can compute it, so the index reveals nothing.
    pub fn index_digest(&self, kind: &str, value: &str) -> String {
        let key = self.key_for(&format!("@subject-index/{kind}"));
        let tag = hmac::sign(&key, value.trim().as_bytes());
        format!("si1.{}", B64URL.encode(tag.as_ref()))
    }
}

/// Whether `s` has the shape of a pseudonym this node issues. Used to refuse
/// malformed input with a clear message before any lookup.
pub(crate) fn is_well_formed(s: &str) -> bool {
    let Some((version, rest)) = s.strip_prefix(PREFIX).and_then(|r| r.split_once('.')) else {
        return false;
    };
    s.len() <= MAX_LEN
        && !version.starts_with('0')
        && version.len() <= 4
        && version.bytes().all(|b| b.is_ascii_digit())
        && version
            .parse::<u32>()
            .is_ok_and(|v| (1..=MAX_VERSION).contains(&v))
        && rest.len() == 27
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_per_recipient_and_unlinkable_across() {
        let p = Pseudonymiser::new(&[7u8; 32]);
        let a1 = p.pseudonym("dtv", b"subject-1");
        assert_eq!(a1, p.pseudonym("dtv", b"subject-1"));
        assert_ne!(a1, p.pseudonym("ind", b"subject-1"));
        assert_ne!(a1, p.pseudonym("dtv", b"subject-2"));
        assert!(is_well_formed(&a1), "{a1}");
        assert!(!is_well_formed("ps1.short"));
        assert!(!is_well_formed("xx1.aaaaaaaaaaaaaaaaaaaaaaaaaaa"));
        let other = Pseudonymiser::new(&[8u8; 32]);
        assert_ne!(a1, other.pseudonym("dtv", b"subject-1"));
        // A key kept from an earlier request derives what a fresh one does,
        // and a node restarted with the same secret issues the same values.
        let restarted = Pseudonymiser::new(&[7u8; 32]);
        assert_eq!(restarted.pseudonym("dtv", b"subject-1"), a1);
        assert_eq!(
            p.actor_hash("dtv", "medewerker-17"),
            restarted.actor_hash("dtv", "medewerker-17")
        );
    }

    /// After a rotation, recipients get `ps2.` pseudonyms unlinkable to
    /// their `ps1.` ones, while the log's own values stay as they were.
    #[test]
    fn a_rotated_secret_issues_a_new_version_and_keeps_the_logs_values() {
        let old = Pseudonymiser::new(&[7u8; 32]);
        let new = Pseudonymiser::new(&[7u8; 32]).issuing_under(2, &[9u8; 32]);
        let p = new.pseudonym("dtv", b"subject-1");
        assert!(p.starts_with("ps2.") && is_well_formed(&p), "{p}");
        assert_ne!(p, old.pseudonym("dtv", b"subject-1"));
        assert_ne!(p[4..], old.pseudonym("dtv", b"subject-1")[4..]);
        assert_eq!(new.audit_pseudonym(b"s"), old.audit_pseudonym(b"s"));
        assert!(new.audit_pseudonym(b"s").starts_with("ps1."));
        assert_eq!(new.actor_hash("dtv", "a"), old.actor_hash("dtv", "a"));
        assert_eq!(new.index_digest("bsn", "1"), old.index_digest("bsn", "1"));
        for bad in [
            "ps0.aaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "ps02.aaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "ps10000.aaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "ps.aaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "psx.aaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ] {
            assert!(!is_well_formed(bad), "{bad}");
        }
        assert!(is_well_formed("ps9999.aaaaaaaaaaaaaaaaaaaaaaaaaaa"));
    }
}
