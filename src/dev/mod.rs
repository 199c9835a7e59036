//! Development tooling.

pub mod demo;
pub mod init;
