//! Test support: the one runner every fuzz target (a `fuzz` module next
//! to the parser it covers) goes through. See `docs/fuzzing.md`.
//!
//! The engine is proptest: it runs on stable Rust inside `cargo test`
//! (no nightly, no libFuzzer, no extra tool in CI), its generators are
//! structured (grammar-aware inputs with mutations, so a target reaches
//! deep code rather than failing on the first byte), and it shrinks a
//! failure to a minimal input that becomes a regression test.
//!
//! Budget, from the environment:
//! - nothing set: each target runs its own small number of cases (the
//!   short budget of `cargo test`);
//! - `FUZZ_CASES=N`: N cases per batch instead;
//! - `FUZZ_SECONDS=S`: batches (each with a fresh random seed) until S
//!   seconds have passed: the long run.
//!
//! Each target prints `fuzz NAME: N executions in S s` (seen with
//! `--nocapture`). A failure panics with proptest's minimal failing input.
//! Invariant: a target's closure is the whole test; nothing here retries
//! or hides a failure.

use std::cell::Cell;
use std::fmt::Debug;
use std::time::{Duration, Instant};

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.trim().parse().ok()
}

/// Runs `test` on values of `strategy`: `default_cases` of them, or as the
/// environment says (see the module documentation). Panics on the first
/// failure, with the shrunk input.
pub(crate) fn run<S>(
    name: &str,
    default_cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S: Strategy,
    S::Value: Debug,
{
    let cases = env_number("FUZZ_CASES")
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(default_cases)
        .max(1);
    let budget = env_number("FUZZ_SECONDS").map(Duration::from_secs);
    let start = Instant::now();
    let executions = Cell::new(0u64);
    loop {
        let config = Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        };
        let mut runner = TestRunner::new(config);
        let outcome = runner.run(&strategy, |value| {
            executions.set(executions.get() + 1);
            test(value)
        });
        if let Err(failure) = outcome {
            panic!("fuzz {name}: {failure}");
        }
        match budget {
            Some(budget) if start.elapsed() < budget => {}
            _ => break,
        }
    }
    eprintln!(
        "fuzz {name}: {} executions in {:.1} s",
        executions.get(),
        start.elapsed().as_secs_f64()
    );
}

/// Byte-level mutations of a valid input, so a target also sees what is
/// *almost* right: each `(position, op)` flips, deletes, duplicates or
/// replaces one byte (positions wrap around the input's length).
pub(crate) fn mutations() -> impl Strategy<Value = Vec<(usize, Mutation)>> {
    use proptest::prelude::*;
    proptest::collection::vec(
        (
            any::<usize>(),
            prop_oneof![
                any::<u8>().prop_map(Mutation::Replace),
                Just(Mutation::Delete),
                Just(Mutation::Duplicate),
                any::<u8>().prop_map(Mutation::Insert),
            ],
        ),
        0..4,
    )
}

/// One byte-level edit (see [`mutations`]).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Mutation {
    Replace(u8),
    Delete,
    Duplicate,
    Insert(u8),
}

/// Applies [`mutations`] to `input`.
pub(crate) fn mutate(mut input: Vec<u8>, edits: &[(usize, Mutation)]) -> Vec<u8> {
    for &(at, edit) in edits {
        if input.is_empty() {
            if let Mutation::Insert(b) | Mutation::Replace(b) = edit {
                input.push(b);
            }
            continue;
        }
        let at = at % input.len();
        match edit {
            Mutation::Replace(b) => {
                if let Some(slot) = input.get_mut(at) {
                    *slot = b;
                }
            }
            Mutation::Delete => {
                input.remove(at);
            }
            Mutation::Duplicate => {
                if let Some(&b) = input.get(at) {
                    input.insert(at, b);
                }
            }
            Mutation::Insert(b) => input.insert(at, b),
        }
    }
    input
}

/// [`mutate`] on text, keeping it UTF-8 (lossily).
pub(crate) fn mutate_text(input: &str, edits: &[(usize, Mutation)]) -> String {
    String::from_utf8_lossy(&mutate(input.as_bytes().to_vec(), edits)).into_owned()
}
