//! The fuzzing harness of the `fuzz_*` test targets: property tests with
//! proptest on stable Rust, each target a parser of untrusted bytes and the
//! contract it keeps (no panic, bounded time, typed errors that echo no
//! input, a round trip where there is an encoder).
//!
//! Budgets:
//! - `cargo test`: each target runs its modest default number of cases
//!   (`PROPTEST_CASES` overrides it, for all targets alike);
//! - `SLUIS_FUZZ_SECONDS=N`: each target runs batches of fresh random cases
//!   until N seconds have passed (what `.ci/run` does, bounded in time).
//!
//! A failing case is shrunk to a minimal input and its seed saved next to
//! the test file (`tests/<target>.proptest-regressions`); every later run
//! replays the saved seeds first. Inputs found this way also become named
//! tests in the target's file, so the kind of fault stays readable.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};

/// A parser call slower than this is a finding, not noise: every input of
/// the parser targets is at most a few KiB, and a debug build on a loaded
/// machine parses those in milliseconds.
pub const SLOW: Duration = Duration::from_secs(2);

/// The time budget per target from `SLUIS_FUZZ_SECONDS`, if set.
pub fn seconds() -> Option<f64> {
    std::env::var("SLUIS_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| *s > 0.0)
}

/// Runs `test` on inputs drawn from `strategy`: `cases` of them, or, with
/// `SLUIS_FUZZ_SECONDS`, as many as fit in that time. `source` is the
/// calling file (`file!()`), where failing seeds are saved. Panics with the
/// minimal failing input.
pub fn run<S>(
    name: &str,
    source: &'static str,
    cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S: Strategy,
{
    let config = |cases: u32| Config {
        cases,
        source_file: Some(source),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        // Each target is small; most of a shrink's time is the failing
        // call itself.
        max_shrink_iters: 4096,
        ..Config::default()
    };
    let started = Instant::now();
    let mut total = 0u64;
    let budget = seconds();
    let batch = match budget {
        Some(_) => cases,
        None => std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(cases),
    };
    loop {
        // A fresh runner per batch: a new random seed, and the saved
        // failures replayed first.
        let mut runner = TestRunner::new(config(batch));
        if let Err(e) = runner.run(&strategy, &test) {
            panic!("fuzz target {name} failed after {total} cases: {e}");
        }
        total += u64::from(batch);
        match budget {
            Some(s) if started.elapsed().as_secs_f64() < s => continue,
            _ => break,
        }
    }
    eprintln!(
        "fuzz target {name}: {total} cases in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Calls `f` and fails the case if it took longer than [`SLOW`].
pub fn timed<T>(what: &str, f: impl FnOnce() -> T) -> Result<T, TestCaseError> {
    let t = Instant::now();
    let out = f();
    let took = t.elapsed();
    if took > SLOW {
        return Err(TestCaseError::fail(format!(
            "{what} took {took:?} (bound {SLOW:?})"
        )));
    }
    Ok(out)
}

/// Bytes with a few edits: flipped bytes, a cut, an insertion. Most
/// parsers reject random bytes at the first tag; edits of a valid input
/// reach the code behind it.
pub fn mutated(seed: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    use proptest::prelude::*;
    let len = seed.len().max(1);
    let edit = prop_oneof![
        // Overwrite one byte.
        (0..len, any::<u8>()).prop_map(|(i, b)| Edit::Set(i, b)),
        // Flip one bit.
        (0..len, 0u8..8).prop_map(|(i, bit)| Edit::Flip(i, bit)),
        // Cut the input at a point.
        (0..len).prop_map(Edit::Truncate),
        // Insert a few bytes.
        (0..len, proptest::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(i, b)| Edit::Insert(i, b)),
        // Remove a range.
        (0..len, 1usize..16).prop_map(|(i, n)| Edit::Remove(i, n)),
        // A length-like byte at a point: 0x00, 0x7f, 0x80, 0x81, 0x84, 0xff.
        (
            0..len,
            prop::sample::select(vec![0u8, 0x7f, 0x80, 0x81, 0x82, 0x84, 0xff])
        )
            .prop_map(|(i, b)| Edit::Set(i, b)),
    ];
    proptest::collection::vec(edit, 1..6).prop_map(move |edits| {
        let mut b = seed.clone();
        for e in edits {
            e.apply(&mut b);
        }
        b
    })
}

#[derive(Clone, Debug)]
enum Edit {
    Set(usize, u8),
    Flip(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
    Remove(usize, usize),
}

impl Edit {
    fn apply(self, b: &mut Vec<u8>) {
        match self {
            Edit::Set(i, v) => {
                if let Some(x) = b.get_mut(i) {
                    *x = v;
                }
            }
            Edit::Flip(i, bit) => {
                if let Some(x) = b.get_mut(i) {
                    *x ^= 1 << bit;
                }
            }
            Edit::Truncate(i) => b.truncate(i),
            Edit::Insert(i, v) => {
                let i = i.min(b.len());
                b.splice(i..i, v);
            }
            Edit::Remove(i, n) => {
                let i = i.min(b.len());
                let end = (i + n).min(b.len());
                b.drain(i..end);
            }
        }
    }
}

/// Text with a few edits, kept valid UTF-8 (edits that break it are
/// repaired lossily).
pub fn mutated_text(seed: String) -> impl Strategy<Value = String> {
    mutated(seed.into_bytes()).prop_map(|b| String::from_utf8_lossy(&b).into_owned())
}
