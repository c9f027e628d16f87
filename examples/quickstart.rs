//! Runs the four scorers on one small deterministic problem and prints what
//! they return.
//!
//! Keys are 64 points on an 8 × 8 grid in the plane, each key's value is a
//! smooth function of its position, and the queries are a few points of the
//! plane, one of them exactly on a key. Attention then acts as an
//! interpolator: each scorer weighs the keys differently.
//!
//! `Additive` scores projections, not the points: here (untrained) projections
//! with a bias make it a bump around each key, `s = β Σ_c [tanh(u_c + 1) −
//! tanh(u_c − 1)]` with `u_c = (q_c − k_c)/σ`: the projected query is
//! `a = (q/σ + 1, q/σ − 1)`, the projected key `b = (−k/σ, −k/σ)` and
//! `w = β·(1, 1, −1, −1)` (h = 2d = 4).
//!
//! Run: `cargo run --release --example quickstart`

// Test and example code is held to clippy's default lints (Cargo.toml).
#![allow(clippy::pedantic)]

use streamattn::{bf16, f16, Attention, Element, MatMut, MatRef, Scorer};

fn f(x: f32, y: f32) -> f32 {
    (1.5 * x).sin() + 0.5 * (2.0 * y).cos()
}

fn main() -> Result<(), streamattn::Error> {
    let d = 2;
    // 64 keys on the grid {0, 0.5, ..., 3.5}², values f(key).
    let keys: Vec<f32> = (0..64).flat_map(|j| [0.5 * (j % 8) as f32, 0.5 * (j / 8) as f32]).collect();
    let values: Vec<f32> = keys.chunks(2).map(|k| f(k[0], k[1])).collect();
    // Query 2 is exactly key 19 = (1.5, 1.0).
    let queries = [0.3f32, 0.2, 1.75, 2.25, 1.5, 1.0, 3.1, 0.4];
    let n_q = queries.len() / d;

    // Additive: projections of width h = 2d with a bias (module docs).
    let (sigma, beta, h) = (0.5f32, 4.0f32, 2 * d);
    let proj_q: Vec<f32> = queries
        .chunks(d)
        .flat_map(|q| [q[0] / sigma + 1.0, q[1] / sigma + 1.0, q[0] / sigma - 1.0, q[1] / sigma - 1.0])
        .collect();
    let proj_k: Vec<f32> =
        keys.chunks(d).flat_map(|k| [-k[0] / sigma, -k[1] / sigma, -k[0] / sigma, -k[1] / sigma]).collect();
    let w = [beta, beta, -beta, -beta];

    let scorers = [
        ("Dot", Scorer::dot()),
        ("NegSqDist", Scorer::NegSqDist { scale: Some(4.0) }),
        ("NegLogDist", Scorer::neg_log_dist()),
        ("Additive", Scorer::additive(&w)),
    ];
    let mut outputs = Vec::new();
    // The tiled kernel runs at the best instruction-set level this CPU has.
    println!("kernels at {}\n", Attention::new(Scorer::dot()).level());
    println!(
        "query          f(query)   {:>10} {:>10} {:>10} {:>10}",
        "Dot", "NegSqDist", "NegLogDist", "Additive"
    );
    for (_, scorer) in scorers {
        let mut out = vec![0.0f32; n_q];
        let mut lse = vec![0.0f32; n_q];
        let (q, k, width) = if let Scorer::Additive { .. } = scorer {
            (&proj_q, &proj_k, h)
        } else {
            (&queries.to_vec(), &keys, d)
        };
        Attention::new(scorer).run_lse(
            MatRef::dense(q, n_q, width)?,
            MatRef::dense(k, 64, width)?,
            MatRef::dense(&values, 64, 1)?,
            MatMut::dense(&mut out, n_q, 1)?,
            &mut lse,
        )?;
        outputs.push((out, lse));
    }
    for i in 0..n_q {
        let (x, y) = (queries[2 * i], queries[2 * i + 1]);
        print!("({x:4.2}, {y:4.2})   {:9.5} ", f(x, y));
        for (out, _) in &outputs {
            print!("  {:9.5}", out[i]);
        }
        println!();
    }

    println!("\nlargest difference between scorers over the {n_q} queries:");
    for a in 0..scorers.len() {
        for b in a + 1..scorers.len() {
            let diff = outputs[a].0.iter().zip(&outputs[b].0).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
            println!("  {:>10} vs {:<10} {diff:.5}", scorers[a].0, scorers[b].0);
        }
    }
    println!("\nlargest error against f(query):");
    for (s, (out, _)) in scorers.iter().zip(&outputs) {
        let err =
            (0..n_q).map(|i| (out[i] - f(queries[2 * i], queries[2 * i + 1])).abs()).fold(0.0, f32::max);
        println!("  {:>10} {err:.5}", s.0);
    }

    let (idw, lse) = &outputs[2];
    println!(
        "\ninverse distance weighting: query 2 equals key 19, whose value is {:.5};\n\
         NegLogDist returns {:.5} (|difference| {:.2e}), with log-sum-exp {:.3} ≈ ln(1/eps) = {:.3}",
        values[19],
        idw[2],
        (idw[2] - values[19]).abs(),
        lse[2],
        (1e3f32).ln()
    );

    // The same keys and values stored as 16-bit floats, as a runtime's KV
    // cache often is: the kernels widen them exactly and compute in f32, so
    // the outputs move only by the rounding of the stored values.
    println!("\nkeys and values stored as f16 / bf16: largest difference from the f32 outputs:");
    for ((name, scorer), (out32, _)) in scorers.iter().zip(&outputs) {
        let (q, k, width) = if let Scorer::Additive { .. } = scorer {
            (&proj_q, &proj_k, h)
        } else {
            (&queries.to_vec(), &keys, d)
        };
        let diff = |out: &[f32]| out.iter().zip(out32).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
        let o16 = run_stored(*scorer, q, &cast(k, f16::from_f32), &cast(&values, f16::from_f32), n_q, width)?;
        let ob16 =
            run_stored(*scorer, q, &cast(k, bf16::from_f32), &cast(&values, bf16::from_f32), n_q, width)?;
        println!("  {name:>10} f16 {:.2e}   bf16 {:.2e}", diff(&o16), diff(&ob16));
    }
    Ok(())
}

fn cast<T>(x: &[f32], to: fn(f32) -> T) -> Vec<T> {
    x.iter().map(|&v| to(v)).collect()
}

/// One head with K and V stored as `T`, one value column.
fn run_stored<T: Element>(
    scorer: Scorer<'_>,
    q: &[f32],
    k: &[T],
    v: &[T],
    n_q: usize,
    width: usize,
) -> Result<Vec<f32>, streamattn::Error> {
    let n_kv = v.len();
    let mut out = vec![0.0f32; n_q];
    Attention::new(scorer).run(
        MatRef::dense(q, n_q, width)?,
        MatRef::dense(k, n_kv, width)?,
        MatRef::dense(v, n_kv, 1)?,
        MatMut::dense(&mut out, n_q, 1)?,
    )?;
    Ok(out)
}
