//! Keys and values stored as 16-bit floats (`f16`, `bf16`): every kernel
//! and dispatch level against the f64 reference and against the scalar path
//! (`common::check`).
//!
//! # Tolerance
//!
//! A 16-bit cache holds values that are each exactly an f32, and the crate
//! widens them exactly before any arithmetic. So the case's data are rounded
//! to the element type first (`Case::with_elem`), the reference is
//! evaluated on those rounded values as the exact inputs, and only the
//! crate's f32 arithmetic rounds: the tolerance of tests/common applies
//! unchanged (with its norms, spreads and maxima taken from the rounded
//! data). Nothing is widened for 16-bit inputs.

// Test and example code is held to clippy's default lints (Cargo.toml).
#![allow(clippy::pedantic)]

mod common;

use common::{check, Case, Elem, Layout, Path, Rng};
use streamattn::{
    bf16, f16, key_norms, Attention, Element, HeadsMut, HeadsRef, Level, Mask, MatMut, MatRef, Scorer,
};

/// (n_q, n_kv, d, d_v): one-row and few-row decode passes, prefill blocks,
/// dimensions that are not lane multiples, a head wider than a packed tile.
const SHAPES: &[(usize, usize, usize, usize)] = &[
    (1, 300, 64, 64),
    (1, 37, 3, 5),
    (3, 129, 17, 33),
    (8, 200, 128, 128),
    (17, 65, 15, 17),
    (40, 150, 64, 64),
    (9, 70, 300, 40),
    (2, 40, 290, 7),
];

fn masks(n_q: usize, n_kv: usize) -> [(Mask, Option<usize>); 3] {
    [
        (Mask::None, None),
        (Mask::causal_bottom_right(n_q, n_kv), None),
        (Mask::Window { offset: n_kv.saturating_sub(n_q), left: 20, right: 2 }, Some(n_kv - n_kv / 5)),
    ]
}

#[test]
fn every_scorer_mask_and_shape() {
    let mut seed = 7000;
    for &(n_q, n_kv, d, dv) in SHAPES {
        for scorer in common::SCORERS {
            for (mask, key_len) in masks(n_q, n_kv) {
                seed += 1;
                let elem = [Elem::F16, Elem::Bf16][seed as usize % 2];
                let mut case =
                    Case::random(seed, 1, 1, n_q, n_kv, d, dv, scorer).with_mask(mask).with_elem(elem);
                if let Some(n) = key_len {
                    case = case.with_key_len(n);
                }
                check(&case);
            }
        }
    }
}

#[test]
fn grouped_heads_layouts_bias_and_cached_norms() {
    let layouts = [Layout::HeadsMajor, Layout::SeqMajor, Layout::Padded(3)];
    let mut seed = 8000;
    for elem in [Elem::F16, Elem::Bf16] {
        for layout in layouts {
            for (heads, kv_heads, n_q) in [(4, 2, 1), (8, 1, 1), (6, 2, 5), (2, 2, 20)] {
                for scorer in [Scorer::dot(), Scorer::neg_sq_dist(), Scorer::neg_log_dist(), common::ADDITIVE]
                {
                    seed += 1;
                    let mut case = Case::random(seed, heads, kv_heads, n_q, 90, 24, 13, scorer)
                        .with_layout(layout)
                        .with_elem(elem)
                        .with_random_bias(seed, 2.0, seed % 2 == 0);
                    if seed % 3 != 0 {
                        case = case.with_cached_norms();
                    }
                    check(&case);
                }
            }
        }
    }
}

#[test]
fn far_from_the_origin_and_wide_ranges() {
    // Keys and values spanning the 16-bit ranges: f16 up to about 6e4 (its
    // largest finite value is 65504), bf16 to 1e30; clusters far from the
    // origin for the distance scorers.
    let mut seed = 9000;
    for elem in [Elem::F16, Elem::Bf16] {
        let amp = if elem == Elem::F16 { 6e4 } else { 1e30 };
        for scorer in [
            Scorer::Dot { scale: Some(1e-9) },
            Scorer::NegSqDist { scale: Some(0.05) },
            Scorer::neg_log_dist(),
        ] {
            for n_q in [1, 30] {
                seed += 1;
                let mut case = Case::random(seed, 1, 1, n_q, 100, 32, 16, scorer);
                let mut r = Rng::new(seed);
                case.v.iter_mut().for_each(|x| *x *= amp * r.sym().abs());
                if matches!(scorer, Scorer::NegSqDist { .. } | Scorer::NegLogDist { .. }) {
                    // A cluster at 1000 × its spread.
                    let centre: Vec<f32> = (0..case.d).map(|_| 1000.0 * r.sym()).collect();
                    for (t, x) in case.q.iter_mut().chain(case.k.iter_mut()).enumerate() {
                        *x += centre[t % case.d];
                    }
                } else {
                    case.k.iter_mut().for_each(|x| *x *= 1e4);
                    case.q.iter_mut().for_each(|x| *x *= 1e4);
                }
                check(&case.with_elem(elem));
            }
        }
    }
}

/// The 16-bit entries take the same views and return the same errors as
/// f32, and a 16-bit cache gives exactly the result of an f32 cache holding
/// the same (widened) values: the kernels widen exactly and then do the same
/// arithmetic (except where a level reads `bf16` in pairs of vectors, which
/// orders the sums differently).
#[test]
fn a_16_bit_cache_computes_what_its_widened_f32_copy_computes() {
    let (n_q, n_kv, d) = (5, 77, 40);
    let mut r = Rng::new(42);
    let q = r.vec(n_q * d, 1.0);
    let (k, v) = (r.vec(n_kv * d, 1.0), r.vec(n_kv * d, 1.0));
    let k16: Vec<f16> = k.iter().map(|&x| f16::from_f32(x)).collect();
    let v16: Vec<f16> = v.iter().map(|&x| f16::from_f32(x)).collect();
    let kb: Vec<bf16> = k.iter().map(|&x| bf16::from_f32(x)).collect();
    let vb: Vec<bf16> = v.iter().map(|&x| bf16::from_f32(x)).collect();
    for scorer in common::SCORERS {
        let scorer = common::instantiate(scorer, d, 1);
        for kernel in common::paths() {
            for n in [1, n_q] {
                let a = kernel.set(Attention::new(scorer).mask(Mask::causal_bottom_right(n, n_kv)));
                let qv = MatRef::dense(&q[..n * d], n, d).unwrap();
                let run = |k: MatRef<'_, f32>, v: MatRef<'_, f32>, o: &mut [f32], l: &mut [f32]| {
                    a.run_lse(qv, k, v, MatMut::dense(o, n, d).unwrap(), l).unwrap()
                };
                let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                // f16 and bf16 against their widened f32 copies.
                for (bf16, (k32, v32, o16, l16)) in [false, true].into_iter().zip([
                    {
                        let (mut o, mut l) = (vec![0.0; n * d], vec![0.0; n]);
                        let (kd, vd) =
                            (MatRef::dense(&k16, n_kv, d).unwrap(), MatRef::dense(&v16, n_kv, d).unwrap());
                        a.run_lse(qv, kd, vd, MatMut::dense(&mut o, n, d).unwrap(), &mut l).unwrap();
                        (widen(&k16), widen(&v16), o, l)
                    },
                    {
                        let (mut o, mut l) = (vec![0.0; n * d], vec![0.0; n]);
                        let (kd, vd) =
                            (MatRef::dense(&kb, n_kv, d).unwrap(), MatRef::dense(&vb, n_kv, d).unwrap());
                        a.run_lse(qv, kd, vd, MatMut::dense(&mut o, n, d).unwrap(), &mut l).unwrap();
                        (widen(&kb), widen(&vb), o, l)
                    },
                ]) {
                    let (mut o32, mut l32) = (vec![0.0; n * d], vec![0.0; n]);
                    run(
                        MatRef::dense(&k32, n_kv, d).unwrap(),
                        MatRef::dense(&v32, n_kv, d).unwrap(),
                        &mut o32,
                        &mut l32,
                    );
                    if bf16 && kernel == Path::Tiled(Level::Avx2) {
                        // The AVX2 decode pass reads `bf16` keys and values
                        // in pairs of vectors, even columns then odd ones,
                        // so it adds the columns of a dot product in
                        // another order than for the f32 copy: it is held
                        // to the f64 bound instead (every_scorer_mask_and_shape).
                        continue;
                    }
                    assert_eq!(bits(&o16), bits(&o32), "{scorer:?} {kernel:?} n_q = {n}: outputs differ");
                    assert_eq!(bits(&l16), bits(&l32), "{scorer:?} {kernel:?} n_q = {n}: lse differ");
                }
            }
        }
    }
    // The same checks, the same errors.
    let a = Attention::new(Scorer::dot());
    let mut out = vec![0.0f32; n_q * d];
    let err = a
        .run(
            MatRef::dense(&q, n_q, d).unwrap(),
            MatRef::dense(&k16, n_kv, d).unwrap(),
            MatRef::dense(&v16[..(n_kv - 1) * d], n_kv - 1, d).unwrap(),
            MatMut::dense(&mut out, n_q, d).unwrap(),
        )
        .unwrap_err();
    assert_eq!(err, streamattn::Error::ShapeMismatch { what: "v", expected: n_kv, found: n_kv - 1 });
    assert!(out.iter().all(|&x| x == 0.0), "an error wrote the output");
    assert_eq!(
        MatRef::new(&k16[..10], 2, 6, 6).unwrap_err(),
        streamattn::Error::BufferTooShort { what: "matrix", needed: 12, len: 10 }
    );
}

fn widen<T: Element>(x: &[T]) -> Vec<f32> {
    x.iter().map(|&v| v.to_f32()).collect()
}

/// `key_norms` of a 16-bit cache: the norms of the stored values, summed as
/// for f32 (bit for bit those of the widened copy).
#[test]
fn key_norms_of_a_16_bit_cache_are_those_of_the_stored_values() {
    let (n, d) = (33, 70);
    let k: Vec<bf16> = Rng::new(5).vec(2 * n * d, 3.0).iter().map(|&x| bf16::from_f32(x)).collect();
    let k32: Vec<f32> = k.iter().map(|x| x.to_f32()).collect();
    let (mut a, mut b) = (vec![0.0f32; 2 * n], vec![0.0f32; 2 * n]);
    key_norms(HeadsRef::heads_major(&k, 2, n, d).unwrap(), HeadsMut::heads_major(&mut a, 2, n, 1).unwrap())
        .unwrap();
    key_norms(HeadsRef::heads_major(&k32, 2, n, d).unwrap(), HeadsMut::heads_major(&mut b, 2, n, 1).unwrap())
        .unwrap();
    assert_eq!(a, b);
    for j in 0..2 * n {
        let exact: f64 = k32[j * d..][..d].iter().map(|&x| (x as f64).powi(2)).sum();
        assert!((a[j] as f64 - exact).abs() <= common::gamma(d) * exact, "key {j}: {} vs {exact}", a[j]);
    }
}
