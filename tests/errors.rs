//! The error contract: every rejected input gives its own `Err` variant with
//! exact fields, checked before anything is written; the edge cases that are
//! not errors (`n_q = 0`, `n_kv = 0`) give the documented results; `Error`
//! is displayable and a `core::error::Error`.
//!
//! Every attention call here goes through `Call::run`, which fills the
//! output and lse buffers with a sentinel, runs `run_heads` (with both
//! kernels) and, for one-head shapes, `run` / `run_lse` too, asserts that
//! every entry point gives the same result, and that an `Err` left both
//! buffers untouched.

// Test and example code is held to clippy's default lints (Cargo.toml).
#![allow(clippy::pedantic)]

use streamattn::{merge, Attention, Bias, Error, HeadsMut, HeadsRef, Kernel, Mask, MatMut, MatRef, Scorer};

const SENTINEL: f32 = -1234.5;

/// `got` is `Err(want)`, field for field. The `Debug` forms are compared
/// rather than using `PartialEq`, so that a NaN parameter matches itself
/// (NaN != NaN) and `-0.0` is told from `0.0` (which `==` equates).
#[track_caller]
fn assert_err<T: core::fmt::Debug>(got: Result<T, Error>, want: Error) {
    match got {
        Err(e) => assert_eq!(format!("{e:?}"), format!("{want:?}"), "wrong error"),
        Ok(v) => panic!("expected Err({want:?}), got Ok({v:?})"),
    }
}

/// The shapes of one attention call. `new` makes them consistent; tests then
/// break one of them.
#[derive(Clone, Copy, Debug)]
struct Call {
    heads: usize,
    kv_heads: usize,
    v_heads: usize,
    out_heads: usize,
    n_q: usize,
    n_kv: usize,
    v_rows: usize,
    out_rows: usize,
    d: usize,
    k_cols: usize,
    dv: usize,
    out_cols: usize,
    /// Length of the lse buffer, or no lse.
    lse: Option<usize>,
}

impl Call {
    fn new(heads: usize, kv_heads: usize, n_q: usize, n_kv: usize, d: usize, dv: usize) -> Call {
        Call {
            heads,
            kv_heads,
            v_heads: kv_heads,
            out_heads: heads,
            n_q,
            n_kv,
            v_rows: n_kv,
            out_rows: n_q,
            d,
            k_cols: d,
            dv,
            out_cols: dv,
            lse: Some(heads * n_q),
        }
    }

    /// One head: `run_lse` (and `run` when `lse` is `None`) apply as well.
    fn single(n_q: usize, n_kv: usize, d: usize, dv: usize) -> Call {
        Call::new(1, 1, n_q, n_kv, d, dv)
    }

    fn no_lse(self) -> Call {
        Call { lse: None, ..self }
    }

    fn is_single(&self) -> bool {
        self.heads == 1 && self.kv_heads == 1 && self.v_heads == 1 && self.out_heads == 1
    }

    /// Runs `att` through every entry point that fits the shapes and both
    /// kernels; asserts they agree and that an `Err` wrote nothing. Returns
    /// the common result, the output and the lse buffer (of the last run).
    #[track_caller]
    fn run_full(&self, att: Attention<'_>) -> (Result<(), Error>, Vec<f32>, Vec<f32>) {
        let q: Vec<f32> = (0..self.heads * self.n_q * self.d).map(|x| (x % 5) as f32 * 0.25 - 0.5).collect();
        let k: Vec<f32> =
            (0..self.kv_heads * self.n_kv * self.k_cols).map(|x| (x % 7) as f32 * 0.125).collect();
        let v: Vec<f32> = (0..self.v_heads * self.v_rows * self.dv).map(|x| (x % 3) as f32).collect();
        let out_len = self.out_heads * self.out_rows * self.out_cols;
        let mut results = Vec::new();
        let (mut out, mut lse) = (Vec::new(), Vec::new());
        let mut apis = vec!["run_heads"];
        if self.is_single() {
            apis.push(if self.lse.is_some() { "run_lse" } else { "run" });
        }
        for kernel in [Kernel::Scalar, Kernel::Tiled] {
            for &api in &apis {
                out = vec![SENTINEL; out_len];
                lse = vec![SENTINEL; self.lse.unwrap_or(0)];
                let att = att.kernel(kernel);
                let r = match api {
                    "run_heads" => att.run_heads(
                        HeadsRef::heads_major(&q, self.heads, self.n_q, self.d).unwrap(),
                        HeadsRef::heads_major(&k, self.kv_heads, self.n_kv, self.k_cols).unwrap(),
                        HeadsRef::heads_major(&v, self.v_heads, self.v_rows, self.dv).unwrap(),
                        HeadsMut::heads_major(&mut out, self.out_heads, self.out_rows, self.out_cols)
                            .unwrap(),
                        self.lse.map(|_| &mut lse[..]),
                    ),
                    "run_lse" => att.run_lse(
                        MatRef::dense(&q, self.n_q, self.d).unwrap(),
                        MatRef::dense(&k, self.n_kv, self.k_cols).unwrap(),
                        MatRef::dense(&v, self.v_rows, self.dv).unwrap(),
                        MatMut::dense(&mut out, self.out_rows, self.out_cols).unwrap(),
                        &mut lse,
                    ),
                    _ => att.run(
                        MatRef::dense(&q, self.n_q, self.d).unwrap(),
                        MatRef::dense(&k, self.n_kv, self.k_cols).unwrap(),
                        MatRef::dense(&v, self.v_rows, self.dv).unwrap(),
                        MatMut::dense(&mut out, self.out_rows, self.out_cols).unwrap(),
                    ),
                };
                if r.is_err() {
                    assert!(
                        out.iter().chain(&lse).all(|&x| x == SENTINEL),
                        "{api} ({kernel:?}) returned {r:?} but wrote to its output: {self:?}"
                    );
                }
                results.push((api, kernel, format!("{r:?}"), r));
            }
        }
        let first = &results[0].2;
        for (api, kernel, dbg, _) in &results {
            assert_eq!(dbg, first, "{api} ({kernel:?}) disagrees with run_heads (Scalar) on {self:?}");
        }
        (results.pop().unwrap().3, out, lse)
    }

    #[track_caller]
    fn run(&self, att: Attention<'_>) -> Result<(), Error> {
        self.run_full(att).0
    }
}

// ---------------------------------------------------------------------------
// View constructors.

#[test]
fn zero_cols_is_zero_dim() {
    let data = [1.0f32; 16];
    let mut m = [1.0f32; 16];
    let matrix = Error::ZeroDim { what: "matrix" };
    let heads = Error::ZeroDim { what: "heads" };
    assert_err(MatRef::new(&data, 2, 0, 4), matrix);
    assert_err(MatRef::new(&data, 0, 0, 0), matrix); // checked even with no rows
    assert_err(MatRef::dense(&data, 3, 0), matrix);
    assert_err(MatMut::new(&mut m, 2, 0, 4), matrix);
    assert_err(MatMut::dense(&mut m, 3, 0), matrix);
    assert_err(HeadsRef::new(&data, 2, 2, 0, 8, 4), heads);
    assert_err(HeadsRef::heads_major(&data, 2, 2, 0), heads);
    assert_err(HeadsRef::seq_major(&data, 2, 2, 0), heads);
    assert_err(HeadsMut::new(&mut m, 2, 2, 0, 8, 4), heads);
    assert_err(HeadsMut::heads_major(&mut m, 2, 2, 0), heads);
    assert_err(HeadsMut::seq_major(&mut m, 2, 2, 0), heads);
}

#[test]
fn short_buffer_is_buffer_too_short() {
    let data = [0.0f32; 64];
    let mut m = [0.0f32; 64];
    // Dense 2 × 3 needs 6.
    assert_err(MatRef::new(&data[..5], 2, 3, 3), Error::BufferTooShort { what: "matrix", needed: 6, len: 5 });
    assert_err(MatRef::dense(&data[..5], 2, 3), Error::BufferTooShort { what: "matrix", needed: 6, len: 5 });
    // Strided: the last row needs only its `cols`, (rows − 1)·stride + cols = 8.
    assert!(MatRef::new(&data[..8], 2, 3, 5).is_ok());
    assert_err(MatRef::new(&data[..7], 2, 3, 5), Error::BufferTooShort { what: "matrix", needed: 8, len: 7 });
    assert_err(MatRef::<f32>::dense(&[], 1, 1), Error::BufferTooShort { what: "matrix", needed: 1, len: 0 });
    assert_err(
        MatMut::new(&mut m[..7], 2, 3, 5),
        Error::BufferTooShort { what: "matrix", needed: 8, len: 7 },
    );
    assert_err(MatMut::dense(&mut m[..5], 2, 3), Error::BufferTooShort { what: "matrix", needed: 6, len: 5 });
    // [2 heads, 3 rows, 4 cols] needs 24, in either dense layout.
    let short = Error::BufferTooShort { what: "heads", needed: 24, len: 23 };
    assert_err(HeadsRef::heads_major(&data[..23], 2, 3, 4), short);
    assert_err(HeadsRef::seq_major(&data[..23], 2, 3, 4), short);
    assert_err(HeadsMut::heads_major(&mut m[..23], 2, 3, 4), short);
    assert_err(HeadsMut::seq_major(&mut m[..23], 2, 3, 4), short);
    // Padded heads-major: head stride 16, row stride 5: 16 + 2·5 + 4 = 30.
    assert!(HeadsRef::new(&data[..30], 2, 3, 4, 16, 5).is_ok());
    let short = Error::BufferTooShort { what: "heads", needed: 30, len: 29 };
    assert_err(HeadsRef::new(&data[..29], 2, 3, 4, 16, 5), short);
    assert_err(HeadsMut::new(&mut m[..29], 2, 3, 4, 16, 5), short);
    // Zero rows or zero heads need nothing.
    assert!(MatRef::<f32>::new(&[], 0, 3, 3).is_ok());
    assert!(HeadsRef::<f32>::new(&[], 0, 3, 4, 12, 4).is_ok());
    assert!(HeadsRef::<f32>::new(&[], 2, 0, 4, 12, 4).is_ok());
}

#[test]
fn row_stride_below_cols_is_stride_too_small() {
    let data = [0.0f32; 64];
    let mut m = [0.0f32; 64];
    let matrix = Error::StrideTooSmall { what: "matrix", stride: 2, min: 3 };
    assert_err(MatRef::new(&data, 2, 3, 2), matrix);
    assert_err(MatMut::new(&mut m, 2, 3, 2), matrix);
    assert_err(MatRef::new(&data, 5, 3, 0), Error::StrideTooSmall { what: "matrix", stride: 0, min: 3 });
    let heads = Error::StrideTooSmall { what: "heads", stride: 3, min: 4 };
    assert_err(HeadsRef::new(&data, 2, 3, 4, 16, 3), heads);
    assert_err(HeadsMut::new(&mut m, 2, 3, 4, 16, 3), heads);
    // One row: the row stride is never used, so any is accepted.
    assert_eq!(MatRef::new(&data[..3], 1, 3, 0).unwrap().row(0), &[0.0; 3]);
    assert!(MatMut::new(&mut m[..3], 1, 3, 1).is_ok());
}

#[test]
fn overlapping_heads_is_stride_too_small() {
    let data = [0.0f32; 128];
    let mut m = [0.0f32; 128];
    // 2 heads of 3 × 4 with rows 4 apart: a head spans 2·4 + 4 = 12 floats,
    // a head stride of 8 overlaps, and no row has room for 2 heads side by side.
    let e = Error::StrideTooSmall { what: "heads", stride: 8, min: 12 };
    assert_err(HeadsRef::new(&data, 2, 3, 4, 8, 4), e);
    assert_err(HeadsMut::new(&mut m, 2, 3, 4, 8, 4), e);
    assert_err(
        HeadsRef::new(&data, 2, 3, 4, 0, 4),
        Error::StrideTooSmall { what: "heads", stride: 0, min: 12 },
    );
    // One row per head: a head spans `cols`.
    let e = Error::StrideTooSmall { what: "heads", stride: 3, min: 4 };
    assert_err(HeadsRef::new(&data, 2, 1, 4, 3, 4), e);
    assert_err(HeadsMut::new(&mut m, 2, 1, 4, 3, 4), e);
    // Side by side in a row (seq-major) needs head_stride >= cols and
    // row_stride >= (heads − 1)·head_stride + cols: 3 heads of 4 in rows of 8
    // do not fit.
    assert_err(
        HeadsRef::new(&data, 3, 2, 4, 4, 8),
        Error::StrideTooSmall { what: "heads", stride: 4, min: 12 },
    );
    assert!(HeadsRef::new(&data, 3, 2, 4, 4, 12).is_ok());
    // In rows of 12, head stride 4 (side by side) and >= 16 (blocks of rows)
    // are accepted, 5 is not; `min` reports the block-of-rows minimum.
    assert!(HeadsRef::new(&data, 3, 2, 4, 16, 12).is_ok());
    assert_err(
        HeadsRef::new(&data, 3, 2, 4, 5, 12),
        Error::StrideTooSmall { what: "heads", stride: 5, min: 16 },
    );
}

#[test]
fn huge_extent_is_overflow() {
    let data = [0.0f32; 4];
    let mut m = [0.0f32; 4];
    let matrix = Error::Overflow { what: "matrix" };
    assert_err(MatRef::new(&data, usize::MAX, 2, 2), matrix); // (rows − 1)·stride
    assert_err(MatRef::new(&data, 2, 2, usize::MAX), matrix); // stride + cols
    assert_err(MatMut::new(&mut m, usize::MAX, 2, 2), matrix);
    assert_err(MatMut::new(&mut m, 2, 2, usize::MAX), matrix);
    let heads = Error::Overflow { what: "heads" };
    assert_err(HeadsRef::heads_major(&data, 2, usize::MAX, 2), heads); // rows·cols
    assert_err(HeadsRef::seq_major(&data, usize::MAX, 1, 2), heads); // heads·cols
    assert_err(HeadsRef::new(&data, usize::MAX, 2, 2, 4, 2), heads); // (heads − 1)·head_stride
    assert_err(HeadsRef::new(&data, 2, usize::MAX / 2, 2, usize::MAX, 2), heads);
    assert_err(HeadsMut::heads_major(&mut m, 2, usize::MAX, 2), heads);
    assert_err(HeadsMut::seq_major(&mut m, usize::MAX, 1, 2), heads);
    assert_err(HeadsMut::new(&mut m, usize::MAX, 2, 2, 4, 2), heads);
}

#[test]
fn bias_row_stride_below_cols_is_stride_too_small() {
    let b = [0.0f32; 64];
    assert_err(Bias::new(&b, 3, 4, 0, 3), Error::StrideTooSmall { what: "bias", stride: 3, min: 4 });
    assert_err(Bias::new(&b, 3, 4, 12, 1), Error::StrideTooSmall { what: "bias", stride: 1, min: 4 });
    // 0 (one row shared by every query) and >= cols are accepted.
    assert!(Bias::new(&b, 3, 4, 0, 0).is_ok());
    assert!(Bias::new(&b, 3, 4, 12, 4).is_ok());
    assert!(Bias::new(&b, 3, 4, 0, 9).is_ok());
    assert!(Bias::shared(&b, 3, 4).is_ok());
}

// ---------------------------------------------------------------------------
// Attention: shape errors.

fn dot() -> Attention<'static> {
    Attention::new(Scorer::dot())
}

#[test]
fn k_cols_differ_from_q_cols() {
    let c = Call { k_cols: 5, ..Call::single(2, 3, 4, 2) };
    assert_err(c.run(dot()), Error::ShapeMismatch { what: "k", expected: 4, found: 5 });
    assert_err(c.no_lse().run(dot()), Error::ShapeMismatch { what: "k", expected: 4, found: 5 });
    let c = Call { k_cols: 3, ..Call::new(4, 2, 2, 3, 4, 2) };
    assert_err(c.run(dot()), Error::ShapeMismatch { what: "k", expected: 4, found: 3 });
}

#[test]
fn v_rows_differ_from_k_rows() {
    let c = Call { v_rows: 4, ..Call::single(2, 3, 4, 2) };
    assert_err(c.run(dot()), Error::ShapeMismatch { what: "v", expected: 3, found: 4 });
    assert_err(c.no_lse().run(dot()), Error::ShapeMismatch { what: "v", expected: 3, found: 4 });
    let c = Call { v_rows: 0, ..Call::new(2, 2, 2, 3, 4, 2) };
    assert_err(c.run(dot()), Error::ShapeMismatch { what: "v", expected: 3, found: 0 });
}

#[test]
fn v_heads_differ_from_k_heads() {
    let c = Call { v_heads: 1, ..Call::new(4, 2, 2, 3, 4, 2) };
    assert_err(c.run(dot()), Error::ShapeMismatch { what: "v", expected: 2, found: 1 });
}

#[test]
fn out_rows_wrong() {
    let c = Call { out_rows: 3, ..Call::single(2, 3, 4, 2) };
    assert_err(c.run(dot()), Error::ShapeMismatch { what: "out", expected: 2, found: 3 });
    assert_err(c.no_lse().run(dot()), Error::ShapeMismatch { what: "out", expected: 2, found: 3 });
    let c = Call { out_rows: 1, ..Call::new(2, 1, 2, 3, 4, 2) };
    assert_err(c.run(dot()), Error::ShapeMismatch { what: "out", expected: 2, found: 1 });
}

#[test]
fn out_cols_wrong() {
    let c = Call { out_cols: 4, ..Call::single(2, 3, 4, 2) };
    assert_err(c.run(dot()), Error::ShapeMismatch { what: "out", expected: 2, found: 4 });
    assert_err(c.no_lse().run(dot()), Error::ShapeMismatch { what: "out", expected: 2, found: 4 });
    let c = Call { out_cols: 1, ..Call::new(2, 1, 2, 3, 4, 2) };
    assert_err(c.run(dot()), Error::ShapeMismatch { what: "out", expected: 2, found: 1 });
}

#[test]
fn out_heads_wrong() {
    let c = Call { out_heads: 2, ..Call::new(4, 2, 2, 3, 4, 2) };
    assert_err(c.run(dot()), Error::ShapeMismatch { what: "out", expected: 4, found: 2 });
    let c = Call { out_heads: 1, ..Call::new(2, 2, 2, 3, 4, 2) };
    assert_err(c.run(dot()), Error::ShapeMismatch { what: "out", expected: 2, found: 1 });
}

#[test]
fn heads_not_a_multiple_of_kv_heads() {
    let c = Call::new(3, 2, 2, 3, 4, 2);
    assert_err(c.run(dot()), Error::HeadGrouping { n_heads: 3, n_kv_heads: 2 });
    let c = Call::new(1, 2, 2, 3, 4, 2);
    assert_err(c.run(dot()), Error::HeadGrouping { n_heads: 1, n_kv_heads: 2 });
    let c = Call::new(6, 4, 1, 3, 4, 2).no_lse();
    assert_err(c.run(dot()), Error::HeadGrouping { n_heads: 6, n_kv_heads: 4 });
}

#[test]
fn zero_kv_heads_or_zero_heads() {
    let c = Call::new(2, 0, 2, 3, 4, 2);
    assert_err(c.run(dot()), Error::HeadGrouping { n_heads: 2, n_kv_heads: 0 });
    let c = Call::new(0, 0, 2, 3, 4, 2);
    assert_err(c.run(dot()), Error::HeadGrouping { n_heads: 0, n_kv_heads: 0 });
    // Zero query heads is not a positive multiple either.
    let c = Call::new(0, 1, 2, 3, 4, 2);
    assert_err(c.run(dot()), Error::HeadGrouping { n_heads: 0, n_kv_heads: 1 });
}

// ---------------------------------------------------------------------------
// Attention: scorer parameters.

#[test]
fn scale_out_of_domain() {
    let c = Call::single(2, 3, 4, 2);
    for value in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 0.0, -0.0, -1.0, -f32::MIN_POSITIVE] {
        let want = Error::InvalidParameter { what: "scale", value };
        for scorer in [Scorer::Dot { scale: Some(value) }, Scorer::NegSqDist { scale: Some(value) }] {
            assert_err(c.run(Attention::new(scorer)), want);
            assert_err(c.no_lse().run(Attention::new(scorer)), want);
            assert_err(Call::new(4, 2, 2, 3, 4, 2).run(Attention::new(scorer)), want);
        }
    }
    // Any finite positive scale is accepted, however small or large.
    for scale in [f32::MIN_POSITIVE / 4.0, 1e-30, 1.0, 1e30, f32::MAX] {
        assert_eq!(c.run(Attention::new(Scorer::Dot { scale: Some(scale) })), Ok(()));
    }
}

#[test]
fn eps_out_of_domain() {
    let c = Call::single(2, 3, 4, 2);
    for value in [-1e-3, -f32::MIN_POSITIVE, f32::NEG_INFINITY, f32::INFINITY, f32::NAN] {
        let want = Error::InvalidParameter { what: "eps", value };
        let att = Attention::new(Scorer::NegLogDist { eps: value, p: 2.0 });
        assert_err(c.run(att), want);
        assert_err(c.no_lse().run(att), want);
        assert_err(Call::new(4, 2, 2, 3, 4, 2).run(att), want);
    }
    // eps is checked before p.
    let att = Attention::new(Scorer::NegLogDist { eps: -1.0, p: -1.0 });
    assert_err(c.run(att), Error::InvalidParameter { what: "eps", value: -1.0 });
    // 0 and −0 are accepted (`eps >= 0`).
    for eps in [0.0, -0.0] {
        assert_eq!(c.run(Attention::new(Scorer::NegLogDist { eps, p: 2.0 })), Ok(()));
    }
}

#[test]
fn p_out_of_domain() {
    let c = Call::single(2, 3, 4, 2);
    for value in [0.0, -0.0, -2.0, f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let want = Error::InvalidParameter { what: "p", value };
        let att = Attention::new(Scorer::NegLogDist { eps: 1e-3, p: value });
        assert_err(c.run(att), want);
        assert_err(c.no_lse().run(att), want);
        assert_err(Call::new(4, 2, 2, 3, 4, 2).run(att), want);
    }
}

#[test]
fn additive_w_out_of_domain() {
    let c = Call::single(2, 3, 4, 2);
    // `w` must have one entry per column of the projections (d = 4).
    for w in [&[1.0f32; 3][..], &[1.0; 5], &[]] {
        let want = Error::ShapeMismatch { what: "w", expected: 4, found: w.len() };
        let att = Attention::new(Scorer::additive(w));
        assert_err(c.run(att), want);
        assert_err(c.no_lse().run(att), want);
        assert_err(Call::new(4, 2, 2, 3, 4, 2).run(att), want);
    }
    // Entries must be finite; the first non-finite one is reported.
    for value in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let w = [1.0, value, 0.0, f32::NAN];
        let want = Error::InvalidParameter { what: "w", value };
        let att = Attention::new(Scorer::additive(&w));
        assert_err(c.run(att), want);
        assert_err(Call::single(0, 3, 4, 2).run(att), want);
    }
    // ‖w‖₁ must be finite (it bounds every score), even when each entry is.
    let w = [f32::MAX, -f32::MAX, 0.0, 0.0];
    let want = Error::InvalidParameter { what: "w_l1_norm", value: f32::INFINITY };
    assert_err(c.run(Attention::new(Scorer::additive(&w))), want);
    // ‖w‖₁ = f32::MAX leaves no room for the rounding of the sum
    // (‖w‖₁ · e^{(h+1)·2⁻²⁴} must stay below f32::MAX); half of it is fine.
    let w = [f32::MAX / 2.0, -f32::MAX / 2.0, 0.0, 0.0];
    assert_err(c.run(Attention::new(Scorer::additive(&w))), want);
    let w = [f32::MAX / 4.0, -f32::MAX / 4.0, 0.0, 0.0];
    assert_eq!(c.run(Attention::new(Scorer::additive(&w))), Ok(()));
}

#[test]
fn scorer_is_checked_even_without_work() {
    // Parameters are checked at each call, also when there is nothing to do.
    let want = Error::InvalidParameter { what: "scale", value: -1.0 };
    let att = Attention::new(Scorer::Dot { scale: Some(-1.0) });
    assert_err(Call::single(0, 3, 4, 2).run(att), want);
    assert_err(Call::single(2, 0, 4, 2).run(att), want);
}

// ---------------------------------------------------------------------------
// Attention: key length and mask offset.

#[test]
fn key_len_above_n_kv() {
    let c = Call::single(2, 3, 4, 2);
    assert_err(c.run(dot().key_len(4)), Error::OutOfRange { what: "key_len", value: 4, max: 3 });
    assert_err(c.no_lse().run(dot().key_len(4)), Error::OutOfRange { what: "key_len", value: 4, max: 3 });
    assert_err(
        c.run(dot().key_len(usize::MAX)),
        Error::OutOfRange { what: "key_len", value: usize::MAX, max: 3 },
    );
    assert_err(
        Call::new(4, 2, 2, 3, 4, 2).run(dot().key_len(7)),
        Error::OutOfRange { what: "key_len", value: 7, max: 3 },
    );
    assert_err(
        Call::single(2, 0, 4, 2).run(dot().key_len(1)),
        Error::OutOfRange { what: "key_len", value: 1, max: 0 },
    );
    assert_eq!(c.run(dot().key_len(3)), Ok(()));
    assert_eq!(c.run(dot().key_len(0)), Ok(()));
}

#[test]
fn mask_offset_above_n_kv() {
    let c = Call::single(2, 3, 4, 2);
    let want = Error::OutOfRange { what: "offset", value: 4, max: 3 };
    assert_err(c.run(dot().mask(Mask::Causal { offset: 4 })), want);
    assert_err(c.no_lse().run(dot().mask(Mask::Causal { offset: 4 })), want);
    assert_err(c.run(dot().mask(Mask::Window { offset: 4, left: 1, right: 1 })), want);
    assert_err(
        Call::new(4, 2, 2, 3, 4, 2).run(dot().mask(Mask::Window { offset: usize::MAX, left: 0, right: 0 })),
        Error::OutOfRange { what: "offset", value: usize::MAX, max: 3 },
    );
    assert_eq!(c.run(dot().mask(Mask::Causal { offset: 3 })), Ok(()));
    assert_eq!(c.run(dot().mask(Mask::Window { offset: 3, left: 0, right: 0 })), Ok(()));
    // A bottom-right mask with more queries than keys saturates to offset 0.
    assert_eq!(Call::single(5, 3, 4, 2).run(dot().mask(Mask::causal_bottom_right(5, 3))), Ok(()));
}

// ---------------------------------------------------------------------------
// Attention: bias and lse.

#[test]
fn bias_rows_differ_from_n_q() {
    let b = [0.0f32; 64];
    let c = Call::single(2, 3, 4, 2);
    let bias = Bias::shared(&b, 3, 3).unwrap();
    assert_err(c.run(dot().bias(bias)), Error::ShapeMismatch { what: "bias", expected: 2, found: 3 });
    assert_err(
        c.no_lse().run(dot().bias(bias)),
        Error::ShapeMismatch { what: "bias", expected: 2, found: 3 },
    );
    let bias = Bias::new(&b, 1, 3, 0, 0).unwrap();
    assert_err(
        Call::new(2, 1, 2, 3, 4, 2).run(dot().bias(bias)),
        Error::ShapeMismatch { what: "bias", expected: 2, found: 1 },
    );
}

#[test]
fn bias_cols_differ_from_n_kv() {
    let b = [0.0f32; 64];
    let c = Call::single(2, 3, 4, 2);
    let bias = Bias::shared(&b, 2, 4).unwrap();
    assert_err(c.run(dot().bias(bias)), Error::ShapeMismatch { what: "bias", expected: 3, found: 4 });
    assert_err(
        c.no_lse().run(dot().bias(bias)),
        Error::ShapeMismatch { what: "bias", expected: 3, found: 4 },
    );
    // The bias spans all n_kv keys even when key_len is shorter.
    let bias = Bias::shared(&b, 2, 2).unwrap();
    assert_err(
        c.run(dot().key_len(2).bias(bias)),
        Error::ShapeMismatch { what: "bias", expected: 3, found: 2 },
    );
}

#[test]
fn bias_data_too_short() {
    let b = [0.0f32; 64];
    // One head: 2 × 3 dense needs 6.
    let c = Call::single(2, 3, 4, 2);
    let bias = Bias::shared(&b[..5], 2, 3).unwrap();
    assert_err(c.run(dot().bias(bias)), Error::BufferTooShort { what: "bias", needed: 6, len: 5 });
    assert_err(c.no_lse().run(dot().bias(bias)), Error::BufferTooShort { what: "bias", needed: 6, len: 5 });
    // A row stride of 5: (2 − 1)·5 + 3 = 8.
    let bias = Bias::new(&b[..7], 2, 3, 0, 5).unwrap();
    assert_err(c.run(dot().bias(bias)), Error::BufferTooShort { what: "bias", needed: 8, len: 7 });
}

#[test]
fn bias_data_too_short_for_the_heads() {
    let b = [0.0f32; 64];
    // 4 query heads (2 KV heads) of 2 × 3, a head stride of 6: the last head
    // ends at 3·6 + 6 = 24. One head's worth (6) is enough for `run`, not here.
    let c = Call::new(4, 2, 2, 3, 4, 2);
    let bias = Bias::new(&b[..6], 2, 3, 6, 3).unwrap();
    assert_eq!(Call::single(2, 3, 4, 2).run(dot().bias(bias)), Ok(()));
    assert_err(c.run(dot().bias(bias)), Error::BufferTooShort { what: "bias", needed: 24, len: 6 });
    let bias = Bias::new(&b[..23], 2, 3, 6, 3).unwrap();
    assert_err(c.run(dot().bias(bias)), Error::BufferTooShort { what: "bias", needed: 24, len: 23 });
    assert_eq!(c.run(dot().bias(Bias::new(&b[..24], 2, 3, 6, 3).unwrap())), Ok(()));
    // Head stride 0 shares one matrix across heads: 6 floats suffice.
    assert_eq!(c.run(dot().bias(Bias::new(&b[..6], 2, 3, 0, 3).unwrap())), Ok(()));
}

#[test]
fn bias_extent_overflow() {
    let b = [0.0f32; 64];
    let bias = Bias::new(&b, 2, 3, usize::MAX, 3).unwrap();
    assert_err(Call::new(2, 1, 2, 3, 4, 2).run(dot().bias(bias)), Error::Overflow { what: "bias" });
    let bias = Bias::new(&b, 2, 3, 0, usize::MAX).unwrap();
    assert_err(Call::single(2, 3, 4, 2).run(dot().bias(bias)), Error::Overflow { what: "bias" });
}

#[test]
fn lse_too_short() {
    let c = Call { lse: Some(1), ..Call::single(2, 3, 4, 2) };
    assert_err(c.run(dot()), Error::BufferTooShort { what: "lse", needed: 2, len: 1 });
    let c = Call { lse: Some(0), ..Call::single(2, 3, 4, 2) };
    assert_err(c.run(dot()), Error::BufferTooShort { what: "lse", needed: 2, len: 0 });
    // Many heads need heads · n_q entries.
    let c = Call { lse: Some(7), ..Call::new(4, 2, 2, 3, 4, 2) };
    assert_err(c.run(dot()), Error::BufferTooShort { what: "lse", needed: 8, len: 7 });
    // A longer lse is fine, and its tail is left alone.
    let c = Call { lse: Some(10), ..Call::new(4, 2, 2, 3, 4, 2) };
    let (r, _, lse) = c.run_full(dot());
    assert_eq!(r, Ok(()));
    assert!(lse[..8].iter().all(|x| x.is_finite()) && lse[8..] == [SENTINEL; 2]);
}

#[test]
fn err_leaves_output_untouched() {
    // `Call::run` asserts this for every rejected call above; here a call
    // that only fails on its last check (the lse length), after every other
    // argument was accepted.
    let b = [0.5f32; 64];
    let c = Call { lse: Some(3), ..Call::new(2, 1, 2, 3, 4, 2) };
    let att = Attention::new(Scorer::neg_sq_dist())
        .mask(Mask::Causal { offset: 1 })
        .key_len(3)
        .bias(Bias::shared(&b, 2, 3).unwrap());
    let (r, out, lse) = c.run_full(att);
    assert_err(r, Error::BufferTooShort { what: "lse", needed: 4, len: 3 });
    assert_eq!(out, [SENTINEL; 8]);
    assert_eq!(lse, [SENTINEL; 3]);
}

// ---------------------------------------------------------------------------
// Edge cases that are not errors.

fn scorers() -> [Scorer<'static>; 5] {
    [
        Scorer::dot(),
        Scorer::neg_sq_dist(),
        Scorer::neg_log_dist(),
        Scorer::NegLogDist { eps: 0.0, p: 1.0 },
        Scorer::Additive { w: &[0.5, -1.0, 0.25, 2.0] },
    ]
}

#[test]
fn no_queries_is_ok() {
    let b: [f32; 0] = [];
    for scorer in scorers() {
        for c in [Call::single(0, 3, 4, 2), Call::single(0, 3, 4, 2).no_lse(), Call::new(4, 2, 0, 3, 4, 2)] {
            assert_eq!(c.run(Attention::new(scorer)), Ok(()));
            assert_eq!(c.run(Attention::new(scorer).mask(Mask::Causal { offset: 3 }).key_len(1)), Ok(()));
            assert_eq!(c.run(Attention::new(scorer).bias(Bias::shared(&b, 0, 3).unwrap())), Ok(()));
        }
        // A longer lse is left alone.
        let (r, _, lse) = Call { lse: Some(2), ..Call::single(0, 3, 4, 2) }.run_full(Attention::new(scorer));
        assert_eq!(r, Ok(()));
        assert_eq!(lse, [SENTINEL; 2]);
    }
}

#[test]
fn no_keys_gives_zero_rows_and_neg_inf_lse() {
    let b: [f32; 0] = [];
    for scorer in scorers() {
        for c in [Call::single(3, 0, 4, 2), Call::new(4, 2, 3, 0, 4, 2)] {
            let atts = [
                Attention::new(scorer),
                Attention::new(scorer).key_len(0),
                Attention::new(scorer).mask(Mask::Causal { offset: 0 }),
                Attention::new(scorer).mask(Mask::Window { offset: 0, left: 2, right: 2 }),
                Attention::new(scorer).bias(Bias::shared(&b, 3, 0).unwrap()),
            ];
            for att in atts {
                let (r, out, lse) = c.run_full(att);
                assert_eq!(r, Ok(()), "{scorer:?} {c:?}");
                assert!(out.iter().all(|&x| x == 0.0 && x.is_sign_positive()), "{scorer:?}: out = {out:?}");
                assert!(lse.iter().all(|&x| x == f32::NEG_INFINITY), "{scorer:?}: lse = {lse:?}");
            }
        }
    }
}

/// With no keys the bias has no entries, so its length is never checked; its
/// strides must not be used to index it either (this once panicked).
#[test]
fn no_keys_with_a_strided_empty_bias_does_not_panic() {
    let b: [f32; 0] = [];
    let att = dot().bias(Bias::new(&b, 3, 0, 0, 3).unwrap());
    let (r, out, lse) = Call::single(3, 0, 4, 2).run_full(att);
    assert_eq!(r, Ok(()));
    assert_eq!(out, [0.0; 6]);
    assert_eq!(lse, [f32::NEG_INFINITY; 3]);
    let att = dot().bias(Bias::new(&b, 3, 0, 5, 0).unwrap());
    assert_eq!(Call::new(2, 1, 3, 0, 4, 2).run(att), Ok(()));
}

// ---------------------------------------------------------------------------
// merge.

#[test]
fn merge_rejects_mismatched_partials() {
    let b = [1.0f32; 8];
    let lse = [0.0f32; 4];
    let mut a = [SENTINEL; 8];
    let mut la = [SENTINEL; 4];
    let want = Error::ShapeMismatch { what: "out_b", expected: 4, found: 2 };
    assert_err(
        merge(MatMut::dense(&mut a, 4, 2).unwrap(), &mut la, MatRef::dense(&b, 2, 4).unwrap(), &lse),
        want,
    );
    let want = Error::ShapeMismatch { what: "out_b", expected: 2, found: 1 };
    assert_err(
        merge(MatMut::dense(&mut a, 4, 2).unwrap(), &mut la, MatRef::dense(&b, 4, 1).unwrap(), &lse),
        want,
    );
    let want = Error::BufferTooShort { what: "lse_a", needed: 4, len: 3 };
    assert_err(
        merge(MatMut::dense(&mut a, 4, 2).unwrap(), &mut la[..3], MatRef::dense(&b, 4, 2).unwrap(), &lse),
        want,
    );
    let want = Error::BufferTooShort { what: "lse_b", needed: 4, len: 3 };
    assert_err(
        merge(MatMut::dense(&mut a, 4, 2).unwrap(), &mut la, MatRef::dense(&b, 4, 2).unwrap(), &lse[..3]),
        want,
    );
    assert_eq!(a, [SENTINEL; 8], "a rejected merge wrote its output");
    assert_eq!(la, [SENTINEL; 4], "a rejected merge wrote its lse");
}

// ---------------------------------------------------------------------------
// The Error type.

fn one_of_each() -> [Error; 8] {
    [
        Error::ZeroDim { what: "matrix" },
        Error::BufferTooShort { what: "lse", needed: 8, len: 7 },
        Error::StrideTooSmall { what: "heads", stride: 3, min: 4 },
        Error::Overflow { what: "bias" },
        Error::ShapeMismatch { what: "out", expected: 2, found: 3 },
        Error::HeadGrouping { n_heads: 3, n_kv_heads: 2 },
        Error::InvalidParameter { what: "scale", value: f32::NAN },
        Error::OutOfRange { what: "key_len", value: 4, max: 3 },
    ]
}

#[test]
fn display_names_the_argument() {
    for e in one_of_each() {
        let msg = e.to_string();
        assert!(!msg.is_empty());
        let names: &[&str] = match e {
            Error::ZeroDim { what } | Error::Overflow { what } => &[what],
            Error::BufferTooShort { what, .. } | Error::StrideTooSmall { what, .. } => &[what],
            Error::ShapeMismatch { what, .. } | Error::InvalidParameter { what, .. } => &[what],
            Error::OutOfRange { what, .. } => &[what],
            Error::HeadGrouping { .. } => &["3", "2"],
            _ => unreachable!("a variant this test does not know"),
        };
        for name in names {
            assert!(msg.contains(name), "{e:?} displays as {msg:?}, which does not name {name:?}");
        }
    }
    // The numbers the variant carries appear too.
    let msg = Error::BufferTooShort { what: "lse", needed: 8, len: 7 }.to_string();
    assert!(msg.contains('8') && msg.contains('7'), "{msg}");
    let msg = Error::OutOfRange { what: "offset", value: 9, max: 5 }.to_string();
    assert!(msg.contains("offset") && msg.contains('9') && msg.contains('5'), "{msg}");
}

#[test]
fn is_a_core_error() {
    fn assert_error<E: core::error::Error + Send + Sync + Copy + 'static>() {}
    assert_error::<Error>();
    for e in one_of_each() {
        let dyn_err: &dyn core::error::Error = &e;
        assert!(dyn_err.source().is_none());
        assert_eq!(dyn_err.to_string(), e.to_string());
        let boxed: Box<dyn std::error::Error + Send + Sync> = e.into();
        assert_eq!(boxed.to_string(), e.to_string());
    }
    // `?` converts it into a boxed error.
    fn f() -> Result<(), Box<dyn std::error::Error>> {
        MatRef::<f32>::dense(&[], 1, 1)?;
        Ok(())
    }
    assert_eq!(
        f().unwrap_err().to_string(),
        Error::BufferTooShort { what: "matrix", needed: 1, len: 0 }.to_string()
    );
}
