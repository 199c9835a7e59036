//! Log checkpoints: the C2SP `tlog-checkpoint` body (origin, tree size, root
//! hash) in a signed note, so any party can check that the log it was shown
//! is the log the node committed to, with standard tooling.
//! <https://c2sp.org/tlog-checkpoint>

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use crate::tlog::merkle::Hash;
use crate::tlog::note::{self, NoteError, Signer};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CheckpointError {
    #[error(transparent)]
    Note(#[from] NoteError),
    #[error("the checkpoint body is malformed: {0}")]
    Malformed(&'static str),
}

impl Checkpoint {
    /// The text that is signed: three lines, each ending in a newline.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        )
    }

    pub fn parse(body: &str) -> Result<Checkpoint, CheckpointError> {
        let mut lines = body.split('\n');
        let origin = lines
            .next()
            .filter(|l| !l.is_empty())
            .ok_or(CheckpointError::Malformed("no origin line"))?;
        let size = lines
            .next()
            // No leading zeros, no sign: one canonical text per size.
            .and_then(crate::model::canonical_decimal)
            .ok_or(CheckpointError::Malformed("second line is not a tree size"))?;
        let root: Hash = lines
            .next()
            .and_then(|l| B64.decode(l).ok())
            .and_then(|b| b.try_into().ok())
            .ok_or(CheckpointError::Malformed(
                "third line is not a base64 SHA-256 root hash",
            ))?;
        // Every line ends in a newline (C2SP tlog-checkpoint), so one body
        // has one text.
        if lines.next().is_none() {
            return Err(CheckpointError::Malformed(
                "the root hash line does not end in a newline",
            ));
        }
        Ok(Checkpoint {
            origin: origin.to_string(),
            size,
            root,
        })
    }

    /// The checkpoint as a signed note by key `key_name`. Errors: an origin
    /// or key name a signed note cannot carry ([`note::sign`]).
    pub fn sign(&self, signer: &dyn Signer, key_name: &str) -> Result<String, NoteError> {
        note::sign(signer, key_name, &self.body())
    }

    /// Verifies a signed checkpoint note and parses its body.
    pub fn verify(signed: &str, verifier_key: &str) -> Result<Checkpoint, CheckpointError> {
        let body = note::verify(signed, verifier_key)?;
        Checkpoint::parse(body)
    }
}

/// The origin line of a node's access log.
pub fn origin(node_name: &str) -> String {
    format!("{node_name}/access-log")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_checkpoint_round_trips_and_rejects_edits() {
        let keys = note::TestSigner::new(3);
        let vk = note::verifier_key("node.example", &keys.public_key());
        let cp = Checkpoint {
            origin: origin("node.example"),
            size: 42,
            root: [7u8; 32],
        };
        let signed = cp.sign(&keys, "node.example").unwrap();
        assert!(signed.starts_with("node.example/access-log\n42\n"));
        assert_eq!(Checkpoint::verify(&signed, &vk).unwrap(), cp);
        let forged = signed.replacen("\n42\n", "\n41\n", 1);
        assert!(Checkpoint::verify(&forged, &vk).is_err());
        assert!(Checkpoint::parse("o\n042\nAAAA\n").is_err());
    }
}
