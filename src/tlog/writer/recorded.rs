//! [`Recorded<T>`]: a value whose access record is durable in the log.

/// A value whose access record is durable in the access log, with the
/// record's position (0-based index, the leaf index of RFC 6962).
///
/// Only the log writer makes one: [`AuditLog::append`] returns a
/// `Recorded<()>` once the batch holding the record has committed, and the
/// constructor is private to the writer's module. The gateway attaches its
/// result with [`map`](Recorded::map) or [`try_map`](Recorded::try_map), so
/// a method that must return a `Recorded` cannot return data without first
/// recording its access — the compiler keeps the invariant "nothing leaves
/// before its access record is durable" that convention used to keep.
///
/// A write splits the proof from the value with
/// [`into_parts`](Recorded::into_parts), applies the value, and answers with
/// the proof again.
///
/// ```
/// use sluis::tlog::{AccessRecord, AuditError, AuditLog, Recorded};
///
/// /// The only way to a `Recorded`: append, then attach.
/// async fn answer(log: &AuditLog, rec: &AccessRecord) -> Result<Recorded<&'static str>, AuditError> {
///     let durable: Recorded<()> = log.append(rec).await?;
///     Ok(durable.map(|()| "the data"))
/// }
/// ```
///
/// Outside the writer a `Recorded` cannot be made, neither by its
/// constructor:
///
/// ```compile_fail,E0624
/// use sluis::tlog::Recorded;
///
/// fn forge() -> Recorded<&'static str> {
///     Recorded::new(0).map(|()| "the data")
/// }
/// ```
///
/// nor by naming its fields:
///
/// ```compile_fail,E0451
/// use sluis::tlog::Recorded;
///
/// fn forge() -> Recorded<&'static str> {
///     Recorded { value: "the data", index: 0 }
/// }
/// ```
///
/// [`AuditLog::append`]: crate::tlog::AuditLog::append
#[derive(Debug)]
pub struct Recorded<T> {
    value: T,
    index: u64,
}

impl Recorded<()> {
    /// Made by the writer once the record at `index` is durable.
    pub(super) fn new(index: u64) -> Recorded<()> {
        Recorded { value: (), index }
    }
}

impl<T> Recorded<T> {
    /// The access record's position in the log.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// The same record, carrying `f(value)`.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Recorded<U> {
        Recorded {
            value: f(self.value),
            index: self.index,
        }
    }

    /// The same record, carrying `f(value)` if it succeeds.
    pub fn try_map<U, E>(self, f: impl FnOnce(T) -> Result<U, E>) -> Result<Recorded<U>, E> {
        Ok(Recorded {
            value: f(self.value)?,
            index: self.index,
        })
    }

    /// The value and the bare proof that its record is durable, to apply
    /// a write and then answer with the proof again.
    pub fn into_parts(self) -> (T, Recorded<()>) {
        (
            self.value,
            Recorded {
                value: (),
                index: self.index,
            },
        )
    }

    /// The value, leaving: where it is answered.
    pub fn into_inner(self) -> T {
        self.value
    }
}
