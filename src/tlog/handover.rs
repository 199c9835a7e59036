//! Handing the log over from one checkpoint-signing key to the next: a key
//! rotation (`sluis keys rotate-signing`) or a node rename (`sluis node
//! rename`: the key name, and so the verifier key and the checkpoints'
//! origin line, change with the node's name).
//!
//! A handover is an access record of its own, written under the old key,
//! naming both verifier keys (`<name>+<key id>+<key>`, C2SP signed-note).
//! The checkpoint over exactly the log up to and including that record is
//! signed by **both** keys (a note may carry several signatures, C2SP
//! signed-note "Signatures"); every later checkpoint by the new key alone.
//! So a verifier that knows either key accepts the handover checkpoint, and
//! learns the other from the record it covers: the old key vouches for the
//! new one, and the new key's checkpoints cover every entry before it.
//! <https://c2sp.org/signed-note>, <https://c2sp.org/tlog-checkpoint>

/// The method of a signing key rotation's record.
pub const ROTATE_KEY: &str = "node.rotate_key";
/// The method of a node rename's record.
pub const RENAME: &str = "node.rename";

/// The two verifier keys of a handover.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handover {
    /// The verifier key the log was signed with up to the handover.
    pub from: String,
    /// The verifier key it is signed with after it.
    pub to: String,
}

const PREFIX: &str = "the log's checkpoints are signed from here on by ";
const FROM: &str = " instead of ";

impl Handover {
    /// The record's `detail`: both keys, in words.
    pub fn detail(&self) -> String {
        format!("{PREFIX}{}{FROM}{}", self.to, self.from)
    }

    /// The handover a record states, if `method` is a handover's and its
    /// `detail` is one (as [`Handover::detail`] writes it).
    pub fn parse(method: &str, detail: &str) -> Option<Handover> {
        if method != ROTATE_KEY && method != RENAME {
            return None;
        }
        let (to, from) = detail.strip_prefix(PREFIX)?.split_once(FROM)?;
        let key = |k: &str| k.splitn(3, '+').count() == 3 && !k.contains(' ');
        (key(to) && key(from)).then(|| Handover {
            from: from.to_string(),
            to: to.to_string(),
        })
    }
}

/// The name a verifier key signs as (its part before the first `+`).
pub fn key_name(verifier_key: &str) -> &str {
    verifier_key.split('+').next().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handover_reads_back_from_its_record_only() {
        let h = Handover {
            from: "a.example+01020304+AQ==".into(),
            to: "b.example+05060708+AQ+/=".into(),
        };
        assert_eq!(Handover::parse(ROTATE_KEY, &h.detail()), Some(h.clone()));
        assert_eq!(Handover::parse(RENAME, &h.detail()), Some(h.clone()));
        assert_eq!(Handover::parse("node.reload", &h.detail()), None);
        assert_eq!(Handover::parse(ROTATE_KEY, "something else"), None);
        assert_eq!(key_name(&h.to), "b.example");
    }
}
