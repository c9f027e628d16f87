//! The whole public API on arbitrary input: it must return `Ok` or `Err`,
//! never panic, hang or touch memory it was not given.
//!
//! Each input is a sequence of up to four operations:
//!
//! - **attention**: shapes (zero, small, absurd), views built with every
//!   public constructor (`MatRef::new/dense`, `HeadsRef::new/heads_major/
//!   seq_major/from_mat`, their mutable twins) over buffers of capped length
//!   (possibly too short, strides possibly too small), K and V possibly one
//!   buffer, a scorer with any parameters (NaN, ±inf, 0, negative,
//!   subnormal, huge; `Additive` weights of any length, with NaN, ±inf,
//!   subnormal or huge entries, or with `‖w‖₁` at `f32::MAX` within a few
//!   ulps), a mask with any offset/left/right, a key length, an
//!   optional bias (`Bias::new/shared`, any strides and length), an optional
//!   lse slice of any length, any kernel with any level cap (supported
//!   or not); then `run`, `run_lse` or
//!   `run_heads`;
//! - **views**: the view and bias constructors alone, with absurd numbers,
//!   `HeadsRef::paged` and `PagedLayout` among them (block sizes, strides
//!   and table entries absurd too);
//! - **merge**: `streamattn::merge` on arbitrary views and lse slices;
//! - **batch**: `run_batch` and `par_run_batch` on up to five sequences,
//!   contiguous or paged, new rows and cache lengths of any size, with one
//!   argument possibly wrong (`cu_seqlens` short, not from 0, decreasing or
//!   not ending at the rows; `out` or `lse` short; a `v` missing; a
//!   sequence's width or heads; a key length, bias or cached norms; sinks
//!   of the wrong length; any softcap and slopes), against the model of the
//!   documented checks in order; on `Ok`, each sequence bit for bit what
//!   `run_heads` gives on its views with the mask at the cache's last rows;
//! - **key_range**: `Mask::key_range` and `Mask::causal_bottom_right`.
//!
//! Asserted:
//!
//! - every constructor and call returns `Ok` exactly when the documented
//!   checks pass (a model of them, in `u128`, is below); degenerate views
//!   (zero heads or rows) may go either way; a call's `Err` is exactly the
//!   one of the first failing check in the documented order (`k`, `v`, head
//!   grouping, `out`, scorer, key length, mask, bias, lse), fields and
//!   rejected value (bit for bit) included;
//! - on `Ok`, a view's rows are where its strides say (`row`, `head`,
//!   `row_mut`, `as_ref`, `from_mat`);
//! - an `Err` leaves the output and lse buffers bit-for-bit untouched;
//! - an `Ok` call writes nothing outside the output view and `lse[..heads·n_q]`;
//! - a row that sees no key (mask, key length) has output exactly 0, and lse
//!   exactly `−∞`, when its query is finite;
//! - "finite tier": when every value read is finite, with `|x| ≤ 2^20` for
//!   q, k and bias entries (which may also be `−∞`; values may be anywhere
//!   in the finite range, and `NegSqDist` queries and keys too), every output is finite,
//!   for any valid scorer parameters, unless a `−∞` bias can meet a `+∞`
//!   logit (a documented NaN: `eps = 0` exact match, or a scale above
//!   `2^40` that overflows a logit). This is what the scalar path does by
//!   construction (its logits are never NaN there, its weights are in
//!   `[0, 1]` with the row maximum weighing exactly 1), and the kernels
//!   compute the same function up to rounding. For `Additive` the docs say
//!   more: every score lies in `[−‖w‖₁, ‖w‖₁]` and a valid `w` has a finite
//!   `‖w‖₁`, so no score overflows; q and k may then hold any values but NaN
//!   (`tanh(±∞) = ±1`), as long as no column of a visible pair adds `+∞` and
//!   `−∞` (a NaN score). There the lse of a row with a key of finite bias
//!   `b_j` is also checked against the score bound: within
//!   `[max b − ‖w‖₁, max b + ‖w‖₁ + ln n]` (loosely: `64u` relative slack);
//! - "convex tier": additionally `scale ≤ 2^40` (no logit overflows),
//!   `NegSqDist` queries and keys with `|x| ≤ 2^20` (no key overflows to weight 0),
//!   `NegLogDist` with `p ≤ 4`, `eps ≤ 2^100` (no weight overflows or
//!   vanishes), or `Additive`: each output is a convex combination of the values of the keys
//!   the row sees with a finite bias, `min v − s ≤ O ≤ max v + s` with
//!   `s = 8γ(2n+3)·max|v| + 10^-30` (the sums of `p_j v_j` and `p_j`, n
//!   terms with n rescalings, relative error `γ(2n+3)` each), and exactly 0
//!   (lse `−∞`) when every such key has a `−∞` bias;
//! - `merge`: NaN lse in either → the row is NaN (output and lse); two empty
//!   partials → 0 and `−∞`; an empty partial (or a finite one against `+∞`)
//!   leaves the other unchanged; two `+∞` → the average; otherwise the
//!   result is within the merge's rounding of the exact combination (see
//!   `check_merge_row`);
//! - `key_range`: exactly the keys of the documented table, in exact
//!   integer arithmetic, below `key_len`; `causal_bottom_right` lets the last
//!   row see every key.
//!
//! Known bugs can be skipped so that a long run explores further: set
//! `STREAMATTN_FUZZ_KNOWN` to a comma-separated list of the names used with
//! `known(...)` below (see fuzz/README.md). `fuzz/run.sh` sets none.
#![no_main]

// The operations and their helpers, by topic.
#[path = "../support/api/attention.rs"]
mod attention;
#[path = "../support/api/batch.rs"]
mod batch;
#[path = "../support/api/decode.rs"]
mod decode;
#[path = "../support/api/key_range.rs"]
mod key_range;
#[path = "../support/api/merge.rs"]
mod merge;
#[path = "../support/api/model.rs"]
mod model;
#[path = "../support/api/operand.rs"]
mod operand;
#[path = "../support/api/views.rs"]
mod views;
#[allow(unused_imports)]
use attention::*;
#[allow(unused_imports)]
use batch::*;
#[allow(unused_imports)]
use decode::*;
#[allow(unused_imports)]
use key_range::*;
#[allow(unused_imports)]
use merge::*;
#[allow(unused_imports)]
use model::*;
#[allow(unused_imports)]
use operand::*;
#[allow(unused_imports)]
use views::*;

use arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use streamattn::{
    merge, Attention, Bias, Error, HeadsMut, HeadsRef, Kernel, Level, Mask, MatMut, MatRef, PagedLayout,
    Scorer,
};

pub(crate) const U: f64 = 1.0 / (1u64 << 24) as f64;
pub(crate) const MAX: u128 = usize::MAX as u128;
pub(crate) const BIG: f64 = 1048576.0; // 2^20, the data bound of the finite tier
pub(crate) const SUB: f64 = 1.401298464324817e-45; // 2^-149, the subnormal spacing

pub(crate) fn gamma(n: usize) -> f64 {
    let nu = n as f64 * U;
    nu / (1.0 - nu)
}

/// Whether a known bug is to be skipped (`STREAMATTN_FUZZ_KNOWN`).
pub(crate) fn known(issue: &str) -> bool {
    static KNOWN: OnceLock<Vec<String>> = OnceLock::new();
    KNOWN
        .get_or_init(|| {
            std::env::var("STREAMATTN_FUZZ_KNOWN")
                .unwrap_or_default()
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .iter()
        .any(|k| k == issue || k == "all")
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    for _ in 0..4 {
        if u.is_empty() || one(&mut u).is_err() {
            break;
        }
    }
});

pub(crate) fn one(u: &mut Unstructured) -> Result<()> {
    match u.int_in_range(0u8..=11)? {
        0..=4 => attention(u),
        5 | 6 => views(u),
        7 | 8 => merge_op(u),
        9 | 10 => batch_op(u),
        _ => key_range(u),
    }
}
