//! The JSON log line, written by hand: the shape of `tracing-subscriber`'s
//! JSON format (`timestamp`, `level`, `fields` with `message`, `target`,
//! and `span` and `spans` when inside one), written straight into the
//! line's buffer.
//!
//! Why: the line per request is written for every request, and the generic
//! format serialises each field through serde into an `io::Write` adaptor
//! that checks every small piece it is handed for UTF-8 again, and formats
//! the timestamp through a `String` of its own; here a field is escaped
//! once as it is written. What a line carries is unchanged: the fields an
//! event has (never more), with the same types — strings for text and
//! `Debug`/`Display` values, numbers for integers and floats (a float always
//! with a fraction or exponent, `null` when not finite), `true`/`false`.
//!
//! Escaping is JSON's (RFC 8259 §7): `"` and `\` escaped, control
//! characters as `\n`, `\r`, `\t`, `\b`, `\f` or `\u00XX`; everything else,
//! non-ASCII included, as is.

use std::fmt::{self, Write};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::{LookupSpan, SpanRef};

/// The event format of JSON lines (see the module's doc). Span fields are
/// stored by the layer's field formatter, which must be
/// `tracing_subscriber::fmt::format::JsonFields` (a JSON object per span).
pub(crate) struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        // A record of the `log` crate names its own target and level.
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        w.write_str("{\"timestamp\":\"")?;
        timestamp(&mut w, std::time::SystemTime::now())?;
        w.write_str("\",\"level\":\"")?;
        w.write_str(meta.level().as_str())?;
        w.write_str("\",\"fields\":{")?;
        let mut fields = Fields {
            w: &mut w,
            first: true,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        w.write_str("},\"target\":")?;
        string(&mut w, meta.target())?;
        let current = event
            .parent()
            .and_then(|id| ctx.span(id))
            .or_else(|| ctx.lookup_current());
        if let Some(span) = current {
            w.write_str(",\"span\":")?;
            span_object::<S, N>(&mut w, &span)?;
            w.write_str(",\"spans\":[")?;
            for (i, s) in span.scope().from_root().enumerate() {
                if i > 0 {
                    w.write_char(',')?;
                }
                span_object::<S, N>(&mut w, &s)?;
            }
            w.write_char(']')?;
        }
        w.write_str("}\n")
    }
}

/// A span as an object: its recorded fields and its `name`.
fn span_object<S, N>(w: &mut Writer<'_>, span: &SpanRef<'_, S>) -> fmt::Result
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
{
    let ext = span.extensions();
    let stored = ext
        .get::<FormattedFields<N>>()
        .map(|f| f.fields.as_str())
        .unwrap_or("");
    w.write_char('{')?;
    match stored.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
        Some(inner) if !inner.trim().is_empty() => {
            w.write_str(inner)?;
            w.write_char(',')?;
        }
        Some(_) => {}
        // Not the object `JsonFields` stores: kept as text, never lost.
        None if !stored.is_empty() => {
            w.write_str("\"fields\":")?;
            string(w, stored)?;
            w.write_char(',')?;
        }
        None => {}
    }
    w.write_str("\"name\":")?;
    string(w, span.metadata().name())?;
    w.write_char('}')
}

/// The fields of an event as the members of a JSON object.
struct Fields<'a, 'w> {
    w: &'a mut Writer<'w>,
    first: bool,
    result: fmt::Result,
}

impl Fields<'_, '_> {
    /// Writes `"name":` (after a comma unless first), then `value`.
    fn member(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        self.result = (|| {
            if !self.first {
                self.w.write_char(',')?;
            }
            self.first = false;
            string(self.w, field.name())?;
            self.w.write_char(':')?;
            value(self.w)
        })();
    }
}

impl Visit for Fields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.member(field, |w| string(w, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.member(field, |w| {
            w.write_char('"')?;
            write!(Escaped(w), "{value:?}")?;
            w.write_char('"')
        });
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.member(field, |w| write!(w, "{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.member(field, |w| write!(w, "{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.member(field, |w| w.write_str(if value { "true" } else { "false" }));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // `Debug` always writes a fraction or an exponent (`2.0`, `1e-7`),
        // so the value reads back as a float; JSON has no NaN or infinity.
        self.member(field, |w| {
            if value.is_finite() {
                write!(w, "{value:?}")
            } else {
                w.write_str("null")
            }
        });
    }
}

/// `s` as a JSON string, quoted and escaped.
fn string(w: &mut impl Write, s: &str) -> fmt::Result {
    w.write_char('"')?;
    Escaped(w).write_str(s)?;
    w.write_char('"')
}

/// Escapes what is written through it as the inside of a JSON string.
struct Escaped<'a, W: Write>(&'a mut W);

impl<W: Write> Write for Escaped<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let bytes = s.as_bytes();
        let mut start = 0;
        for (i, &b) in bytes.iter().enumerate() {
            let escape = match b {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0x08 => "\\b",
                0x0c => "\\f",
                0x00..=0x1f => "",
                _ => continue,
            };
            // Every byte escaped is ASCII, so these are char boundaries.
            self.0.write_str(&s[start..i])?;
            if escape.is_empty() {
                write!(self.0, "\\u{b:04x}")?;
            } else {
                self.0.write_str(escape)?;
            }
            start = i + 1;
        }
        self.0.write_str(&s[start..])
    }
}

/// `t` as RFC 3339 in UTC with microseconds, as the generic format writes
/// it: `2026-12-01T01:26:23.123456Z`. A time before 1970 or after 9999
/// (a clock gone wrong) is written as the epoch.
fn timestamp(w: &mut impl Write, t: std::time::SystemTime) -> fmt::Result {
    let since = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = i64::try_from(since.as_secs()).unwrap_or(0);
    let days = secs.div_euclid(86_400);
    let in_day = secs.rem_euclid(86_400);
    let (mut y, mut m, mut d) = civil_from_days(days);
    let mut micros = since.subsec_micros();
    let (mut hh, mut mm, mut ss) = (in_day / 3600, in_day % 3600 / 60, in_day % 60);
    if !(0..=9999).contains(&y) {
        (y, m, d, hh, mm, ss, micros) = (1970, 1, 1, 0, 0, 0, 0);
    }
    let mut out = [0u8; 27];
    let mut put = |at: usize, width: usize, mut v: i64| {
        for i in (0..width).rev() {
            out[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, y);
    put(5, 2, m);
    put(8, 2, d);
    put(11, 2, hh);
    put(14, 2, mm);
    put(17, 2, ss);
    put(20, 6, i64::from(micros));
    for (at, c) in [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')] {
        out[at] = c;
    }
    out[19] = b'.';
    out[26] = b'Z';
    w.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
}

/// The proleptic Gregorian (year, month, day) of a day count since
/// 1970-01-01 (H. Hinnant, "chrono-Compatible Low-Level Date Algorithms",
/// `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn timestamps_are_rfc3339_utc_with_microseconds() {
        let at = |s: u64, us: u32| {
            let mut out = String::new();
            timestamp(&mut out, UNIX_EPOCH + Duration::new(s, us * 1000)).unwrap();
            out
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000Z");
        // 2000-02-29 (a leap day of a century leap year), 23:59:59.
        assert_eq!(at(951_868_799, 7), "2000-02-29T23:59:59.000007Z");
        assert_eq!(at(1_795_915_583, 123_456), "2026-11-29T01:26:23.123456Z");
        // 2100 is no leap year: the day after 2100-02-28 is 03-01.
        assert_eq!(at(4_107_542_400, 0), "2100-03-01T00:00:00.000000Z");
    }

    #[test]
    fn strings_are_escaped_as_json_says() {
        let mut out = String::new();
        string(&mut out, "a\"b\\c\nd\u{1}é\u{7f}").unwrap();
        assert_eq!(out, "\"a\\\"b\\\\c\\nd\\u0001é\u{7f}\"");
        let back: String = serde_json::from_str(&out).unwrap();
        assert_eq!(back, "a\"b\\c\nd\u{1}é\u{7f}");
    }
}
