//! The P·V microkernel: `out[r] = α_r · out[r] + Σ_j p[r][j] · v_j`.

// Register blocks are indexed arrays: index loops are the clearest form.
#![allow(clippy::needless_range_loop)]

use super::TK;
use crate::arch::{Simd, Vector};
use crate::{Element, MatRef};
use core::ops::Range;

/// Rows of the output that one call updates.
pub(crate) struct Out<'a> {
    pub data: &'a mut [f32],
    /// Start of each row's `d_v` elements in `data`.
    pub offsets: &'a [usize],
    /// Whether `bf16` values are read in pairs of vectors
    /// ([`Simd::load_bf16_pair`]) where the register block has an even
    /// number of vectors: the columns of the full blocks are then held in
    /// [`paired_order`](crate::arch::paired_order).
    pub paired: bool,
}

/// The columns of a row of `d_v` that [`pv`] holds in paired order when
/// `Out::paired` is set: those of the full register blocks of `nc` vectors,
/// if `nc` is even and the level pairs `bf16` loads.
#[inline(always)]
pub(crate) fn paired_cols<S: Simd, E: Element>(d_v: usize, nc: usize) -> usize {
    if const { S::PAIRED_BF16 && E::BF16 } && nc.is_multiple_of(2) {
        d_v / (nc * S::LANES) * (nc * S::LANES)
    } else {
        0
    }
}

/// Calls `f(j, row t0 + j of m)` for `j` in `keys`, a stretch of rows
/// stored at one stride at a time (the whole range for a contiguous view,
/// up to a block for a paged one), so that the loop over a stretch is the
/// loop over a plain strided matrix.
#[inline(always)]
pub(crate) fn each_row<'m, E: Element>(
    m: MatRef<'m, E>,
    t0: usize,
    keys: Range<usize>,
    mut f: impl FnMut(usize, &'m [E]),
) {
    let mut j = keys.start;
    while j < keys.end {
        let (n, rows) = m.stretch(t0 + j);
        let end = keys.end.min(j + n);
        for i in j..end {
            f(i, rows.row(i - j));
        }
        j = end;
    }
}

/// Accumulates `R` rows over the keys `keys` (tile coordinates: the rows
/// `t0 + keys` of `v`), every row seeing all of them, after rescaling each
/// row by `alpha[r]`.
///
/// The register block is `R` rows × `NC` vectors of output columns: per key,
/// `NC` loads of the value row and `R` broadcasts of weights feed `R · NC`
/// fused multiply-adds. Columns left over (fewer than `NC` vectors) go
/// through the same loop one vector at a time, the last one partial.
/// `ahead(j, columns)` is called before the columns of value `j` are read
/// (the decode pass prefetches with it). With `out.paired`, the full blocks
/// read `bf16` values in pairs of vectors ([`paired_cols`]).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn pv<S: Simd, E: Element, const R: usize, const NC: usize>(
    simd: S,
    out: &mut Out<'_>,
    alpha: [f32; R],
    p: &[[f32; TK]; R],
    v: MatRef<'_, E>,
    t0: usize,
    keys: Range<usize>,
    d_v: usize,
    ahead: impl Fn(usize, Range<usize>),
) {
    let l = S::LANES;
    let block = NC * l;
    let mut c0 = 0;
    while c0 + block <= d_v {
        let mut acc = [[simd.splat(0.0); NC]; R];
        for r in 0..R {
            let o = &out.data[out.offsets[r] + c0..][..block];
            for n in 0..NC {
                acc[r][n] = simd.load(&o[n * l..]) * simd.splat(alpha[r]);
            }
        }
        if paired_cols::<S, E>(d_v, NC) > 0 && out.paired {
            each_row(
                v,
                t0,
                keys.clone(),
                #[inline(always)]
                |j, vj| {
                    ahead(j, c0..c0 + block);
                    let vj = &vj[c0..c0 + block];
                    let mut vv = [simd.splat(0.0); NC];
                    for n in (0..NC).step_by(2) {
                        (vv[n], vv[n + 1]) = simd.load_pair_e(&vj[n * l..]);
                    }
                    add::<S, R, NC>(simd, &mut acc, p, j, &vv);
                },
            );
        } else {
            each_row(
                v,
                t0,
                keys.clone(),
                #[inline(always)]
                |j, vj| {
                    ahead(j, c0..c0 + block);
                    let vj = &vj[c0..c0 + block];
                    let mut vv = [simd.splat(0.0); NC];
                    for n in 0..NC {
                        vv[n] = simd.load_e(&vj[n * l..]);
                    }
                    add::<S, R, NC>(simd, &mut acc, p, j, &vv);
                },
            );
        }
        for r in 0..R {
            let o = &mut out.data[out.offsets[r] + c0..][..block];
            for n in 0..NC {
                acc[r][n].store(&mut o[n * l..]);
            }
        }
        c0 += block;
    }
    while c0 < d_v {
        let w = l.min(d_v - c0);
        let mut acc = [simd.splat(0.0); R];
        for r in 0..R {
            acc[r] = simd.load_partial(&out.data[out.offsets[r] + c0..][..w]) * simd.splat(alpha[r]);
        }
        each_row(
            v,
            t0,
            keys.clone(),
            #[inline(always)]
            |j, vj| {
                ahead(j, c0..c0 + w);
                let vj = &vj[c0..c0 + w];
                let vv = if w == l { simd.load_e(vj) } else { simd.load_partial_e(vj) };
                for r in 0..R {
                    acc[r] = simd.splat(p[r][j]).mul_add(vv, acc[r]);
                }
            },
        );
        for r in 0..R {
            acc[r].store_partial(&mut out.data[out.offsets[r] + c0..][..w]);
        }
        c0 += w;
    }
}

/// `acc[r] += p[r][j] · v_j` for one key's vectors `vv`.
#[inline(always)]
fn add<S: Simd, const R: usize, const NC: usize>(
    simd: S,
    acc: &mut [[S::V; NC]; R],
    p: &[[f32; TK]; R],
    j: usize,
    vv: &[S::V; NC],
) {
    for r in 0..R {
        let pj = simd.splat(p[r][j]);
        for n in 0..NC {
            acc[r][n] = pj.mul_add(vv[n], acc[r][n]);
        }
    }
}
