//! Random shapes: every kernel against the f64 reference and the scalar path
//! (tests/common), with d from 1 to 300 and n_q, n_kv from 1 to 600, so that
//! every edge of the tiling is hit (partial key tiles, partial row blocks and
//! micro-blocks, heads wider than a packed tile, d_v not a multiple of any
//! lane count), with K and V stored as `f32`, `f16` or `bf16`. Cases: `STREAMATTN_QC_CASES` (default 40).

// Test and example code is held to clippy's default lints (Cargo.toml).
#![allow(clippy::pedantic)]

mod common;

use common::Path;
use common::{check, Case, Elem, Layout, ADDITIVE};
use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};
use streamattn::{Mask, Scorer};

#[derive(Clone, Debug)]
struct Shape {
    heads: usize,
    kv_heads: usize,
    n_q: usize,
    n_kv: usize,
    d: usize,
    dv: usize,
    scorer: Scorer<'static>,
    mask: Mask,
    key_len: Option<usize>,
    layout: Layout,
    bias: bool,
    /// K and V element type.
    elem: Elem,
    seed: u64,
}

fn pick(g: &mut Gen, lo: usize, hi: usize) -> usize {
    lo + usize::arbitrary(g) % (hi - lo + 1)
}

impl Arbitrary for Shape {
    fn arbitrary(g: &mut Gen) -> Shape {
        let (heads, kv_heads) = *g.choose(&[(1, 1), (2, 1), (3, 3), (4, 2)]).unwrap();
        // Mostly small, sometimes up to the limits.
        let big = bool::arbitrary(g);
        let n_q = pick(g, 1, if big { 600 } else { 40 });
        let n_kv = pick(g, 1, if big { 600 } else { 200 });
        let d = if u8::arbitrary(g) % 4 == 0 { pick(g, 257, 300) } else { pick(g, 1, 160) };
        let dv = pick(g, 1, 150);
        let scorer = *g
            .choose(&[
                Scorer::dot(),
                Scorer::Dot { scale: Some(0.05) },
                Scorer::neg_sq_dist(),
                Scorer::NegSqDist { scale: Some(0.5) },
                Scorer::neg_log_dist(),
                Scorer::NegLogDist { eps: 0.0, p: 2.0 },
                Scorer::NegLogDist { eps: 0.1, p: 1.0 },
                Scorer::NegLogDist { eps: 1e-3, p: 3.0 },
                ADDITIVE,
            ])
            .unwrap();
        let offset = pick(g, 0, n_kv);
        let mask = match u8::arbitrary(g) % 4 {
            0 => Mask::None,
            1 => Mask::Causal { offset },
            2 => Mask::causal_bottom_right(n_q, n_kv),
            _ => Mask::Window { offset, left: pick(g, 0, 300), right: pick(g, 0, 100) },
        };
        let key_len = if bool::arbitrary(g) { Some(pick(g, 0, n_kv)) } else { None };
        let layout = *g.choose(&[Layout::HeadsMajor, Layout::SeqMajor, Layout::Padded(5)]).unwrap();
        Shape {
            heads,
            kv_heads,
            n_q,
            n_kv,
            d,
            dv,
            scorer,
            mask,
            key_len,
            layout,
            bias: u8::arbitrary(g) % 4 == 0,
            elem: *g.choose(&Elem::ALL).unwrap(),
            seed: u64::arbitrary(g),
        }
    }
}

impl Shape {
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
        .with_mask(self.mask)
        .with_layout(self.layout)
        .with_elem(self.elem);
        if let Some(n) = self.key_len {
            c = c.with_key_len(n);
        }
        if self.bias {
            c = c.with_random_bias(self.seed ^ 1, 2.0, self.seed.is_multiple_of(2));
        }
        c
    }
}

fn cases() -> u64 {
    std::env::var("STREAMATTN_QC_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(40)
}

#[test]
fn random_shapes_match_the_reference() {
    fn prop(s: Shape) -> TestResult {
        match std::panic::catch_unwind(|| check(&s.case())) {
            Ok(()) => TestResult::passed(),
            Err(e) => {
                let msg = e.downcast_ref::<String>().cloned().unwrap_or_default();
                TestResult::error(format!("{s:?}: {msg}"))
            }
        }
    }
    QuickCheck::new().tests(cases()).max_tests(cases() * 2).quickcheck(prop as fn(Shape) -> TestResult);
}

/// Tiling does not change the result beyond the tolerance: the same rows
/// computed in one call (blocks of 256 rows, micro-blocks of 4 or 6) and one
/// row per call (the causal offset shifted to match) agree with each other
/// within twice the reference tolerance, for every width.
#[test]
fn row_blocking_does_not_change_results() {
    for scorer in [Scorer::dot(), Scorer::neg_sq_dist(), Scorer::neg_log_dist()] {
        let (n_q, n_kv) = (300, 333);
        let case = Case::random(5, 1, 1, n_q, n_kv, 24, 10, scorer).with_mask(Mask::Causal { offset: 20 });
        let r = case.reference();
        for kernel in common::tiled() {
            let (all, _) = case.run(kernel);
            for i in (0..n_q).step_by(37) {
                let mut one = Case::random(5, 1, 1, n_q, n_kv, 24, 10, scorer);
                one.q = case.qrow(0, i).to_vec();
                one.n_q = 1;
                one.mask = Mask::Causal { offset: 20 + i };
                let (row, _) = one.run(kernel);
                for c in 0..10 {
                    let (a, b) = (all[i * 10 + c] as f64, row[c] as f64);
                    let t = 2.0 * r.tol[i * 10 + c];
                    assert!((a - b).abs() <= t, "{kernel:?} {scorer:?} row {i}: {a} vs {b} (tol {t})");
                }
            }
        }
        // And the scalar path matches the reference on the whole problem.
        let (s, sl) = case.run(Path::Scalar);
        r.assert_close(&s, &sl, 1.0, "scalar");
    }
}
