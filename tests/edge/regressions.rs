//! Inputs the fuzz targets found, kept as regression tests.

use crate::common::{check, Case};
use crate::support::kernels;
use streamattn::{Mask, Scorer};

/// Inputs the `api` fuzz target found (fuzz/README.md, "Known bugs"), now
/// fixed: each case failed before its fix.
#[test]
fn fuzz_regressions() {
    // key-range-overflow: i + offset beyond usize::MAX must not saturate early.
    let m = Mask::Window { offset: 10, left: 20, right: 0 };
    assert_eq!(m.key_range(usize::MAX, usize::MAX), usize::MAX - 10..usize::MAX);
    assert_eq!(Mask::Causal { offset: usize::MAX }.key_range(usize::MAX, 7), 0..7);
    // logdist-tiny-p: p/2 underflows to 0; 0^p is still 0, d^p is 1 elsewhere.
    // logdist-huge-eps: 1/(eps + d^p) near 2^-128 must not overflow on inversion.
    for scorer in [
        Scorer::NegLogDist { eps: 1e-3, p: f32::from_bits(1) },
        Scorer::NegLogDist { eps: f32::MAX / 2.0, p: 2.0 },
        Scorer::NegLogDist { eps: 1e30, p: 1.0 },
    ] {
        for n_q in [3, 12] {
            let mut case = Case::random(1700, 1, 1, n_q, 50, 4, 3, scorer);
            let key = case.krow(0, 7).to_vec();
            case.q[..4].copy_from_slice(&key); // an exact match in row 0
            check(&case);
        }
    }
    // heads-loop: n_q = 0 returns at once, however many (empty) heads.
    let v = streamattn::HeadsRef::<f32>::new(&[], usize::MAX, 0, 1, 1, 1).unwrap();
    for kernel in kernels() {
        let attn = kernel.set(streamattn::Attention::new(Scorer::dot()));
        let o = streamattn::HeadsMut::new(&mut [], usize::MAX, 0, 1, 1, 1).unwrap();
        assert_eq!(attn.run_heads(v, v, v, o, None), Ok(()));
    }
    // logdist-tiny-p-eps0: with eps = 0 the scalar path scored −(p/2)·ln d²,
    // and p/2 = 0 on an exact match gave 0·(−∞) = NaN instead of +∞.
    let mut case =
        Case::random(1701, 1, 1, 1, 1, 1, 1, Scorer::NegLogDist { eps: 0.0, p: f32::from_bits(1) });
    (case.q, case.k, case.v) = (vec![1.0], vec![1.0], vec![5.0]);
    for kernel in kernels() {
        assert_eq!(case.run(kernel), (vec![5.0], vec![f32::INFINITY]), "{kernel:?}");
    }
    // additive-l1-overflow: ‖w‖₁ ≤ f32::MAX in f64 was accepted, but the f32
    // sum of the scores rounds up at each step and reached +∞. Such a `w` is
    // now rejected (‖w‖₁ · e^{(h+1)·2⁻²⁴} > f32::MAX); the largest accepted
    // ones, with every tangent 1 or −1, give finite scores in every kernel.
    let w = [
        2f32.powi(127),
        2f32.powi(103) + 2f32.powi(80),
        2f32.powi(103) + 2f32.powi(80),
        2f32.powi(127) - 2f32.powi(105) - 2f32.powi(103),
    ];
    let c = Case::random(1702, 1, 1, 1, 2, 4, 1, Scorer::additive(Vec::from(w).leak()));
    let res = c.attention().run(
        streamattn::MatRef::dense(&c.q, 1, 4).unwrap(),
        streamattn::MatRef::dense(&c.k, 2, 4).unwrap(),
        streamattn::MatRef::dense(&c.v, 2, 1).unwrap(),
        streamattn::MatMut::dense(&mut [0.0], 1, 1).unwrap(),
    );
    assert_eq!(res, Err(streamattn::Error::InvalidParameter { what: "w_l1_norm", value: f32::INFINITY }));
    for sign in [1.0f32, -1.0] {
        // Four equal entries at the largest f32 the check accepts.
        let limit = f32::MAX as f64 / 4.0 / (5.0 * 2f64.powi(-24)).exp();
        let mut x = limit as f32;
        if x as f64 > limit {
            x = f32::from_bits(x.to_bits() - 1);
        }
        let w: &'static [f32] = vec![sign * x; 4].leak();
        let mut case = Case::random(1703, 1, 1, 1, 2, 4, 2, Scorer::additive(w));
        case.q = vec![10.0; 4]; // every tangent ±1: the score is ±4x
        case.k = vec![10.0, 10.0, 10.0, 10.0, -10.0, -10.0, -10.0, -10.0];
        for kernel in kernels() {
            let (out, lse) = case.run(kernel);
            assert!(
                lse[0].is_finite() && out.iter().all(|o| o.is_finite()),
                "{kernel:?} sign {sign}: {out:?} {lse:?}"
            );
        }
        let up = vec![f32::from_bits(x.to_bits() + 1) * sign; 4];
        let c = Case::random(1704, 1, 1, 1, 2, 4, 2, Scorer::additive(up.leak()));
        let err = c.attention().run(
            streamattn::MatRef::dense(&c.q, 1, 4).unwrap(),
            streamattn::MatRef::dense(&c.k, 2, 4).unwrap(),
            streamattn::MatRef::dense(&c.v, 2, 2).unwrap(),
            streamattn::MatMut::dense(&mut [0.0; 2], 1, 2).unwrap(),
        );
        assert!(err.is_err(), "one ulp above the limit must be rejected");
    }
}
