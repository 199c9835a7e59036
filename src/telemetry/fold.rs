//! Folding of repeated log lines: the first of a run is written, the
//! rest are counted and said as one summary line ("N more like this in
//! the last M s") at most once per interval. The one place that does it,
//! for every line that a fault outside the node can repeat many times a
//! second: a listener's accept failing (out of file descriptors), the
//! access log's writes failing, telemetry export failing, a database
//! pinged while it is down.
//!
//! ```ignore
//! static ACCEPT_FAILED: Repeats = Repeats::new(Duration::from_secs(60));
//! if let Some(say) = ACCEPT_FAILED.admit() {
//!     tracing::warn!(error = %e, more = say.more(), "accept failed{say}");
//! }
//! ```

use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A run of repeated lines of one kind. `const`, for a `static` per call
/// site; or one per object, for lines about that object.
#[derive(Debug)]
pub struct Repeats {
    every: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// When the last line of this kind was written; `None` before the
    /// first or after [`Repeats::end`].
    said_at: Option<Instant>,
    /// Lines left out since then.
    more: u64,
}

/// What to write for one occurrence ([`Repeats::admit`]): `Display`s as
/// nothing for the first line of a run, and as "; N more like this in the
/// last M s" for a summary, to append to the line's message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Say {
    more: u64,
    secs: u64,
}

impl Say {
    /// How many lines this one stands for besides itself (0 for the first
    /// of a run).
    pub fn more(&self) -> u64 {
        self.more
    }
}

impl fmt::Display for Say {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.more > 0 {
            write!(
                f,
                "; {} more like this in the last {} s",
                self.more, self.secs
            )?;
        }
        Ok(())
    }
}

impl Repeats {
    /// At most one line per `every` after the first of a run.
    pub const fn new(every: Duration) -> Repeats {
        Repeats {
            every,
            state: Mutex::new(State {
                said_at: None,
                more: 0,
            }),
        }
    }

    /// One occurrence: `Some` if a line is to be written for it (the
    /// first of a run, or the first once `every` has passed since the last
    /// line, standing for those left out in between), `None` if it is
    /// only counted.
    pub fn admit(&self) -> Option<Say> {
        self.admit_at(Instant::now())
    }

    fn admit_at(&self, now: Instant) -> Option<Say> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match s.said_at {
            Some(at) if now.saturating_duration_since(at) < self.every => {
                s.more += 1;
                None
            }
            Some(at) => {
                let say = Say {
                    more: s.more,
                    secs: now.saturating_duration_since(at).as_secs().max(1),
                };
                *s = State {
                    said_at: Some(now),
                    more: 0,
                };
                Some(say)
            }
            None => {
                *s = State {
                    said_at: Some(now),
                    more: 0,
                };
                Some(Say { more: 0, secs: 0 })
            }
        }
    }

    /// Ends the run (the fault is gone): the next occurrence is written
    /// at once. Returns how many occurrences were left out unsaid, for
    /// the line that says it is gone.
    pub fn end(&self) -> u64 {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut *s).more
    }
}

/// How long identical lines are folded into one before a summary says
/// how many there were ([`FoldLayer`]).
pub(crate) const FOLD_EVERY: Duration = Duration::from_secs(10);
/// Most kinds of line followed at once; beyond it new lines pass unfolded
/// (bounded memory whatever the lines).
const MAX_KINDS: usize = 256;
/// Longest message a summary repeats, in bytes.
const MAX_SUMMARY_TEXT: usize = 300;

/// The log layer's fold of identical lines, for every line the process
/// writes but the one line per request: a line equal to one written less
/// than [`FOLD_EVERY`] ago (the same call site, the same fields) is not
/// written but counted, and a summary line ("N more like this in the last
/// M s: <message>") follows once the interval is over — from a thread of
/// its own, never from inside another line's dispatch, which the layers'
/// per-layer filters would then misread (tokio-rs/tracing#2519). Lines
/// the node does not write itself (sqlx's, a listener's accept failures)
/// are folded too.
pub(crate) struct FoldLayer<L> {
    inner: L,
    folds: std::sync::Arc<Mutex<Folds>>,
    /// The subscriber this layer is part of, for the summaries: they go
    /// to it, not to whatever the summary thread's default is.
    dispatch: std::sync::Arc<Mutex<Option<tracing::dispatcher::WeakDispatch>>>,
}

/// The kinds of line seen within the interval: by a hash of call site and
/// fields.
pub(crate) struct Folds {
    /// The interval ([`FOLD_EVERY`] in the node).
    every: Duration,
    seen: std::collections::HashMap<u64, Fold>,
}

impl Default for Folds {
    fn default() -> Folds {
        Folds {
            every: FOLD_EVERY,
            seen: std::collections::HashMap::new(),
        }
    }
}

struct Fold {
    said_at: Instant,
    more: u64,
    level: tracing::Level,
    message: String,
}

impl Folds {
    /// Whether a line of kind `key` is written now.
    fn admit(
        &mut self,
        key: u64,
        now: Instant,
        line: impl FnOnce() -> (tracing::Level, String),
    ) -> bool {
        if let Some(f) = self.seen.get_mut(&key) {
            // Counted until the summary thread says them ([`Folds::due`]);
            // written again only if that thread is gone.
            if now.saturating_duration_since(f.said_at) < 2 * self.every {
                f.more += 1;
                return false;
            }
            f.said_at = now;
            f.more = 0;
            return true;
        }
        if self.seen.len() < MAX_KINDS {
            let (level, message) = line();
            self.seen.insert(
                key,
                Fold {
                    said_at: now,
                    more: 0,
                    level,
                    message,
                },
            );
        }
        true
    }

    /// The summaries due at `now`: (level, count, seconds, message) of
    /// each kind whose interval is over and that repeated in it; kinds
    /// that did not repeat are forgotten.
    fn due(&mut self, now: Instant) -> Vec<(tracing::Level, u64, u64, String)> {
        let mut out = Vec::new();
        self.seen.retain(|_, f| {
            let age = now.saturating_duration_since(f.said_at);
            if age < self.every {
                return true;
            }
            if f.more == 0 {
                return false;
            }
            out.push((f.level, f.more, age.as_secs().max(1), f.message.clone()));
            // A flood that goes on is folded again from here.
            f.said_at = now;
            f.more = 0;
            true
        });
        out
    }
}

impl<L> FoldLayer<L> {
    /// Folds the lines `inner` writes, and starts the thread that writes
    /// the summaries.
    pub(crate) fn new(inner: L) -> FoldLayer<L> {
        FoldLayer::every(inner, FOLD_EVERY)
    }

    /// [`FoldLayer::new`] with another interval than [`FOLD_EVERY`].
    fn every(inner: L, every: Duration) -> FoldLayer<L> {
        let folds = std::sync::Arc::new(Mutex::new(Folds {
            every,
            ..Folds::default()
        }));
        let tick = every.min(Duration::from_secs(1));
        let dispatch: std::sync::Arc<Mutex<Option<tracing::dispatcher::WeakDispatch>>> =
            Default::default();
        let to = dispatch.clone();
        let weak = std::sync::Arc::downgrade(&folds);
        // If no thread can be had, folding still bounds a flood (a kind is
        // written again after twice the interval, `Folds::admit`); only the
        // counts go unsaid. Nothing is printed: the log is not set up yet.
        let _ = std::thread::Builder::new()
            .name("sluis-log-fold".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(tick);
                    let Some(folds) = weak.upgrade() else { return };
                    let due = folds
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .due(Instant::now());
                    drop(folds);
                    let Some(d) = to
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .as_ref()
                        .and_then(|w| w.upgrade())
                    else {
                        continue;
                    };
                    tracing::dispatcher::with_default(&d, || {
                        for (level, more, secs, message) in due {
                            say_summary(level, more, secs, &message);
                        }
                    });
                }
            });
        FoldLayer {
            inner,
            folds,
            dispatch,
        }
    }
}

/// Writes one summary line, at the level of the lines it stands for.
fn say_summary(level: tracing::Level, more: u64, secs: u64, message: &str) {
    macro_rules! at {
        ($lvl:ident) => {
            tracing::$lvl!(target: "sluis::fold", repeated = more, "{more} more like this in the last {secs} s: {message}")
        };
    }
    match level {
        tracing::Level::ERROR => at!(error),
        tracing::Level::WARN => at!(warn),
        tracing::Level::INFO => at!(info),
        tracing::Level::DEBUG => at!(debug),
        tracing::Level::TRACE => at!(trace),
    }
}

/// An event's fields, as text: its message apart, and a hash of all.
#[derive(Default)]
struct Rendered {
    message: String,
    all: String,
}

impl tracing::field::Visit for Rendered {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        use std::fmt::Write;
        let _ = write!(self.all, "{}={:?};", field.name(), value);
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        }
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        use std::fmt::Write;
        let _ = write!(self.all, "{}={};", field.name(), value);
        if field.name() == "message" {
            self.message.push_str(value);
        }
    }
}

impl<S, L> tracing_subscriber::Layer<S> for FoldLayer<L>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    L: tracing_subscriber::Layer<S>,
{
    fn on_register_dispatch(&self, subscriber: &tracing::Dispatch) {
        *self.dispatch.lock().unwrap_or_else(|e| e.into_inner()) = Some(subscriber.downgrade());
        self.inner.on_register_dispatch(subscriber);
    }

    fn on_layer(&mut self, subscriber: &mut S) {
        self.inner.on_layer(subscriber);
    }

    fn register_callsite(
        &self,
        metadata: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        self.inner.register_callsite(metadata)
    }

    fn enabled(
        &self,
        metadata: &tracing::Metadata<'_>,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        self.inner.enabled(metadata, ctx)
    }

    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        self.inner.on_new_span(attrs, id, ctx);
    }

    fn on_record(
        &self,
        span: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        self.inner.on_record(span, values, ctx);
    }

    fn on_follows_from(
        &self,
        span: &tracing::span::Id,
        follows: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        self.inner.on_follows_from(span, follows, ctx);
    }

    fn event_enabled(
        &self,
        event: &tracing::Event<'_>,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        self.inner.event_enabled(event, ctx)
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: tracing_subscriber::layer::Context<'_, S>) {
        let meta = event.metadata();
        // One line per request is the promise; summaries are not folded.
        if meta.target() == super::request::TARGET || meta.target() == "sluis::fold" {
            return self.inner.on_event(event, ctx);
        }
        let mut rendered = Rendered::default();
        event.record(&mut rendered);
        let key = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            meta.callsite().hash(&mut h);
            rendered.all.hash(&mut h);
            h.finish()
        };
        let admitted =
            self.folds
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .admit(key, Instant::now(), || {
                    let mut message = std::mem::take(&mut rendered.message);
                    if message.len() > MAX_SUMMARY_TEXT {
                        let mut cut = MAX_SUMMARY_TEXT;
                        while !message.is_char_boundary(cut) {
                            cut -= 1;
                        }
                        message.truncate(cut);
                        message.push('…');
                    }
                    (*meta.level(), message)
                });
        if admitted {
            self.inner.on_event(event, ctx);
        }
    }

    fn on_enter(&self, id: &tracing::span::Id, ctx: tracing_subscriber::layer::Context<'_, S>) {
        self.inner.on_enter(id, ctx);
    }

    fn on_exit(&self, id: &tracing::span::Id, ctx: tracing_subscriber::layer::Context<'_, S>) {
        self.inner.on_exit(id, ctx);
    }

    fn on_close(&self, id: tracing::span::Id, ctx: tracing_subscriber::layer::Context<'_, S>) {
        self.inner.on_close(id, ctx);
    }

    fn on_id_change(
        &self,
        old: &tracing::span::Id,
        new: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        self.inner.on_id_change(old, new, ctx);
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        self.inner.max_level_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A flood of one line is its first occurrence and then one summary
    /// per interval with the count left out; a new run after `end` starts
    /// with a line again.
    #[test]
    fn a_flood_is_its_first_line_and_a_summary_per_interval() {
        let r = Repeats::new(Duration::from_secs(60));
        let t0 = Instant::now();
        let first = r.admit_at(t0).expect("the first is written");
        assert_eq!(first.to_string(), "");
        let mut said = 0;
        // A thousand a second for two minutes.
        for ms in 1..120_000u64 {
            if let Some(say) = r.admit_at(t0 + Duration::from_millis(ms)) {
                said += 1;
                assert_eq!(say.more(), 59_999, "{say}");
                assert_eq!(say.to_string(), "; 59999 more like this in the last 60 s");
            }
        }
        assert_eq!(said, 1, "one summary in the second minute");
        assert_eq!(r.end(), 59_999);
        assert_eq!(r.admit_at(t0 + Duration::from_secs(121)).unwrap().more(), 0);
    }
}

#[cfg(test)]
mod layer_tests {
    use super::*;

    /// Identical lines within the interval are one line and one summary
    /// with their count; a line that differs is its own; a kind that did
    /// not repeat is forgotten without a summary.
    #[test]
    fn identical_lines_fold_into_one_and_a_count() {
        let mut f = Folds::default();
        let t0 = Instant::now();
        let line = || (tracing::Level::WARN, "accept failed".to_string());
        assert!(f.admit(1, t0, line));
        for ms in 1..5_000 {
            assert!(!f.admit(1, t0 + Duration::from_millis(ms), line));
        }
        assert!(f.admit(2, t0, line), "another kind is its own line");
        assert!(f.due(t0 + Duration::from_secs(5)).is_empty());
        let due = f.due(t0 + FOLD_EVERY);
        assert_eq!(
            due,
            vec![(
                tracing::Level::WARN,
                4_999,
                FOLD_EVERY.as_secs(),
                "accept failed".into()
            )]
        );
        // Kind 2 did not repeat: forgotten; kind 1 is folded on.
        assert_eq!(f.seen.len(), 1);
        assert!(!f.admit(1, t0 + FOLD_EVERY + Duration::from_secs(1), line));
        assert!(f.due(t0 + FOLD_EVERY * 3).len() == 1);
        assert!(f.due(t0 + FOLD_EVERY * 5).is_empty());
        assert!(f.seen.is_empty());
    }

    /// Through a real subscriber: a thousand identical warnings are one
    /// line and, after the interval, one summary with the count; lines
    /// that differ are each written; request lines are never folded.
    #[test]
    fn the_layer_writes_a_flood_as_one_line_and_a_summary() {
        use tracing_subscriber::layer::SubscriberExt;
        #[derive(Clone, Default)]
        struct Out(std::sync::Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Out {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let out = Out::default();
        let writer = out.clone();
        let fmt = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(move || writer.clone());
        let every = Duration::from_millis(300);
        let subscriber = tracing_subscriber::registry().with(FoldLayer::every(fmt, every));
        let dispatch = tracing::Dispatch::new(subscriber);
        tracing::dispatcher::with_default(&dispatch, || {
            for _ in 0..1000 {
                tracing::warn!(error = "Too many open files (os error 24)", "accept failed");
            }
            for n in 0..3 {
                tracing::warn!(n, "differs");
                tracing::info!(target: crate::telemetry::request::TARGET, "request");
                tracing::info!(target: crate::telemetry::request::TARGET, "request");
            }
        });
        // The summary comes from the fold's thread, to this subscriber.
        std::thread::sleep(every * 3);
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let count = |what: &str| text.lines().filter(|l| l.contains(what)).count();
        assert_eq!(count("accept failed"), 2, "{text}");
        assert_eq!(count("differs"), 3, "{text}");
        assert_eq!(count(" request"), 6, "{text}");
        assert_eq!(count("999 more like this in the last"), 1, "{text}");
    }
}
