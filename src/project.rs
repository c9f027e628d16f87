//! Projections for the `Additive` scorer: `out = x · Wᵀ`.

use crate::arch::{dispatch, Job, Level, Simd, Vector};
use crate::{Error, MatMut, MatRef};

/// Rows of `x` and of `W` per register block.
const B: usize = 4;

/// Applies a projection: `out[i][c] = Σ_k x[i][k] · w[c][k]`, i.e. `out = x Wᵀ`
/// for `x` of `n × d`, `w` of `h × d` (one row per output column) and `out`
/// of `n × h`.
///
/// This is how the projected queries `a_i = W q_i` and keys `b_j = U k_j` of
/// [`Scorer::Additive`](crate::Scorer::Additive) are made from queries and
/// keys; the crate does not own `W` or `U`. A plain blocked product:
/// `4 × 4` blocks of dot products, each vectorised along `d`. For the keys of
/// a KV cache, project each new row once and keep the projections next to the
/// cache (as with the keys themselves).
///
/// It runs at [`Level::detected`].
///
/// Errors: [`Error::ShapeMismatch`] if `w.cols() != x.cols()`,
/// `out.rows() != x.rows()` or `out.cols() != w.rows()`.
///
/// ```
/// use streamattn::{project, MatMut, MatRef};
/// let x = [1.0f32, 2.0, 3.0]; // one row, d = 3
/// let w = [1.0f32, 0.0, 0.0, 0.5, 0.5, 0.5]; // h = 2
/// let mut a = [0.0f32; 2];
/// project(MatRef::dense(&x, 1, 3)?, MatRef::dense(&w, 2, 3)?, MatMut::dense(&mut a, 1, 2)?)?;
/// assert_eq!(a, [1.0, 3.0]);
/// # Ok::<(), streamattn::Error>(())
/// ```
pub fn project(x: MatRef<'_>, w: MatRef<'_>, out: MatMut<'_>) -> Result<(), Error> {
    let mismatch = |what, expected: usize, found: usize| {
        if expected == found {
            Ok(())
        } else {
            Err(Error::ShapeMismatch { what, expected, found })
        }
    };
    mismatch("w", x.cols(), w.cols())?;
    mismatch("out", x.rows(), out.rows())?;
    mismatch("out", w.rows(), out.cols())?;
    dispatch(Level::detected(), Projection { x, w, out });
    Ok(())
}

/// A checked projection, run at a level.
struct Projection<'a, 'o> {
    x: MatRef<'a>,
    w: MatRef<'a>,
    out: MatMut<'o>,
}

impl Job for Projection<'_, '_> {
    type Output = ();
    fn run<S: Simd>(self, simd: S) {
        simd.vectorize(
            #[inline(always)]
            || blocks(simd, self.x, self.w, self.out),
        );
    }
}

/// `out = x Wᵀ` in `B × B` blocks.
#[inline(always)]
fn blocks<S: Simd>(simd: S, x: MatRef<'_>, w: MatRef<'_>, mut out: MatMut<'_>) {
    let (n, h) = (x.rows(), w.rows());
    for i0 in (0..n).step_by(B) {
        let xr: [&[f32]; B] = core::array::from_fn(|r| x.row((i0 + r).min(n - 1)));
        for c0 in (0..h).step_by(B) {
            let wr: [&[f32]; B] = core::array::from_fn(|c| w.row((c0 + c).min(h - 1)));
            let block = dots(simd, xr, wr);
            for (r, row) in block.iter().enumerate().take(n - i0) {
                let o = out.row_mut(i0 + r);
                for (c, &v) in row.iter().enumerate().take(h - c0) {
                    o[c0 + c] = v;
                }
            }
        }
    }
}

/// The `B × B` dot products of rows `x[r]` and `w[c]`.
#[inline(always)]
fn dots<S: Simd>(simd: S, x: [&[f32]; B], w: [&[f32]; B]) -> [[f32; B]; B] {
    let (d, l) = (x[0].len(), S::LANES);
    let mut acc = [[simd.splat(0.0); B]; B];
    let mut k = 0;
    let load = |s: &[f32], k: usize| if k + l <= d { simd.load(&s[k..]) } else { simd.load_partial(&s[k..]) };
    while k < d {
        let wv = w.map(|row| load(row, k));
        for r in 0..B {
            let xv = load(x[r], k);
            for c in 0..B {
                acc[r][c] = xv.mul_add(wv[c], acc[r][c]);
            }
        }
        k += l;
    }
    acc.map(|row| row.map(super::arch::Vector::reduce_add))
}
