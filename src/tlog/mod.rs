//! The access log.

pub mod checkpoint;
pub mod merkle;
pub mod note;
mod record;
pub mod verify;
mod writer;

pub use record::*;
pub use writer::*;
