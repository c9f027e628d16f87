//! Property tests (quickcheck): invariances that hold for every input, checked
//! on random problems for the scalar path and the tiled kernel at every level.
//!
//! a. permuting keys with their values (and bias columns) changes nothing;
//! b. a constant added to every score through the bias changes no output and
//!    shifts the log-sum-exp by exactly that constant;
//! c. each output element lies in the hull of the value column over the keys
//!    the row sees (and a row that sees none is exactly 0);
//! d. attention over a key range split in two, merged with
//!    [`streamattn::merge`], equals attention over the whole range;
//! e. the bottom-right causal mask leaves the last query row unmasked.
//!
//! No tolerance here is a free constant: every bound is the per-element f64
//! reference tolerance of `tests/common` (`Case::reference()`, derived in that
//! module's docs), combined by the triangle inequality, plus, for the merge,
//! the rounding of the merge itself derived in `tests/common` (`merge_bound`)
//! from the same `U`, `γ` and `E_EXP`.
//!
//! Shapes come from small ranges, data from a seed (`common::Rng`); every
//! failure message prints the generated parameters (seed included) and the
//! choices derived from them, so a failure can be replayed.

// Test and example code is held to clippy's default lints (Cargo.toml).
#![allow(clippy::pedantic)]

mod common;

use common::{merge_bound, Case, Layout, Path, Reference, Rng, Strided, ADDITIVE};
use core::ops::Range;
use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};
use streamattn::{merge, Attention, Bias, Error, HeadsMut, HeadsRef, Mask, MatMut, MatRef, Scorer};

/// Random cases per property, each run by the scalar path and at every
/// level; `STREAMATTN_QC_CASES` overrides (CI under qemu uses fewer).
fn tests() -> u64 {
    std::env::var("STREAMATTN_QC_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(1000)
}

/// The scalar path and the tiled kernel at every level.
static KERNELS: std::sync::LazyLock<Vec<Path>> = std::sync::LazyLock::new(common::paths);

/// `(heads, kv_heads)`: multi-head, grouped-query and multi-query groupings.
const GROUPS: [(usize, usize); 5] = [(1, 1), (2, 1), (4, 2), (3, 3), (4, 1)];

/// Every scorer, with default and non-default parameters (including the
/// `p = 2`, `p = 1` and general-`powf` paths of `NegLogDist`, and `Additive`
/// with random `w` of the case's width).
const SCORERS: [Scorer; 10] = [
    Scorer::dot(),
    Scorer::neg_sq_dist(),
    Scorer::neg_log_dist(),
    Scorer::Dot { scale: Some(0.7) },
    Scorer::NegSqDist { scale: Some(0.3) },
    Scorer::NegLogDist { eps: 0.0, p: 2.0 },
    Scorer::NegLogDist { eps: 1e-2, p: 1.0 },
    Scorer::NegLogDist { eps: 1e-3, p: 3.0 },
    Scorer::NegLogDist { eps: 0.5, p: 0.5 },
    ADDITIVE,
];

const LAYOUTS: [Layout; 4] = [Layout::HeadsMajor, Layout::SeqMajor, Layout::Padded(1), Layout::Padded(3)];

/// The generated part of a case: shape, scorer, layout and a data seed.
/// Everything else a property needs (mask, bias, split point, ...) is drawn
/// from `seed` and printed in the failure message.
#[derive(Clone, Debug)]
struct Params {
    seed: u64,
    heads: usize,
    kv_heads: usize,
    n_q: usize,
    n_kv: usize,
    d: usize,
    dv: usize,
    scorer: Scorer<'static>,
    layout: Layout,
    /// Queries scaled by 4 (exactly): sharper softmax, larger logits.
    sharp: bool,
    /// For the distance scorers, `2^offset` added to every query and key
    /// coordinate (signs per coordinate from the seed): a cluster at up to
    /// 1000 times its spread from the origin. 0: none.
    offset: i32,
}

fn in_range(g: &mut Gen, lo: usize, hi: usize) -> usize {
    lo + u32::arbitrary(g) as usize % (hi - lo + 1)
}

impl Arbitrary for Params {
    fn arbitrary(g: &mut Gen) -> Self {
        let &(heads, kv_heads) = g.choose(&GROUPS).unwrap();
        Params {
            seed: u64::arbitrary(g),
            heads,
            kv_heads,
            n_q: in_range(g, 1, 12),
            n_kv: in_range(g, 1, 80),
            d: in_range(g, 1, 40),
            dv: in_range(g, 1, 20),
            scorer: *g.choose(&SCORERS).unwrap(),
            layout: *g.choose(&LAYOUTS).unwrap(),
            sharp: bool::arbitrary(g),
            offset: *g.choose(&[0, 0, 1, 4, 7, 10]).unwrap(),
        }
    }

    /// Smaller shapes first, then simpler heads and layout. The data changes
    /// with the shape (it is drawn from the seed), which is fine: the
    /// properties hold for every input.
    fn shrink(&self) -> Box<dyn Iterator<Item = Self>> {
        let p = self.clone();
        let mut out = Vec::new();
        let mut push = |f: &dyn Fn(&mut Params)| {
            let mut q = p.clone();
            f(&mut q);
            out.push(q);
        };
        if p.n_kv > 1 {
            push(&|q| q.n_kv /= 2);
            push(&|q| q.n_kv -= 1);
        }
        if p.n_q > 1 {
            push(&|q| q.n_q /= 2);
            push(&|q| q.n_q -= 1);
        }
        if p.d > 1 {
            push(&|q| q.d /= 2);
        }
        if p.dv > 1 {
            push(&|q| q.dv /= 2);
        }
        if p.heads > 1 {
            push(&|q| (q.heads, q.kv_heads) = (1, 1));
        }
        if p.layout != Layout::HeadsMajor {
            push(&|q| q.layout = Layout::HeadsMajor);
        }
        if p.sharp {
            push(&|q| q.sharp = false);
        }
        if p.offset != 0 {
            push(&|q| q.offset = 0);
        }
        Box::new(out.into_iter())
    }
}

impl Params {
    /// The base case: random data, no mask, no bias.
    fn case(&self) -> Case {
        let mut c = Case::random(
            self.seed,
            self.heads,
            self.kv_heads,
            self.n_q,
            self.n_kv,
            self.d,
            self.dv,
            self.scorer,
        )
        .with_layout(self.layout);
        if self.sharp {
            c.q.iter_mut().for_each(|x| *x *= 4.0);
        }
        if self.offset != 0 && matches!(self.scorer, Scorer::NegSqDist { .. } | Scorer::NegLogDist { .. }) {
            let mut r = self.rng(0x0ff5e7);
            let o: Vec<f32> = (0..self.d)
                .map(|_| if r.below(2) == 0 { 1.0 } else { -1.0 } * (self.offset as f32).exp2())
                .collect();
            let d = self.d;
            for (t, x) in c.q.iter_mut().chain(c.k.iter_mut()).enumerate() {
                *x += o[t % d];
            }
        }
        c
    }

    /// A generator for the property's own choices, distinct per property.
    fn rng(&self, salt: u64) -> Rng {
        Rng::new(self.seed ^ salt.wrapping_mul(0xA076_1D64_78BD_642F))
    }
}

/// Turns a property's `Err` into a quickcheck failure that names the
/// parameters.
fn verdict(p: &Params, r: Result<(), String>) -> TestResult {
    match r {
        Ok(()) => TestResult::passed(),
        Err(msg) => TestResult::error(format!("{p:?}\n{msg}")),
    }
}

fn random_mask(r: &mut Rng, n_q: usize, n_kv: usize) -> Mask {
    let wide = |r: &mut Rng| if r.below(8) == 0 { usize::MAX } else { r.below(n_kv + 2) };
    match r.below(4) {
        0 => Mask::None,
        1 => Mask::Causal { offset: r.below(n_kv + 1) },
        2 => Mask::causal_bottom_right(n_q, n_kv),
        _ => Mask::Window { offset: r.below(n_kv + 1), left: wide(r), right: wide(r) },
    }
}

fn random_key_len(r: &mut Rng, n_kv: usize) -> Option<usize> {
    if r.below(3) == 0 {
        None
    } else {
        Some(r.below(n_kv + 1))
    }
}

/// Gives `case` a random bias (none, per head, or shared by every head) with
/// entries from `entry`.
fn random_bias(r: &mut Rng, case: &mut Case, mut entry: impl FnMut(&mut Rng) -> f32) {
    let mode = r.below(3);
    if mode == 0 {
        return;
    }
    let shared = mode == 2;
    let heads = if shared { 1 } else { case.heads };
    case.bias = Some((0..heads * case.n_q * case.n_kv).map(|_| entry(r)).collect());
    case.bias_shared = shared;
}

/// Sometimes (one case in three) makes key `j` of every KV head a copy of
/// query row `i` of the first query head of its group, exactly or perturbed
/// by `amp · [-1, 1)` per component (the first by `amp`, or by one ulp
/// where that rounds away, so that a near match is never exact): exact and
/// near ties are where distance
/// scorers lose accuracy (cancellation) and, for `NegLogDist` with `eps = 0`,
/// where an exact copy gives an infinite logit (weights 0 or 1). `exact_ok`
/// is false where an infinite logit could meet a −∞ bias (NaN).
fn plant(r: &mut Rng, case: &mut Case, exact_ok: bool) -> Option<(usize, usize, f32)> {
    if r.below(3) != 0 {
        return None;
    }
    // 0 (exact), 2⁻⁸, 2⁻¹², 2⁻¹⁶, 2⁻²⁰.
    const AMPS: [f32; 5] = [0.0, 1.0 / 256.0, 1.0 / 4096.0, 1.0 / 65536.0, 1.0 / 1048576.0];
    let amps = if exact_ok { &AMPS[..] } else { &AMPS[1..] };
    let (i, j, amp) = (r.below(case.n_q), r.below(case.n_kv), amps[r.below(amps.len())]);
    for hk in 0..case.kv_heads {
        let q = case.qrow(hk * case.group(), i).to_vec();
        let k = &mut case.k[(hk * case.n_kv + j) * case.d..][..case.d];
        for (kc, &qc) in k.iter_mut().zip(&q) {
            *kc = qc + amp * r.sym();
        }
        // A near match must not round to an exact one (`qc + amp·s == qc`
        // where `|qc|` is large or `s` small): the first column then
        // differs by `amp` or, where that rounds away, by one ulp, which is
        // larger. `‖q − k‖² ≥ (amp/2)²` is then a normal f32.
        if amp > 0.0 {
            let up = q[0] + amp;
            k[0] = if up != q[0] { up } else { f32::from_bits(q[0].to_bits() + 1) };
        }
    }
    Some((i, j, amp))
}

/// The documented visibility rule (the table of `Mask`), in wide arithmetic,
/// independent of `Mask::key_range`.
fn sees(mask: Mask, i: usize, j: usize, key_len: usize) -> bool {
    let (i, j) = (i as i128, j as i128);
    if j >= key_len as i128 {
        return false;
    }
    match mask {
        Mask::None => true,
        Mask::Causal { offset } => j <= i + offset as i128,
        Mask::Window { offset, left, right } => {
            let pos = i + offset as i128;
            pos - left as i128 <= j && j <= pos + right as i128
        }
        _ => unimplemented!("a mask this test does not model: {mask:?}"),
    }
}

/// `a` and `b` agree within `bound`; infinities must be equal, NaN never agrees.
fn within(a: f32, b: f64, bound: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        false
    } else if a.is_infinite() || b.is_infinite() {
        a as f64 == b
    } else {
        (a as f64 - b).abs() <= bound
    }
}

/// Compares two crate outputs (dense `[h][i][c]`, rows `h * n_q + i`) on
/// `rows`; `bound` is indexed like the outputs.
fn cmp_out(
    what: &str,
    dv: usize,
    rows: Range<usize>,
    a: &[f32],
    b: &[f32],
    bound: impl Fn(usize) -> f64,
) -> Result<(), String> {
    for idx in rows.start * dv..rows.end * dv {
        let (x, y, t) = (a[idx], b[idx], bound(idx));
        if !within(x, y as f64, t) {
            return Err(format!(
                "{what}: out row {} (h*n_q+i) col {}: {x:e} vs {y:e}, |diff| {:e} > bound {t:e}",
                idx / dv,
                idx % dv,
                (x as f64 - y as f64).abs()
            ));
        }
    }
    Ok(())
}

/// Compares two log-sum-exp vectors on `rows`, `b` shifted by `shift`.
fn cmp_lse(
    what: &str,
    rows: Range<usize>,
    a: &[f32],
    b: &[f32],
    shift: f64,
    bound: impl Fn(usize) -> f64,
) -> Result<(), String> {
    for idx in rows {
        let (x, y, t) = (a[idx], b[idx] as f64 + shift, bound(idx));
        if !within(x, y, t) {
            return Err(format!(
                "{what}: lse row {idx} (h*n_q+i): {x:e} vs {y:e}, |diff| {:e} > bound {t:e}",
                (x as f64 - y).abs()
            ));
        }
    }
    Ok(())
}

/// Like `Case::run`, but with an `Attention` built by the caller (for biases
/// with strides `Case` does not produce). Same packing, same padding check.
fn run_with(case: &Case, att: Attention<'_>, kernel: Path) -> (Vec<f32>, Vec<f32>) {
    let q = Strided::pack(&case.q, case.heads, case.n_q, case.d, case.layout);
    let k = Strided::pack(&case.k, case.kv_heads, case.n_kv, case.d, case.layout);
    let v = Strided::pack(&case.v, case.kv_heads, case.n_kv, case.dv, case.layout);
    let nan = vec![f32::NAN; case.heads * case.n_q * case.dv];
    let mut o = Strided::pack(&nan, case.heads, case.n_q, case.dv, case.layout);
    let mut lse = vec![f32::NAN; case.heads * case.n_q];
    kernel
        .set(att)
        .run_heads(q.view(), k.view(), v.view(), o.view_mut(), Some(&mut lse))
        .expect("valid case rejected");
    o.assert_padding_untouched();
    (o.unpack(), lse)
}

// ---------------------------------------------------------------------------
// a. Permutation invariance.

/// Permuting the keys together with their values and bias columns permutes
/// the terms of both softmax sums and nothing else. Masks are positional, so
/// the mask is `None` and the key length (when given) is `n_kv`.
///
/// Tolerance: the reference of the permuted case is the reference of the
/// original (the same sums in another order; its tolerance is built from
/// maxima and counts over the same set of keys, so it is the same). Both
/// crate results are within that tolerance of it, hence within twice it of
/// each other.
fn prop_permutation(p: Params) -> TestResult {
    let mut r = p.rng(1);
    let mut case = p.case();
    let planted = plant(&mut r, &mut case, true);
    random_bias(&mut r, &mut case, |r| 2.0 * r.sym());
    if r.below(2) == 0 {
        case.key_len = Some(case.n_kv);
    }
    let (n_kv, d, dv) = (case.n_kv, case.d, case.dv);
    // Fisher–Yates: new key position `j` holds old key `perm[j]`.
    let mut perm: Vec<usize> = (0..n_kv).collect();
    for j in (1..n_kv).rev() {
        perm.swap(j, r.below(j + 1));
    }
    let mut pc = case.clone();
    pc.layout = LAYOUTS[r.below(LAYOUTS.len())];
    for h in 0..case.kv_heads {
        for (j, &old) in perm.iter().enumerate() {
            pc.k[(h * n_kv + j) * d..][..d].copy_from_slice(case.krow(h, old));
            pc.v[(h * n_kv + j) * dv..][..dv].copy_from_slice(case.vrow(h, old));
        }
    }
    if let (Some(b), Some(pb)) = (&case.bias, &mut pc.bias) {
        for row in 0..b.len() / n_kv {
            for (j, &old) in perm.iter().enumerate() {
                pb[row * n_kv + j] = b[row * n_kv + old];
            }
        }
    }
    let rf = case.reference();
    let ctx = format!(
        "planted (i, j, amp) = {planted:?}, perm = {perm:?}, bias = {}, key_len = {:?}, permuted layout = {:?}",
        bias_desc(&case),
        case.key_len,
        pc.layout
    );
    let res = KERNELS.iter().try_for_each(|&kernel| {
        let (o1, l1) = case.run(kernel);
        let (o2, l2) = pc.run(kernel);
        let what = format!("{kernel:?}, {ctx}: permuted vs original");
        let rows = 0..case.heads * case.n_q;
        cmp_out(&what, dv, rows.clone(), &o2, &o1, |i| 2.0 * rf.tol[i])?;
        cmp_lse(&what, rows, &l2, &l1, 0.0, |i| 2.0 * rf.lse_tol[i])
    });
    verdict(&p, res)
}

fn bias_desc(case: &Case) -> &'static str {
    match (&case.bias, case.bias_shared) {
        (None, _) => "none",
        (Some(_), false) => "per head",
        (Some(_), true) => "shared",
    }
}

#[test]
fn permutation_invariance() {
    QuickCheck::new().tests(tests()).quickcheck(prop_permutation as fn(Params) -> TestResult);
}

// ---------------------------------------------------------------------------
// b. Shift invariance through the bias.

/// Adding a constant `c` to every score (as a bias) multiplies every
/// softmax weight's numerator and denominator by `e^c`: the output is
/// unchanged and the log-sum-exp moves by exactly `c`. Any mask and key
/// length.
///
/// The base bias (if any) and `c` are multiples of 2⁻¹⁰ with |b| <= 4 and
/// |c| <= 8, 64 or 256 (large shifts push logits past the f32 range of
/// `e^s`, ±88.7, which a kernel working with `e^s` rather than `s` cannot
/// represent), so `|b + c| < 2⁹` and `b + c` is exact in f32 (19 significant
/// bits): the shifted case is exactly "the same scores plus c". Without a
/// base bias the shift is a single row of `c` with row and head stride 0.
///
/// Tolerance: the shifted case has its own reference (same output, lse + c,
/// in exact arithmetic) whose tolerance accounts for the larger logits; each
/// crate result is within its own reference tolerance, so the two differ by
/// at most the sum of the two tolerances.
fn prop_bias_shift(p: Params) -> TestResult {
    let mut r = p.rng(2);
    let mut base = p.case();
    base.mask = random_mask(&mut r, base.n_q, base.n_kv);
    base.key_len = random_key_len(&mut r, base.n_kv);
    let with_neg_inf = r.below(4) == 0;
    let planted = plant(&mut r, &mut base, !with_neg_inf);
    random_bias(&mut r, &mut base, |r| {
        if with_neg_inf && r.below(5) == 0 {
            f32::NEG_INFINITY
        } else {
            (r.below(8193) as f32 - 4096.0) / 1024.0
        }
    });
    let span = [8, 64, 256][r.below(3)];
    let c = (r.below(2 * span * 1024 + 1) as f32 - (span * 1024) as f32) / 1024.0;
    let mut shifted = base.clone();
    let row_of_c = vec![c; base.n_kv];
    match &base.bias {
        None => {
            // For the reference only: a dense bias of c everywhere.
            shifted.bias = Some(vec![c; base.heads * base.n_q * base.n_kv]);
            shifted.bias_shared = false;
        }
        Some(b) => shifted.bias = Some(b.iter().map(|&x| x + c).collect()),
    }
    let (rb, rs) = (base.reference(), shifted.reference());
    let ctx = format!(
        "c = {c}, mask = {:?}, key_len = {:?}, base bias = {} (-inf entries: {with_neg_inf}), \
         planted (i, j, amp) = {planted:?}",
        base.mask,
        base.key_len,
        bias_desc(&base)
    );
    let res = KERNELS.iter().try_for_each(|&kernel| {
        let (ob, lb) = base.run(kernel);
        let (os, ls) = if base.bias.is_none() {
            let bias = Bias::new(&row_of_c, base.n_q, base.n_kv, 0, 0).unwrap();
            run_with(&base, base.attention().bias(bias), kernel)
        } else {
            shifted.run(kernel)
        };
        let what = format!("{kernel:?}, {ctx}: shifted vs base");
        let rows = 0..base.heads * base.n_q;
        cmp_out(&what, base.dv, rows.clone(), &os, &ob, |i| rb.tol[i] + rs.tol[i])?;
        cmp_lse(&what, rows, &ls, &lb, c as f64, |i| rb.lse_tol[i] + rs.lse_tol[i])
    });
    verdict(&p, res)
}

#[test]
fn bias_shift_invariance() {
    QuickCheck::new().tests(tests()).quickcheck(prop_bias_shift as fn(Params) -> TestResult);
}

// ---------------------------------------------------------------------------
// c. Convex combination.

/// Each output element is a convex combination of the value column over the
/// keys the row sees with a non-zero weight (visible under the mask and key
/// length, and with a bias other than −∞): it lies in [min, max] of those
/// values. A row that sees no such key is exactly 0 with lse −∞.
///
/// Visibility is computed from the documented table of `Mask`, and first
/// checked to be exactly the range `Mask::key_range` returns (the reference
/// relies on that function).
///
/// Cases with a planted exact or near match (see `plant`) get no −∞ bias
/// (∞ − ∞ would be NaN).
///
/// Tolerance: the exact output lies in [min, max]; the crate's is within the
/// reference tolerance of the exact one, so within [min − tol, max + tol].
fn prop_convex(p: Params) -> TestResult {
    let mut r = p.rng(3);
    let mut case = p.case();
    case.mask = random_mask(&mut r, case.n_q, case.n_kv);
    case.key_len = random_key_len(&mut r, case.n_kv);
    let (n_q, n_kv, dv) = (case.n_q, case.n_kv, case.dv);
    let planted = plant(&mut r, &mut case, true);
    let neg_inf_one_in = if planted.is_none() && r.below(2) == 0 { 4 } else { 0 };
    random_bias(&mut r, &mut case, |r| {
        if neg_inf_one_in > 0 && r.below(neg_inf_one_in) == 0 {
            f32::NEG_INFINITY
        } else {
            3.0 * r.sym()
        }
    });
    let ctx = format!(
        "mask = {:?}, key_len = {:?}, planted (i, j, amp) = {planted:?}, bias = {} (-inf one in {neg_inf_one_in})",
        case.mask,
        case.key_len,
        bias_desc(&case)
    );
    let key_len = case.key_len();
    for i in 0..n_q {
        let documented: Vec<usize> = (0..n_kv).filter(|&j| sees(case.mask, i, j, key_len)).collect();
        let range: Vec<usize> = case.mask.key_range(i, key_len).collect();
        if documented != range {
            return verdict(
                &p,
                Err(format!("{ctx}: row {i}: key_range gives {range:?}, the documented rule {documented:?}")),
            );
        }
    }
    let rf = case.reference();
    let res = KERNELS.iter().try_for_each(|&kernel| {
        let (out, lse) = case.run(kernel);
        for h in 0..case.heads {
            let hk = h / case.group();
            for i in 0..n_q {
                let row = h * n_q + i;
                let seen: Vec<usize> = (0..n_kv)
                    .filter(|&j| sees(case.mask, i, j, key_len) && case.bias_at(h, i, j) != f32::NEG_INFINITY)
                    .collect();
                if seen.is_empty() {
                    let o = &out[row * dv..][..dv];
                    if o.iter().any(|&x| x != 0.0) || lse[row] != f32::NEG_INFINITY {
                        return Err(format!(
                            "{kernel:?}, {ctx}: head {h} row {i} sees no key but out = {o:?}, lse = {}",
                            lse[row]
                        ));
                    }
                    continue;
                }
                for c in 0..dv {
                    let col = seen.iter().map(|&j| case.vrow(hk, j)[c] as f64);
                    let lo = col.clone().fold(f64::INFINITY, f64::min);
                    let hi = col.fold(f64::NEG_INFINITY, f64::max);
                    let (x, t) = (out[row * dv + c] as f64, rf.tol[row * dv + c]);
                    if !(lo - t <= x && x <= hi + t) {
                        return Err(format!(
                            "{kernel:?}, {ctx}: head {h} row {i} col {c}: out {x:e} outside \
                             [{lo:e}, {hi:e}] ± tol {t:e} over keys {seen:?}"
                        ));
                    }
                }
            }
        }
        Ok(())
    });
    verdict(&p, res)
}

#[test]
fn convex_combination() {
    QuickCheck::new().tests(tests()).quickcheck(prop_convex as fn(Params) -> TestResult);
}

// ---------------------------------------------------------------------------
// d. Split-KV: merge of a split equals the whole.

/// `case` restricted to keys `lo..hi` (same queries, same bias rows).
fn sub_case(case: &Case, lo: usize, hi: usize) -> Case {
    let (n_kv, n) = (case.n_kv, hi - lo);
    let mut s = case.clone();
    s.n_kv = n;
    s.k = (0..case.kv_heads)
        .flat_map(|h| case.k[(h * n_kv + lo) * case.d..(h * n_kv + hi) * case.d].to_vec())
        .collect();
    s.v = (0..case.kv_heads)
        .flat_map(|h| case.v[(h * n_kv + lo) * case.dv..(h * n_kv + hi) * case.dv].to_vec())
        .collect();
    s.bias = case.bias.as_ref().map(|b| b.chunks(n_kv).flat_map(|row| row[lo..hi].to_vec()).collect());
    s
}

/// Runs the crate on keys `lo..hi` of `case`, reading the packed buffers in
/// place (sub-views at an offset of `lo` rows, the way a split-KV caller
/// reads a cache) with the matching columns of the bias. One head goes
/// through `run_lse` when `single`, else `run_heads`. Dense `[h][i][c]`
/// output and `[h][i]` lse.
#[allow(clippy::too_many_arguments)]
fn run_part(
    case: &Case,
    q: &Strided,
    k: &Strided,
    v: &Strided,
    lo: usize,
    hi: usize,
    kernel: Path,
    single: bool,
) -> Result<(Vec<f32>, Vec<f32>), Error> {
    let n = hi - lo;
    let kv = HeadsRef::new(&k.data[lo * k.row_stride..], k.heads, n, k.cols, k.head_stride, k.row_stride)?;
    let vv = HeadsRef::new(&v.data[lo * v.row_stride..], v.heads, n, v.cols, v.head_stride, v.row_stride)?;
    let mut att = kernel.set(Attention::new(case.scorer));
    if let Some(b) = &case.bias {
        let hs = if case.bias_shared { 0 } else { case.n_q * case.n_kv };
        att = att.bias(Bias::new(&b[lo..], case.n_q, n, hs, case.n_kv)?);
    }
    let mut out = vec![f32::NAN; case.heads * case.n_q * case.dv];
    let mut lse = vec![f32::NAN; case.heads * case.n_q];
    if single {
        let o = MatMut::dense(&mut out, case.n_q, case.dv)?;
        att.run_lse(q.view().head(0), kv.head(0), vv.head(0), o, &mut lse)?;
    } else {
        let o = HeadsMut::heads_major(&mut out, case.heads, case.n_q, case.dv)?;
        att.run_heads(q.view(), kv, vv, o, Some(&mut lse))?;
    }
    Ok((out, lse))
}

/// Split the keys at a random point `t` (either part may be empty), run the
/// crate on `0..t` and `t..n_kv`, merge, and compare to the unsplit run.
/// Mask `None` (a split of a masked problem needs per-part masks).
///
/// Tolerance: the merged result is within `merge_bound` (`tests/common`) of the exact
/// result, the unsplit one within the whole problem's reference tolerance;
/// the bound between them is the sum. (The exact result is computed twice in
/// f64, from the whole reference and from the partial ones; the two differ
/// by f64 rounding, 2²⁹ times below the f32 terms of either bound.)
fn prop_split_merge(p: Params) -> TestResult {
    let mut r = p.rng(4);
    let mut case = p.case();
    let planted = plant(&mut r, &mut case, true);
    random_bias(&mut r, &mut case, |r| 2.0 * r.sym());
    let (heads, n_q, n_kv, dv) = (case.heads, case.n_q, case.n_kv, case.dv);
    let t = match r.below(6) {
        0 => 0,
        1 => n_kv,
        _ => r.below(n_kv + 1),
    };
    let single = case.heads == 1 && r.below(2) == 0;
    let swap = r.below(2) == 0;
    let ctx = format!(
        "split at t = {t}, bias = {}, single-head run_lse = {single}, merge b into a = {}, \
         planted (i, j, amp) = {planted:?}",
        bias_desc(&case),
        !swap
    );
    let (part_a, part_b) = (sub_case(&case, 0, t), sub_case(&case, t, n_kv));
    let (ra, rb, rw) = (part_a.reference(), part_b.reference(), case.reference());
    let qp = Strided::pack(&case.q, heads, n_q, case.d, case.layout);
    let kp = Strided::pack(&case.k, case.kv_heads, n_kv, case.d, case.layout);
    let vp = Strided::pack(&case.v, case.kv_heads, n_kv, dv, case.layout);
    let res = KERNELS.iter().try_for_each(|&kernel| {
        let what = format!("{kernel:?}, {ctx}");
        let run = |lo, hi| {
            run_part(&case, &qp, &kp, &vp, lo, hi, kernel, single)
                .map_err(|e| format!("{what}: keys {lo}..{hi} rejected: {e:?}"))
        };
        let (oa, la) = run(0, t)?;
        let (ob, lb) = run(t, n_kv)?;
        // The merge bound assumes each part is within its reference tolerance.
        ra.check(&format!("{what}: part 0..t vs its reference"), dv, &oa, &la)?;
        rb.check(&format!("{what}: part t..n_kv vs its reference"), dv, &ob, &lb)?;
        let (mut mo, mut ml) = if swap { (ob.clone(), lb.clone()) } else { (oa.clone(), la.clone()) };
        let (other_o, other_l) = if swap { (&oa, &la) } else { (&ob, &lb) };
        merge(
            MatMut::dense(&mut mo, heads * n_q, dv).unwrap(),
            &mut ml,
            MatRef::dense(other_o, heads * n_q, dv).unwrap(),
            other_l,
        )
        .map_err(|e| format!("{what}: merge rejected: {e:?}"))?;
        let (wo, wl) = case.run(kernel);
        let mut out_bound = vec![0.0; heads * n_q * dv];
        let mut lse_bound = vec![0.0; heads * n_q];
        for row in 0..heads * n_q {
            let (ob_row, lb_row) = merge_bound(&ra, &rb, (la[row] as f64 - lb[row] as f64).abs(), row, dv);
            for c in 0..dv {
                out_bound[row * dv + c] = ob_row[c] + rw.tol[row * dv + c];
            }
            lse_bound[row] = lb_row + rw.lse_tol[row];
        }
        let what = format!("{what}: merged vs whole");
        cmp_out(&what, dv, 0..heads * n_q, &mo, &wo, |i| out_bound[i])?;
        cmp_lse(&what, 0..heads * n_q, &ml, &wl, 0.0, |i| lse_bound[i])?;
        Ok(())
    });
    verdict(&p, res)
}

trait CheckRef {
    fn check(&self, what: &str, dv: usize, out: &[f32], lse: &[f32]) -> Result<(), String>;
}

impl CheckRef for Reference {
    /// `Reference::assert_close` with factor 1, as a `Result`.
    fn check(&self, what: &str, dv: usize, out: &[f32], lse: &[f32]) -> Result<(), String> {
        for (idx, ((&x, &r), &t)) in out.iter().zip(&self.out).zip(&self.tol).enumerate() {
            if !within(x, r, t) {
                return Err(format!(
                    "{what}: out row {} col {}: {x:e}, reference {r:e}, tolerance {t:e}",
                    idx / dv,
                    idx % dv
                ));
            }
        }
        for (idx, ((&x, &r), &t)) in lse.iter().zip(&self.lse).zip(&self.lse_tol).enumerate() {
            if !within(x, r, t) {
                return Err(format!("{what}: lse row {idx}: {x:e}, reference {r:e}, tolerance {t:e}"));
            }
        }
        Ok(())
    }
}

#[test]
fn split_merge_equals_whole() {
    QuickCheck::new().tests(tests()).quickcheck(prop_split_merge as fn(Params) -> TestResult);
}

// ---------------------------------------------------------------------------
// e. Bottom-right causal: the last row sees every key.

/// With `offset = n_kv − n_q` (`Mask::causal_bottom_right`; 0 when
/// `n_q > n_kv`), the last query row sees every key, so it equals the row
/// without a mask. The same holds for a window reaching back over every key.
/// With or without a bias.
///
/// Tolerance: for the last row both masks give the key range `0..n_kv`
/// (checked), so the masked and unmasked references of that row are the same
/// computation; both crate rows are within its tolerance, hence within twice
/// it of each other.
fn prop_bottom_right(p: Params) -> TestResult {
    let mut r = p.rng(5);
    let mut base = p.case();
    let planted = plant(&mut r, &mut base, true);
    random_bias(&mut r, &mut base, |r| 2.0 * r.sym());
    let (n_q, n_kv, dv) = (base.n_q, base.n_kv, base.dv);
    let causal = Mask::causal_bottom_right(n_q, n_kv);
    let offset = n_kv.saturating_sub(n_q);
    let window = Mask::Window { offset, left: n_q.max(n_kv) + r.below(4), right: r.below(4) };
    let ctx = format!("bias = {}, window = {window:?}, planted (i, j, amp) = {planted:?}", bias_desc(&base));
    if causal != (Mask::Causal { offset }) {
        return verdict(
            &p,
            Err(format!("causal_bottom_right({n_q}, {n_kv}) = {causal:?}, not offset {offset}")),
        );
    }
    for m in [causal, window] {
        if m.key_range(n_q - 1, n_kv) != (0..n_kv) {
            return verdict(&p, Err(format!("{m:?}: last row sees {:?}", m.key_range(n_q - 1, n_kv))));
        }
    }
    let rf = base.reference();
    let last = |h: usize| h * n_q + n_q - 1;
    let res = KERNELS.iter().try_for_each(|&kernel| {
        let (ob, lb) = base.run(kernel);
        for mask in [causal, window] {
            let (om, lm) = base.clone().with_mask(mask).run(kernel);
            let what = format!("{kernel:?}, {ctx}: {mask:?} vs Mask::None, last row");
            for h in 0..base.heads {
                let row = last(h);
                cmp_out(&what, dv, row..row + 1, &om, &ob, |i| 2.0 * rf.tol[i])?;
                cmp_lse(&what, row..row + 1, &lm, &lb, 0.0, |i| 2.0 * rf.lse_tol[i])?;
            }
        }
        Ok(())
    });
    verdict(&p, res)
}

#[test]
fn bottom_right_causal_last_row_is_unmasked() {
    QuickCheck::new().tests(tests()).quickcheck(prop_bottom_right as fn(Params) -> TestResult);
}
