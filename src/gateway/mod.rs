//! The request path.

mod exchange;
pub mod oversight;
pub mod pseudonym;
pub mod vault;

pub use exchange::*;
