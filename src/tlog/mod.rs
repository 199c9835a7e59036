//! The access log.

pub mod checkpoint;
pub mod merkle;
pub mod note;
pub mod proof;
mod record;
pub mod verify;
mod writer;

pub use record::*;
pub use writer::*;
