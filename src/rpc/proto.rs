//! The generated protobuf and gRPC code (`proto/sluis/v1`).

pub mod v1 {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("sluis.v1");
}

/// Encoded descriptors of our protos, for gRPC server reflection.
pub(crate) const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/sluis_descriptor.bin"));

/// Written by hand (the build skips the derived one): an identity must never
/// reach a log line, whatever `{:?}` it is formatted through.
impl std::fmt::Debug for v1::Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Identity { <redacted> }")
    }
}
