//! Decoding a *valid* attention problem (a `common::Case`) from fuzz input,
//! shared by the `differential` and `split_merge` targets.
//!
//! Everything the f64 reference of `tests/common/mod.rs` and its tolerance
//! assume is kept true by construction (or the input is skipped):
//!
//! - Data are integers times a power of two (`n · 2^e`, `|n| ≤ 1023`,
//!   `e ≥ −24`), so any nonzero `|q_c − k_c|` is at least `2^e_min`: squared
//!   distances never underflow, and a query equal to a key gives distance
//!   exactly 0 in every kernel and in the reference.
//! - Magnitudes stay where every f32 intermediate is finite and normal:
//!   `Dot` logits, and `NegSqDist` logits and the error bound's
//!   `scale · (‖q − c‖ + ‖k − c‖)²` for any centre `c` among the queries, below
//!   `LOGIT_LIMIT` in magnitude (so the
//!   tolerance `e^{2δ} − 1` stays finite), `NegLogDist` powered distances
//!   `d^p` in `[2^-100, 2^100]` (the tiled kernel's exponential flushes below
//!   `e^-87.3` and overflows above `e^88.7`; the reference does neither).
//!   `Additive` scores are bounded by `‖w‖₁`, which is kept between about
//!   `2^-60` (tiny: a nearly uniform softmax) and `2^11` (very sharp); `w`
//!   is on a grid too (`n · 2^e`, `e ≥ −79`), so every product `w_c · tanh`
//!   stays normal.
//! - Bias entries are finite (`|b| ≤ 2^15`) or `−∞` (masking); never `+∞` or NaN.
//! - Exceptions, applied after those guards: values scaled up to about
//!   `2^126` (sums of a few overflow f32; the output must not); for
//!   `NegSqDist`, queries and keys scaled by `2^t` up to about `2^66` with
//!   the scale times `2^-2t` (the same scores exactly, with `‖q‖²` and `‖k‖²`
//!   beyond f32); and one far key: for `NegLogDist` a coordinate of `±2^66`,
//!   whose squared distance overflows f32 in every kernel (the reference
//!   gives it weight 0, as documented), for `NegSqDist` a coordinate of
//!   `±2^100`, or a key at the origin when the data were scaled up (weight
//!   0 in exact arithmetic too; the reference's tolerance leaves out keys
//!   that weigh nothing, see `tests/common`). A `NegSqDist` case with a
//!   squared distance or score within a factor 2 of `f32::MAX` (overflow
//!   decided by rounding) is skipped.
//!
//! K and V are stored as `f32`, `f16` or `bf16`: their data
//! are rounded to those types after everything above (a case whose values
//! leave the f16 range is skipped), and the reference takes the rounded
//! values as the inputs.
//!
//! Special structure the decoder can ask for: for the distance scorers, a
//! cluster far from the origin (one offset, up to `2^10` times the data's
//! grid range, added to every query and key; sums that do not fit f32 round,
//! and the reference takes the rounded inputs as they are); queries equal to keys (exact
//! matches, which give `NegLogDist` with `eps = 0` an infinite logit),
//! repeated keys, near-matches one grid step apart, zero rows, constant
//! tensors, sparse tensors, rows scaled up or down, fully `−∞` bias rows.
//! `Additive` weights can be random, constant, sparse, dominated by one
//! entry, of alternating sign or all zero.
//!
//! A decoded case is an [`Owned`]: `Case::scorer` is a `Scorer<'static>`, so
//! the `Additive` weights are a boxed slice that `Owned` frees when dropped
//! (a leak would trip LeakSanitizer); use it as a `Case` (`Deref`).

use crate::common::{Case, Elem, Layout, Reference, Rng};
use arbitrary::{Result, Unstructured};
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use streamattn::{Mask, Scorer};

/// Upper bound on `|logit|` for `Dot` and `NegSqDist` (see the module docs).
pub const LOGIT_LIMIT: f64 = 1e6;

/// What the calling target allows.
#[derive(Clone, Copy)]
pub struct Opts {
    /// More than one head (grouped-query); else `heads = kv_heads = 1`.
    pub multi_head: bool,
    /// Masks and a key length; else `Mask::None` and no key length.
    pub masks: bool,
    /// `heads · n_q · n_kv · (d + d_v)` at most this (keeps executions fast);
    /// `Additive` counts each of its `d` tangents per pair as 8.
    pub budget: usize,
}

/// A decoded [`Case`] that owns the `Additive` weights its scorer borrows
/// (as `&'static`, which `Case` requires): they are freed on drop, after the
/// scorer is reset. Clones of the case (`Case: Clone`) must not outlive it.
pub struct Owned {
    case: Case,
    w: Option<NonNull<[f32]>>,
}

impl Owned {
    fn new(case: Case, w: Option<Box<[f32]>>) -> Owned {
        Owned { case, w: w.map(|b| NonNull::from(Box::leak(b))) }
    }
}

impl Deref for Owned {
    type Target = Case;
    fn deref(&self) -> &Case {
        &self.case
    }
}

impl DerefMut for Owned {
    fn deref_mut(&mut self) -> &mut Case {
        &mut self.case
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        self.case.scorer = Scorer::dot(); // no reference to the weights remains
        if let Some(p) = self.w.take() {
            // SAFETY: `p` came from `Box::leak` in `Owned::new` and is freed
            // once; the only borrow of it handed out was `self.case.scorer`.
            drop(unsafe { Box::from_raw(p.as_ptr()) });
        }
    }
}

/// Dimensions worth hitting exactly: tile edges (scalar tile 32, tiled 64),
/// lane multiples, register-block multiples (4, 6), the packed-width limit
/// `DC = 256` (wider heads are packed in column chunks).
const DIMS: [usize; 36] = [
    1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 15, 16, 17, 23, 24, 25, 31, 32, 33, 47, 48, 63, 64, 65, 96, 127,
    128, 129, 191, 255, 256, 257, 299, 300,
];

/// A dimension in `lo..=hi`, often one of [`DIMS`], often small.
pub fn dim(u: &mut Unstructured, lo: usize, hi: usize) -> Result<usize> {
    Ok(match u.int_in_range(0u8..=3)? {
        0 => {
            let ok: Vec<usize> = DIMS.iter().copied().filter(|&x| x >= lo && x <= hi).collect();
            if ok.is_empty() {
                lo
            } else {
                *u.choose(&ok)?
            }
        }
        1 | 2 => u.int_in_range(lo..=hi.min(lo + 16))?,
        _ => u.int_in_range(lo..=hi)?,
    })
}

/// True one time in `n` (false on an exhausted input, which reads as zeros:
/// `Unstructured::ratio` would say true there).
pub fn one_in(u: &mut Unstructured, n: u8) -> Result<bool> {
    Ok(u.int_in_range(0..=n - 1)? == n - 1)
}

fn pow2(e: i32) -> f32 {
    (e as f32).exp2()
}

/// How a tensor is filled: grid exponent, integer range, mode.
#[derive(Clone, Copy)]
struct Fill {
    e: i32,
    range: i32,
    mode: u8,
}

fn fill(u: &mut Unstructured, e_lo: i32, e_hi: i32) -> Result<Fill> {
    let e = if u.ratio(2u8, 3u8)? { u.int_in_range(-6i32..=0)? } else { u.int_in_range(e_lo..=e_hi)? };
    let range: i32 = *u.choose(&[15, 1, 3, 127, 1023])?;
    Ok(Fill { e, range, mode: u.int_in_range(0u8..=5)? })
}

/// `n` grid values `k · 2^e`, `|k| ≤ range`. Decoded last, so the
/// from-the-input mode can use whatever bytes remain.
fn tensor(u: &mut Unstructured, rng: &mut Rng, n: usize, f: Fill) -> Result<Vec<f32>> {
    let (range, g) = (f.range, pow2(f.e));
    let rand = |rng: &mut Rng| (rng.below(2 * range as usize + 1) as i32 - range) as f32 * g;
    Ok(match f.mode {
        // Uniform integers from the generator.
        0 | 1 => (0..n).map(|_| rand(rng)).collect(),
        // One constant.
        2 => vec![rand(rng); n],
        // Sparse: mostly zero.
        3 => (0..n).map(|_| if rng.below(8) == 0 { rand(rng) } else { 0.0 }).collect(),
        // Straight from the input bytes while they last.
        4 => {
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                let b = if u.is_empty() { rng.next_u32() as u8 as i8 } else { u.arbitrary::<i8>()? };
                v.push((b as i32).clamp(-range, range) as f32 * g);
            }
            v
        }
        _ => vec![0.0; n],
    })
}

fn scale(u: &mut Unstructured) -> Result<Option<f32>> {
    Ok(match u.int_in_range(0u8..=3)? {
        0 | 1 => None,
        2 => Some(*u.choose(&[1.0, 0.5, 0.125, 2.0, 0.01, 10.0])?),
        _ => Some(pow2(u.int_in_range(-40i32..=20)?) * (1.0 + u.int_in_range(0u8..=15)? as f32 / 16.0) / 4.0),
    })
}

/// A scorer; `Additive` weights come separately from [`additive_w`].
fn scorer(u: &mut Unstructured) -> Result<Scorer<'static>> {
    Ok(match u.int_in_range(0u8..=3)? {
        0 => Scorer::Dot { scale: scale(u)? },
        1 => Scorer::NegSqDist { scale: scale(u)? },
        3 => Scorer::Additive { w: &[] }, // placeholder, weights decoded by `additive_w`
        _ => {
            let eps = match u.int_in_range(0u8..=4)? {
                0 => 0.0,
                1 => 1e-3,
                2 => *u.choose(&[1.0, 0.5, 16.0, 1e-6])?,
                _ => pow2(-u.int_in_range(0i32..=100)?),
            };
            let p = match u.int_in_range(0u8..=5)? {
                0 | 1 => 2.0,
                2 => 1.0,
                // Down to the smallest valid p, whose p/2 rounds to 0.
                3 => *u.choose(&[4.0, 0.5, 3.0, 1.5, 1e-30, f32::from_bits(1)])?,
                _ => u.int_in_range(1u16..=256)? as f32 / 64.0,
            };
            Scorer::NegLogDist { eps, p }
        }
    })
}

/// `Additive` output weights for width `d`: grid values `n · 2^e`, with
/// `‖w‖₁` about `2^l` for `l` from −60 (tiny) to 10 (`‖w‖₁` up to ~2·10³:
/// a very sharp softmax). The discrete choices come from the input, the
/// values from the generator.
fn additive_w(u: &mut Unstructured, rng: &mut Rng, d: usize) -> Result<Vec<f32>> {
    let mode = u.int_in_range(0u8..=7)?;
    let range: i32 = *u.choose(&[1, 3, 15, 127, 1023])?;
    let l = match u.int_in_range(0u8..=6)? {
        0 => 0,
        1 => u.int_in_range(-8i32..=4)?,
        2 | 3 => u.int_in_range(5i32..=10)?,
        4 => u.int_in_range(-60i32..=-9)?,
        5 => 10,
        _ => u.int_in_range(-3i32..=7)?,
    };
    let mut n: Vec<i32> = Vec::with_capacity(d);
    let int = |rng: &mut Rng| rng.below(2 * range as usize + 1) as i32 - range;
    match mode {
        // Uniform integers.
        0..=2 => n.extend((0..d).map(|_| int(rng))),
        // One constant.
        3 => n.resize(d, int(rng)),
        // Sparse: mostly zero.
        4 => n.extend((0..d).map(|_| if rng.below(6) == 0 { int(rng) } else { 0 })),
        // One entry dominates the others.
        5 => {
            n.extend((0..d).map(|_| int(rng).signum()));
            let c = rng.below(d);
            n[c] = if rng.below(2) == 0 { 1023 } else { -1023 };
        }
        // Alternating signs, one magnitude.
        6 => {
            let m = int(rng).abs().max(1);
            n.extend((0..d as i32).map(|c| if c % 2 == 0 { m } else { -m }));
        }
        // All zero: every score is exactly 0.
        _ => n.resize(d, 0),
    }
    let l1: i64 = n.iter().map(|&x| x.abs() as i64).sum();
    // 2^e · l1 in [2^l, 2^{l+1}).
    let e = if l1 == 0 { 0 } else { l - (63 - l1.leading_zeros() as i32) };
    Ok(n.iter().map(|&x| x as f32 * pow2(e)).collect())
}

fn mask(u: &mut Unstructured, n_q: usize, n_kv: usize) -> Result<Mask> {
    let side = |u: &mut Unstructured| -> Result<usize> {
        Ok(match u.int_in_range(0u8..=5)? {
            0 => 0,
            1 => usize::MAX,
            2 => n_kv,
            _ => u.int_in_range(0..=n_kv + 2)?,
        })
    };
    Ok(match u.int_in_range(0u8..=3)? {
        0 => Mask::None,
        1 => {
            if u.ratio(1u8, 2u8)? {
                Mask::causal_bottom_right(n_q, n_kv)
            } else {
                Mask::Causal { offset: u.int_in_range(0..=n_kv)? }
            }
        }
        _ => Mask::Window { offset: u.int_in_range(0..=n_kv)?, left: side(u)?, right: side(u)? },
    })
}

fn max_abs(x: &[f32]) -> f64 {
    x.iter().fold(0.0f64, |m, &v| m.max((v as f64).abs()))
}

/// Decodes a valid case; `None` when the decoded numbers fall outside the
/// range the reference's tolerance covers (the input is then skipped).
pub fn case(u: &mut Unstructured, opts: Opts) -> Result<Option<Owned>> {
    let seed: u64 = u.arbitrary()?;
    let mut rng = Rng::new(seed);
    let (kv_heads, group) =
        if opts.multi_head { (u.int_in_range(1..=2)?, u.int_in_range(1..=3)?) } else { (1, 1) };
    let heads = kv_heads * group;
    let mut n_q = dim(u, 0, 64)?;
    if one_in(u, 16)? {
        n_q = 0;
    }
    let n_kv = if one_in(u, 16)? { 0 } else { dim(u, 1, 300)? };
    let d = dim(u, 1, 300)?;
    let dv = dim(u, 1, 64)?;
    let mut scorer = scorer(u)?;
    let w = match scorer {
        Scorer::Additive { .. } => Some(additive_w(u, &mut rng, d)?.into_boxed_slice()),
        _ => None,
    };
    let per_pair = if w.is_some() { 8 * d + dv } else { d + dv };
    let work = |n_q: usize| heads * n_q * n_kv * per_pair;
    if work(n_q) > opts.budget {
        n_q = opts.budget / work(1).max(1);
    }
    let (mask, key_len) = if opts.masks {
        let m = mask(u, n_q, n_kv)?;
        let kl = if one_in(u, 3)? { Some(u.int_in_range(0..=n_kv)?) } else { None };
        (m, kl)
    } else {
        (Mask::None, None)
    };
    let layout = match u.int_in_range(0u8..=2)? {
        0 => Layout::HeadsMajor,
        1 => Layout::SeqMajor,
        _ => Layout::Padded(u.int_in_range(1..=5)?),
    };
    // Every discrete choice first (an exhausted input reads as zeros, which
    // must not always pick the same rare option), the bulk data last.
    let bias_mode = if one_in(u, 3)? { Some((u.ratio(1u8, 2u8)?, u.int_in_range(0u8..=5)?)) } else { None };
    // Values near the top of the f32 range (their sums overflow f32), and for
    // `NegLogDist` a key so far from every query that its squared distance
    // overflows (weight 0); applied after the magnitude guards.
    let (huge_values, far_key) = (one_in(u, 8)?, one_in(u, 6)?);
    // For `NegSqDist`, the whole problem moved far from the origin: the
    // exponent (48 to 66) that the largest query or key entry is scaled to.
    let far = if one_in(u, 4)? { Some(u.int_in_range(48i32..=66)?) } else { None };
    // K and V stored as 16-bit floats half the time.
    let elem = if one_in(u, 2)? { *u.choose(&[Elem::F16, Elem::Bf16])? } else { Elem::F32 };
    let offset = if one_in(u, 4)? { Some(u.int_in_range(0i32..=10)?) } else { None };
    let (fq, fk, fv) = (fill(u, -24, 12)?, fill(u, -24, 12)?, fill(u, -24, 10)?);
    let fb = fill(u, -8, 5)?;
    let mut edits = Vec::new();
    for _ in 0..u.int_in_range(0u8..=8)? {
        let h = u.int_in_range(0..=heads - 1)?;
        let i = if n_q > 0 { u.int_in_range(0..=n_q - 1)? } else { 0 };
        let j = if n_kv > 0 { u.int_in_range(0..=n_kv - 1)? } else { 0 };
        let j2 = if n_kv > 0 { u.int_in_range(0..=n_kv - 1)? } else { 0 };
        let c = u.int_in_range(0..=d - 1)?;
        let s = u.int_in_range(-6i32..=6)?;
        edits.push((u.int_in_range(0u8..=8)?, h, i, j, j2, c, s));
    }
    let mut q = tensor(u, &mut rng, heads * n_q * d, fq)?;
    let mut k = tensor(u, &mut rng, kv_heads * n_kv * d, fk)?;
    let mut v = tensor(u, &mut rng, kv_heads * n_kv * dv, fv)?;
    // Stored types first too, so that the edits below copy stored values
    // (a query equal to a key stays equal to it).
    k.iter_mut().chain(v.iter_mut()).for_each(|x| *x = elem.round(*x));
    let (eq, ek) = (fq.e, fk.e);
    let mut e_min = eq.min(ek);

    // Structural edits.
    let qrow = |h: usize, i: usize| (h * n_q + i) * d;
    let krow = |h: usize, j: usize| (h * n_kv + j) * d;
    let vrow = |h: usize, j: usize| (h * n_kv + j) * dv;
    for (op, h, i, j, j2, c, s) in edits {
        let hk = h / group;
        match op {
            // A query equal to a key.
            0 | 1 if n_q > 0 && n_kv > 0 => {
                let src = k[krow(hk, j)..][..d].to_vec();
                q[qrow(h, i)..][..d].copy_from_slice(&src);
            }
            // A repeated key (with its value when s is even).
            2 if n_kv > 0 => {
                k.copy_within(krow(hk, j)..krow(hk, j) + d, krow(hk, j2));
                if s % 2 == 0 {
                    v.copy_within(vrow(hk, j)..vrow(hk, j) + dv, vrow(hk, j2));
                }
            }
            // Every key of a head the same.
            3 if n_kv > 0 => {
                for j2 in 0..n_kv {
                    k.copy_within(krow(hk, j)..krow(hk, j) + d, krow(hk, j2));
                }
            }
            // A zero query.
            4 if n_q > 0 => q[qrow(h, i)..][..d].fill(0.0),
            // A key one grid step from a query (near-match).
            5 if n_q > 0 && n_kv > 0 => {
                let src = q[qrow(h, i)..][..d].to_vec();
                k[krow(hk, j)..][..d].copy_from_slice(&src);
                k[krow(hk, j) + c] += pow2(e_min);
            }
            // A key scaled by a power of two (exact), up or down.
            6 if n_kv > 0 => {
                k[krow(hk, j)..][..d].iter_mut().for_each(|x| *x *= pow2(s));
                e_min = e_min.min(ek + s);
            }
            // A value row scaled up.
            7 if n_kv > 0 => {
                v[vrow(hk, j)..][..dv].iter_mut().for_each(|x| *x *= pow2(s.abs() * 2));
            }
            // An anti-match: q = −k.
            8 if n_q > 0 && n_kv > 0 => {
                let src: Vec<f32> = k[krow(hk, j)..][..d].iter().map(|x| -x).collect();
                q[qrow(h, i)..][..d].copy_from_slice(&src);
            }
            _ => {}
        }
    }

    // A cluster far from the origin: the same offset for every query and
    // key, `|o_c| ≤ 1023 · 2^(e + shift)` above the coarser grid `e`.
    if let (Some(shift), Scorer::NegSqDist { .. } | Scorer::NegLogDist { .. }) = (offset, scorer) {
        let g = pow2(fq.e.max(fk.e) + shift);
        let o: Vec<f32> = (0..d).map(|_| (rng.below(2047) as i32 - 1023) as f32 * g).collect();
        for (t, x) in q.iter_mut().chain(k.iter_mut()).enumerate() {
            *x += o[t % d];
        }
    }

    // Magnitude guards (module docs).
    let (mq, mk, mv) = (max_abs(&q), max_abs(&k), max_abs(&v));
    if mq > 2f64.powi(24) || mk > 2f64.powi(24) || mv > 2f64.powi(20) || e_min < -24 {
        return Ok(None);
    }
    let df = d as f64;
    let scale_of = |s: Option<f32>| s.map_or(1.0 / df.sqrt(), |x| x as f64);
    match scorer {
        Scorer::Dot { scale } => {
            if scale_of(scale) * df * mq * mk > LOGIT_LIMIT {
                return Ok(None);
            }
        }
        Scorer::NegSqDist { scale } => {
            // Every |q_c − k_c|, |q_c − c_c| and |k_c − c_c| is at most the
            // widest coordinate range w over queries and keys together.
            let w = (0..d)
                .map(|c| {
                    let col = q.iter().skip(c).step_by(d).chain(k.iter().skip(c).step_by(d));
                    let (lo, hi) = col.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
                        (lo.min(x as f64), hi.max(x as f64))
                    });
                    if lo <= hi { hi - lo } else { 0.0 }
                })
                .fold(0.0f64, f64::max);
            if scale_of(scale) * df * 4.0 * w * w > LOGIT_LIMIT {
                return Ok(None);
            }
        }
        Scorer::NegLogDist { p, .. } => {
            let p = p as f64;
            // Largest squared distance, and the smallest nonzero one (a
            // nonzero |q_c − k_c| is at least one step of the finer grid).
            let d2_max = df * (mq + mk).powi(2);
            let d2_min = 2f64.powi(2 * e_min);
            if d2_max.powf(p / 2.0) > 2f64.powi(100) || d2_min.powf(p / 2.0) < 2f64.powi(-100) {
                return Ok(None);
            }
        }
        // |s| ≤ ‖w‖₁ < 2^11, whatever the data.
        Scorer::Additive { .. } => {}
        _ => return Ok(None),
    }

    if huge_values {
        // max|v| ≤ 2^20 (guard above): ≤ 2^126 ≈ 8.5e37, exactly scaled.
        v.iter_mut().for_each(|x| *x *= pow2(106));
    }
    let mut far_scaled = false;
    if let (Some(top), Scorer::NegSqDist { scale: sc }) = (far, scorer) {
        // q and k times 2^t, the scale times 2^-2t: every score, every guard
        // above and the tolerance are exactly those of the unscaled data,
        // while the entries reach up to 2^66, where ‖q‖², ‖k‖² and the norm
        // trick's terms overflow f32. The scale stays a normal number.
        let sc = sc.unwrap_or(1.0 / (d as f32).sqrt());
        let mx = max_abs(&q).max(max_abs(&k));
        let t = if mx > 0.0 { (top - mx.log2().floor() as i32).min((sc.log2().floor() as i32 + 126) / 2) } else { 0 };
        if t > 0 {
            q.iter_mut().chain(k.iter_mut()).for_each(|x| *x *= pow2(t));
            scorer = Scorer::NegSqDist { scale: Some(sc * pow2(-2 * t)) };
            far_scaled = true;
        }
    }
    if far_key && n_kv > 0 {
        let at = rng.below(kv_heads * n_kv);
        let sign = if rng.below(2) == 0 { 1.0 } else { -1.0 };
        match scorer {
            // |k_c| = 2^66 against |q_c| ≤ 2^24: d² > 2^131 > 2·f32::MAX.
            Scorer::NegLogDist { .. } => k[at * d + rng.below(d)] = sign * pow2(66),
            // A key at the origin, far from the moved cluster (its d² may
            // overflow f32 or not; its weight is 0 either way).
            Scorer::NegSqDist { .. } if far_scaled => k[at * d..][..d].fill(0.0),
            // d² > 2^199: overflows f32 in every kernel, weight 0.
            Scorer::NegSqDist { .. } => k[at * d + rng.below(d)] = sign * pow2(100),
            _ => {}
        }
    }

    // K and V rounded to their element types (the reference takes the
    // rounded values as the inputs); skipped if a value leaves the f16 range.
    k.iter_mut().chain(v.iter_mut()).for_each(|x| *x = elem.round(*x));
    if k.iter().chain(&v).any(|x| x.is_infinite()) {
        return Ok(None);
    }

    // NegSqDist: no squared distance or score within a factor 2 of
    // f32::MAX, where whether it overflows depends on rounding.
    if let Scorer::NegSqDist { scale } = scorer {
        let sc = scale_of(scale);
        let band = |x: f64| (f32::MAX as f64 / 2.0..=4.0 * f32::MAX as f64).contains(&x);
        for h in 0..heads {
            for qi in q[h * n_q * d..][..n_q * d].chunks_exact(d) {
                for kj in k[h / group * n_kv * d..][..n_kv * d].chunks_exact(d) {
                    let d2: f64 = qi.iter().zip(kj).map(|(&a, &b)| (a as f64 - b as f64).powi(2)).sum();
                    if band(d2) || band(sc * d2) {
                        return Ok(None);
                    }
                }
            }
        }
    }

    // Bias: finite grid values or −∞, per head or shared.
    let mut case = Case {
        heads,
        kv_heads,
        n_q,
        n_kv,
        d,
        dv,
        q,
        k,
        v,
        bias: None,
        bias_shared: false,
        scorer,
        mask,
        key_len,
        layout,
        // Half the cases hand the kernels cached key norms (`key_norms`).
        cached_norms: rng.below(2) == 0,
        elem,
        softcap: None,
        slopes: None,
        sinks: None,
    };
    if let Some((shared, mode)) = bias_mode {
        let bh = if shared { 1 } else { heads };
        let mut b = tensor(u, &mut rng, bh * n_q * n_kv, fb)?;
        let neg = f32::NEG_INFINITY;
        match mode {
            0 => {}
            1 => b.iter_mut().for_each(|x| {
                if rng.below(8) == 0 {
                    *x = neg
                }
            }),
            2 => b.iter_mut().for_each(|x| {
                if rng.below(2) == 0 {
                    *x = neg
                }
            }),
            3 if n_kv > 0 => {
                // Whole rows masked out.
                for row in b.chunks_mut(n_kv) {
                    if rng.below(3) == 0 {
                        row.fill(neg);
                    }
                }
            }
            4 => b.fill(neg),
            _ if n_kv > 0 => {
                // Only the diagonal-ish key kept: a −∞ everywhere else.
                for (r, row) in b.chunks_mut(n_kv).enumerate() {
                    let keep = r % n_q.max(1) % n_kv;
                    for (j, x) in row.iter_mut().enumerate() {
                        if j != keep {
                            *x = neg;
                        }
                    }
                }
            }
            _ => {}
        }
        case.bias = Some(b);
        case.bias_shared = shared;
    }
    let mut owned = Owned::new(case, w);
    if let Some(p) = owned.w {
        // SAFETY: the weights live (unmoved, unchanged) until `owned` drops,
        // which resets the scorer before freeing them.
        scorer = Scorer::Additive { w: unsafe { &*p.as_ptr() } };
    }
    owned.case.scorer = scorer;
    Ok(Some(owned))
}

/// Rows `h * n_q + i` with a visible key whose score is NaN: `NegLogDist`
/// with `eps = 0`, the query equal to the key (logit `+∞`), bias `−∞`.
pub fn nan_rows(case: &Case) -> Vec<usize> {
    let Scorer::NegLogDist { eps, .. } = case.scorer else { return vec![] };
    // A softcap turns the `+∞` logit into `+cap`: no NaN.
    if eps != 0.0 || case.bias.is_none() || case.softcap.is_some() {
        return vec![];
    }
    let mut rows = vec![];
    for h in 0..case.heads {
        for i in 0..case.n_q {
            let q = case.qrow(h, i);
            let nan = case
                .mask
                .key_range(i, case.key_len())
                .any(|j| case.bias_at(h, i, j) == f32::NEG_INFINITY && case.krow(h / case.group(), j) == q);
            if nan {
                rows.push(h * case.n_q + i);
            }
        }
    }
    rows
}

/// Asserts that the `nan_rows` of a result are NaN (every output and the
/// lse), then overwrites them with the no-key values (0, `−∞`) that
/// [`neutralise_reference`] gives the reference, so that
/// `Reference::assert_close` can compare the other rows.
pub fn neutralise(out: &mut [f32], lse: &mut [f32], nan_rows: &[usize], dv: usize, what: &str) {
    for &row in nan_rows {
        let o = &mut out[row * dv..(row + 1) * dv];
        assert!(
            o.iter().all(|x| x.is_nan()) && lse[row].is_nan(),
            "{what}: row {row} has a NaN score (+inf logit, -inf bias) but out = {o:?}, lse = {}",
            lse[row]
        );
        o.fill(0.0);
        lse[row] = f32::NEG_INFINITY;
    }
}

/// The reference side of [`neutralise`]: output 0 with tolerance 0, lse `−∞`.
pub fn neutralise_reference(r: &mut Reference, nan_rows: &[usize], dv: usize) {
    for &row in nan_rows {
        r.out[row * dv..(row + 1) * dv].fill(0.0);
        r.tol[row * dv..(row + 1) * dv].fill(0.0);
        r.lse[row] = f64::NEG_INFINITY;
    }
}
