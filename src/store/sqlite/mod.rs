//! SQLite.

pub mod cache;
pub mod read;
pub mod writer;
