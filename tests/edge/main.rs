//! Numeric edge cases, by topic (`magnitudes`, `ties`, `nonfinite`,
//! `regressions`), each run with the scalar path and the tiled kernel
//! at every level (`common::paths`): input magnitudes from subnormal to overflow, all keys
//! equal, a query equal to a key, ±∞ and NaN inputs, extreme scales and
//! epsilons, and a million keys.
//!
//! Tolerances. Every comparison with the f64 reference uses the per-element
//! tolerance of `Case::reference()` (`tol`, `lse_tol`), derived at the top of
//! `tests/common/mod.rs`; `check` also bounds each tiled kernel against the
//! scalar path by twice that tolerance. The only bound added here is for
//! subnormal values ([`subnormal_slack`]), derived where it is used from the
//! same rounding model. Where an f32 intermediate overflows or underflows but
//! the f64 reference's does not, the results legitimately differ from the
//! reference; those tests instead compare with the reference of the case whose
//! overflowed quantities are replaced by the value f32 gives them (±∞ or 0),
//! which is the README's rule for `+∞` scores ("the keys with `+∞` score share
//! the weight equally"), with that reference's tolerance (for a row maximum of
//! `+∞` only the accumulation term remains).

// Test and example code is held to clippy's default lints (Cargo.toml).
#![allow(clippy::pedantic)]

#[path = "../common/mod.rs"]
mod common;
mod support;

mod magnitudes;
mod nonfinite;
mod regressions;
mod ties;
