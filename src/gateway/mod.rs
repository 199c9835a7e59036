//! The request path.

mod error;
mod exchange;
pub mod oversight;
pub mod pseudonym;
pub mod release;
pub mod validate;
pub mod vault;

pub use error::{Code, ExchangeError};
pub use exchange::*;
pub use release::Withheld;
