//! Every file the node or its commands read, read through one bounded
//! reader: a path set to `/dev/zero`, a huge or endless file, or a
//! receipt from a third party cannot hang the process or exhaust its
//! memory. Each kind of file has its limit ([`Kind::limit`]); a larger one
//! is refused with an error that names the kind and the limit.

use std::io::{self, Read};
use std::path::Path;

/// What a file is, for its size limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The node's configuration (TOML).
    Config,
    /// The Cedar policy.
    Policy,
    /// A PEM certificate, chain or private key.
    Pem,
    /// A PEM file of CRLs: a large CA's CRL lists many serials.
    Crl,
    /// A key file of the node's vault (base64).
    Key,
    /// A signed note from elsewhere: a consent receipt, a checkpoint.
    Note,
}

impl Kind {
    /// The largest file of this kind, in bytes.
    pub const fn limit(self) -> u64 {
        match self {
            Kind::Config => 1 << 20,
            Kind::Policy => 1 << 20,
            Kind::Pem => 1 << 20,
            Kind::Crl => 64 << 20,
            Kind::Key => 64 << 10,
            Kind::Note => 1 << 20,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Config => "a configuration file",
            Kind::Policy => "a policy file",
            Kind::Pem => "a certificate or key file",
            Kind::Crl => "a CRL file",
            Kind::Key => "a key file",
            Kind::Note => "a signed note",
        }
    }
}

/// The bytes of `path`, at most `kind.limit()` of them.
///
/// Errors: the file cannot be opened or read, or it holds more than the
/// limit (`InvalidData`, naming the kind and the limit). Reads at most one
/// byte past the limit, whatever the file is.
pub fn read(path: &Path, kind: Kind) -> io::Result<Vec<u8>> {
    let limit = kind.limit();
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than the {limit} bytes {} may have", kind.name()),
        ));
    }
    Ok(bytes)
}

/// [`read`], as UTF-8 text.
pub fn read_to_string(path: &Path, kind: Kind) -> io::Result<String> {
    String::from_utf8(read(path, kind)?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endless_file_is_refused_naming_its_kind() {
        let err = read_to_string(Path::new("/dev/zero"), Kind::Policy).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("policy file"), "{err}");
    }

    #[test]
    fn a_file_within_the_limit_is_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, "x".repeat(1000)).unwrap();
        assert_eq!(read(&p, Kind::Key).unwrap().len(), 1000);
        std::fs::write(&p, vec![b'x'; (Kind::Key.limit() + 1) as usize]).unwrap();
        assert!(read(&p, Kind::Key).is_err());
    }
}
