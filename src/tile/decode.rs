//! The decode kernel: a few query rows against a long key range, in one
//! streaming pass over K and V.
//!
//! Decoding is memory-bound: each key and value is used by at most
//! [`ROWS`] query rows, so packing a key tile would cost more than the
//! arithmetic it feeds. Here every key row is read once, straight from the
//! caller's buffer, and scored against all rows of the pass while it is in
//! registers (SIMD along the head dimension, one horizontal sum per row and
//! key); the query heads that share a key/value head (grouped-query
//! attention) are rows of the same pass, so K and V are read once per group,
//! not once per query head. The tile of scores then goes through the same
//! softmax and P·V steps as the prefill loop ([`super::update`]).

use super::{finish_row, seen, start_row, update, At, TK};
use crate::attention::Problem;
use crate::simd::Vector;
use crate::softmax::Running;
use crate::view::Layout;

/// Most rows in one pass.
pub(crate) const ROWS: usize = 8;

/// Computes the rows `at` (at most [`ROWS`], all reading the same key/value
/// head).
pub(crate) fn rows<V: Vector>(
    p: &Problem<'_>,
    at: &[At],
    out: &mut [f32],
    ol: &Layout,
    lse: Option<&mut [f32]>,
) {
    macro_rules! by_count {
        ($($n:literal)*) => {
            match at.len() {
                $($n => pass::<V, $n>(p, at.try_into().unwrap(), out, ol, lse),)*
                _ => unreachable!("a decode pass has 1 to {} rows", ROWS),
            }
        };
    }
    by_count!(1 2 3 4 5 6 7 8)
}

/// One pass of `R` rows. P·V holds as many output vectors per pass over the
/// tile's values as the registers allow (32 with AVX-512, 16 otherwise): a
/// single row of `d_v = 128` makes one pass, front to back, as the values
/// stream in (measured against a pass that accumulated into the output rows
/// in memory: +4% to +20% at decode-32k, run side by side).
fn pass<V: Vector, const R: usize>(
    p: &Problem<'_>,
    at: [At; R],
    out: &mut [f32],
    ol: &Layout,
    mut lse: Option<&mut [f32]>,
) {
    let k = p.k.head(at[0].h / p.group);
    let d = k.cols();
    let mut run = [Running::EMPTY; R];
    let mut q_norm = [0.0f32; R];
    let (mut lo, mut hi) = (usize::MAX, 0);
    for r in 0..R {
        (run[r], q_norm[r]) = start_row(p, at[r], out, ol);
        let keys = p.mask.key_range(at[r].i, p.key_len);
        if !keys.is_empty() {
            (lo, hi) = (lo.min(keys.start), hi.max(keys.end));
        }
    }
    let q = at.map(|a| &p.q.head(a.h).row(a.i)[..d]);
    let cached = p.norms.map(|n| n.head(at[0].h / p.group));
    let norms = super::needs_norms(p.kind) && cached.is_none();
    let mut s = [[0.0f32; TK]; R];
    let mut kn = [0.0f32; TK];
    for t0 in (lo..hi).step_by(TK) {
        let nt = TK.min(p.key_len - t0);
        let seen = at.map(|a| seen(p, a.i, t0, nt));
        let first = seen.iter().filter(|r| !r.is_empty()).map(|r| r.start).min();
        let Some(first) = first else { continue };
        let last = seen.iter().map(|r| r.end).max().unwrap_or(0);
        for j in first..last {
            let kj = &k.row(t0 + j)[..d];
            let (dots, norm) = dots::<V, R>(&q, kj, norms);
            for r in 0..R {
                s[r][j] = dots[r];
            }
            kn[j] = norm;
        }
        super::cached_norms(p.kind, cached, t0 + first, &mut kn[first..last]);
        super::key_terms(p.kind, &mut kn[first..last]);
        let (s, kn, run) = (&mut s, &kn, &mut run[..]);
        match (V::LANES == 16, R) {
            (true, 1 | 2) | (false, 1) => update::<V, R, 8>(p, at, seen, s, kn, t0, run, &q_norm, out, ol),
            (true, 3 | 4) | (false, 2) => update::<V, R, 4>(p, at, seen, s, kn, t0, run, &q_norm, out, ol),
            (true, _) | (false, 3 | 4) => update::<V, R, 2>(p, at, seen, s, kn, t0, run, &q_norm, out, ol),
            (false, _) => update::<V, R, 1>(p, at, seen, s, kn, t0, run, &q_norm, out, ol),
        }
    }
    for r in 0..R {
        finish_row(p, at[r], &run[r], out, ol, lse.as_deref_mut());
    }
}

/// `q_r · k` for every row, and `‖k‖²` if `norms`, with `k` read once.
#[inline(always)]
fn dots<V: Vector, const R: usize>(q: &[&[f32]; R], k: &[f32], norms: bool) -> ([f32; R], f32) {
    let l = V::LANES;
    let d = k.len();
    let mut acc = [V::splat(0.0); R];
    let mut nacc = V::splat(0.0);
    let mut c = 0;
    while c + l <= d {
        let kv = V::load(&k[c..]);
        for r in 0..R {
            acc[r] = V::load(&q[r][c..]).mul_add(kv, acc[r]);
        }
        if norms {
            nacc = kv.mul_add(kv, nacc);
        }
        c += l;
    }
    if c < d {
        let kv = V::load_partial(&k[c..]);
        for r in 0..R {
            acc[r] = V::load_partial(&q[r][c..]).mul_add(kv, acc[r]);
        }
        nacc = kv.mul_add(kv, nacc);
    }
    (acc.map(|a| a.reduce_add()), nacc.reduce_add())
}
