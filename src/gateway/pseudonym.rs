//! Per-recipient pseudonyms.
//!
//! Each recipient gets its own HMAC-SHA256 key, derived with HKDF from the
//! node's pseudonymisation secret and the recipient's participant id. The
//! same subject therefore has one stable pseudonym per recipient, and two
//! recipients comparing notes cannot link their pseudonyms without the
//! node's secret. The `ps1.` prefix names the derivation so keys can rotate:
//! a `ps2.` scheme can live beside it while old pseudonyms still resolve.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use ring::{hkdf, hmac};

const PREFIX_V1: &str = "ps1.";
/// Recipient name for pseudonyms in the access log: privacy officers can
/// group accesses per subject without learning who the subject is.
pub const AUDIT_DOMAIN: &str = "@audit";
/// Domain for hashing the acting person's id into the access log.
const ACTOR_DOMAIN: &str = "@actor";
/// Longest pseudonym we accept as input; anything else is malformed.
const MAX_LEN: usize = 64;

pub struct Pseudonymiser {
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

impl Pseudonymiser {
    pub fn new(secret: &[u8; 32]) -> Self {
        let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, b"sluis pseudonym v1");
        Pseudonymiser {
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

    /// The pseudonym of subject `subject_ref` for `recipient`.
    pub fn pseudonym(&self, recipient: &str, subject_ref: &[u8]) -> String {
        let tag = hmac::sign(&self.key_for(recipient), subject_ref);
        format!("{PREFIX_V1}{}", B64URL.encode(&tag.as_ref()[..20]))
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
    s.len() <= MAX_LEN
        && s.strip_prefix(PREFIX_V1).is_some_and(|rest| {
            rest.len() == 27
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
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
}
