//! Runs the four scorers on two small synthetic tasks and on one timing
//! shape, and prints side by side what each does: the task error, how
//! sharply it concentrates its weights (entropy), and the time per call.
//!
//! Run: `cargo run --release --example compare_scorers` (the kernels run at
//! the best level the CPU has). It takes a few seconds, most of them in the `Additive` scorer.
//!
//! # The tasks
//!
//! 1. **Interpolation.** 2048 prototype points `x_j` uniform in `[−1, 1]⁴` are
//!    the keys, their values are `f(x_j)` for a smooth `f: R⁴ → R²` (a sum of
//!    sines, printed with the table), and the queries are other uniform
//!    points. The attention output estimates `f(query)`; the error is its
//!    RMSE against the true `f` over both output columns. For scale, two
//!    estimates that are not attention are printed too: the mean of the
//!    prototype values, and the value of the nearest prototype.
//! 2. **Retrieval.** 1024 keys uniform in `[−1, 1]³²`; each query is one of
//!    them plus noise uniform in `[−1, 1]` per coordinate (the noise moves a
//!    query by about 3.3; keys are about 4.6 apart). The values are one-hot
//!    (`v_j = e_j`, `d_v = 1024`), so the output of a query *is* its row of
//!    weights: the query is answered when the largest output is at the right
//!    key, and the mean weight on the right key is printed too. For scale:
//!    how often the exact nearest key (f64, brute force) is the right one.
//!
//! # What is fair about it
//!
//! Every scorer gets the same treatment: a grid search of its parameters on
//! validation queries drawn apart from the test queries the tables report,
//! over the same grids in both tasks, and nothing else is tuned:
//!
//! - `Dot`, `NegSqDist`: `scale = 2^k`, `k = −8..=8` and `k = −8..=12`;
//! - `NegLogDist`: `eps ∈ {0, 1e-6, 1e-3, 1}` × `p ∈ {1, 2, 3, 4, 6, 8, 12,
//!   16, 24, 32, 48, 64, 96, 128}`;
//! - `Additive`: `c ∈ {1/8, 1/4, 1/2, 1, 2, 4}` × `κ = 2^k`, `k = −2..=7`
//!   (below).
//!
//! The criterion is the validation RMSE (interpolation), and the mean of
//! `ln` of the weight the kernel puts on the right key (retrieval: a
//! log-likelihood, which unlike accuracy also punishes confident mistakes;
//! weights are floored at `f32::MIN_POSITIVE` before the `ln`). A choice at
//! an end of a searched range is marked `†`: a wider range might do better
//! (`eps = 0` is not marked, it is the end of the domain).
//!
//! (Writing this example found that `NegLogDist` with `eps > 0` and large `p`
//! overflowed `d^p` in f32 once `d > f32::MAX^{1/p}`, giving such keys weight
//! 0; the kernels now work with `ln d^p = (p/2)·ln d²` there, see
//! `large_powers_do_not_overflow` in tests/edge/magnitudes.rs.)
//!
//! `Additive` scores `Σ_c w_c tanh(a_c + b_c)` on projections `a = W q`,
//! `b = U k`, which in practice are learned. Here they are set by hand to a
//! construction with a plain meaning: a difference of two shifted tanh,
//! `g(x) = tanh(x + δ) − tanh(x − δ)`, is a bump centred at 0, so with
//! projections of width `h = 2d`, `a = (c q + δ, c q − δ)` (the `δ` enters
//! through a constant 1 appended to each query), `b = (−c k, −c k)` and
//! `w = (λ, …, λ, −λ, …, −λ)`, the score is `λ Σ_c g(c (q_c − k_c))`: a sum
//! of per-coordinate bumps, largest when `q = k`. Near 0,
//! `g(x) ≈ 2 tanh δ − 2 tanh δ sech²δ · x²`, so the score is, up to a
//! constant, `−κ ‖q − k‖²` with `κ = 2 tanh δ sech²δ · λ c²` for keys close
//! to the query: `κ` is the `NegSqDist` scale it matches there, and the
//! search runs over `c` and `κ` (`λ` follows). Small `c` is the `NegSqDist`
//! limit; with larger `c` each coordinate's bump saturates, so a coordinate
//! that is far off costs a bounded amount. `δ = 1` is fixed. The
//! projections are made with `streamattn::project`. This shows what additive
//! attention can express without training, not what a trained one does; and
//! it needs `h = 2d`, twice the width of the other scorers.
//!
//! # Entropy
//!
//! The kernels do not return weights, but with one-hot values the output row
//! is the row of weights `p_ij`. The example runs each chosen scorer so
//! (retrieval's test run already is; for interpolation, an extra run on the
//! first 256 test queries) and reports the mean over queries of
//! `H_i = −Σ_j p_ij ln p_ij` in nats, and `e^H`: the number of keys that
//! uniform weights of the same entropy would cover (1: all the weight on one
//! key; `n_kv`: uniform).
//!
//! # Timing
//!
//! `Attention::run_heads` on 2 heads of 1024 queries × 1024 keys,
//! `d = d_v = 64`, random inputs, each scorer with the parameters it chose for
//! retrieval (they change the cost only for `NegLogDist`: `p ∉ {1, 2}` costs
//! a logarithm and an exponential per pair, and `eps = 0` a log-sum-exp
//! instead of a reciprocal). For `Additive`, `q` and `k` stand for
//! projections of width 64, as in its retrieval construction (`h = 2 · 32`),
//! with the `w` it chose. Time per call is the median of at least 3 calls
//! after a warm-up call. GFLOP/s count `4 · n_q · n_kv · d` per head for every
//! scorer (score and P·V, as for a dot product); for `Additive`, each score
//! term is an add, a `tanh` and a multiply-add. The `tanh` of this version is
//! a temporary one, so `Additive` times will change.

// Test and example code is held to clippy's default lints (Cargo.toml).
#![allow(clippy::pedantic)]

use std::time::Instant;
use streamattn::{project, Attention, Error, HeadsMut, HeadsRef, MatMut, MatRef, Scorer};

/// The shift `δ` of the additive construction.
const SHIFT: f32 = 1.0;
/// Interpolation test queries whose weights are computed for the entropy.
const ENTROPY_ROWS: usize = 256;

/// A deterministic xorshift generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Uniform in `[−1, 1)`.
    fn sym(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.sym()).collect()
    }
}

/// A scorer with its parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Choice {
    Dot {
        scale: f32,
    },
    SqDist {
        scale: f32,
    },
    LogDist {
        eps: f32,
        p: f32,
    },
    /// The bump construction of the module docs: width `c` and the
    /// `NegSqDist` scale `κ` it matches near `q = k`.
    Additive {
        c: f32,
        kappa: f32,
    },
}

/// Queries, keys and `w` as the kernel takes them.
struct Prepared {
    q: Vec<f32>,
    k: Vec<f32>,
    width: usize,
    w: Vec<f32>,
}

/// `x` in few characters: `0`, `48`, `1/8`, `1e-6`, `0.64`, `12.5`, `200`.
fn num(x: f32) -> String {
    if x == 0.0 || (x >= 1.0 && x.fract() == 0.0) {
        format!("{x}")
    } else if x < 1.0 && (1.0 / x).fract() == 0.0 && 1.0 / x < 1000.0 {
        format!("1/{}", 1.0 / x)
    } else if x < 0.01 {
        format!("{x:e}")
    } else if x >= 100.0 {
        format!("{x:.0}")
    } else {
        let s = if x >= 10.0 { format!("{x:.1}") } else { format!("{x:.3}") };
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

impl Choice {
    fn name(self) -> &'static str {
        match self {
            Choice::Dot { .. } => "Dot",
            Choice::SqDist { .. } => "NegSqDist",
            Choice::LogDist { .. } => "NegLogDist",
            Choice::Additive { .. } => "Additive",
        }
    }

    /// The searched parameters, as `(name, value, may be marked †)`.
    fn params(self) -> Vec<(&'static str, f32, bool)> {
        match self {
            Choice::Dot { scale } | Choice::SqDist { scale } => vec![("scale", scale, true)],
            Choice::LogDist { eps, p } => vec![("eps", eps, eps > 0.0), ("p", p, true)],
            Choice::Additive { c, kappa } => vec![("c", c, true), ("κ", kappa, true)],
        }
    }

    /// The parameters, those at an end of their range in `grid` marked `†`
    /// (none if `grid` is empty).
    fn describe(self, grid: &[Choice]) -> String {
        let mut parts = Vec::new();
        for (t, (name, value, markable)) in self.params().into_iter().enumerate() {
            let range = grid.iter().map(|g| g.params()[t].1);
            let (lo, hi) = range.fold((f32::INFINITY, 0.0f32), |(lo, hi), x| (lo.min(x), hi.max(x)));
            let mark = if markable && (value == lo || value == hi) { "†" } else { "" };
            parts.push(format!("{name} = {}{mark}", num(value)));
        }
        let lambda = if let Choice::Additive { .. } = self {
            format!(" (λ = {})", num(self.lambda()))
        } else {
            String::new()
        };
        parts.join(", ") + &lambda
    }

    /// `Additive`'s `λ = κ / (2 tanh δ sech²δ · c²)`.
    fn lambda(self) -> f32 {
        match self {
            Choice::Additive { c, kappa } => {
                let t = SHIFT.tanh();
                kappa / (2.0 * t * (1.0 - t * t) * c * c)
            }
            _ => 0.0,
        }
    }

    /// `Additive`'s `w` for inputs of dimension `d`: `λ` then `−λ`, `d` each.
    fn w(self, d: usize) -> Vec<f32> {
        match self {
            Choice::Additive { .. } => {
                let l = self.lambda();
                (0..2 * d).map(|col| if col < d { l } else { -l }).collect()
            }
            _ => Vec::new(),
        }
    }

    /// The kernel's inputs for queries `q` and keys `k` (rows of `d`).
    fn prepare(self, q: &[f32], k: &[f32], d: usize) -> Result<Prepared, Error> {
        let Choice::Additive { c, .. } = self else {
            return Ok(Prepared { q: q.to_vec(), k: k.to_vec(), width: d, w: Vec::new() });
        };
        let (n_q, n_kv, h) = (q.len() / d, k.len() / d, 2 * d);
        // W (h × (d+1)) acts on [q, 1]: rows c·e_r + δ·e_d, then c·e_r − δ·e_d.
        // U (h × d): rows −c·e_r, twice.
        let (mut wq, mut uk) = (vec![0.0f32; h * (d + 1)], vec![0.0f32; h * d]);
        for r in 0..d {
            wq[r * (d + 1) + r] = c;
            wq[r * (d + 1) + d] = SHIFT;
            wq[(d + r) * (d + 1) + r] = c;
            wq[(d + r) * (d + 1) + d] = -SHIFT;
            uk[r * d + r] = -c;
            uk[(d + r) * d + r] = -c;
        }
        let q1: Vec<f32> = q.chunks(d).flat_map(|row| row.iter().copied().chain([1.0])).collect();
        let (mut a, mut b) = (vec![0.0f32; n_q * h], vec![0.0f32; n_kv * h]);
        project(
            MatRef::dense(&q1, n_q, d + 1)?,
            MatRef::dense(&wq, h, d + 1)?,
            MatMut::dense(&mut a, n_q, h)?,
        )?;
        project(MatRef::dense(k, n_kv, d)?, MatRef::dense(&uk, h, d)?, MatMut::dense(&mut b, n_kv, h)?)?;
        Ok(Prepared { q: a, k: b, width: h, w: self.w(d) })
    }

    fn scorer(self, w: &[f32]) -> Scorer<'_> {
        match self {
            Choice::Dot { scale } => Scorer::Dot { scale: Some(scale) },
            Choice::SqDist { scale } => Scorer::NegSqDist { scale: Some(scale) },
            Choice::LogDist { eps, p } => Scorer::NegLogDist { eps, p },
            Choice::Additive { .. } => Scorer::additive(w),
        }
    }
}

/// The parameter grids, the same for both tasks, one per scorer.
fn grids() -> [Vec<Choice>; 4] {
    let pow2 = |k: i32| 2f32.powi(k);
    let dot = (-8..=8).map(|k| Choice::Dot { scale: pow2(k) }).collect();
    let sq = (-8..=12).map(|k| Choice::SqDist { scale: pow2(k) }).collect();
    let mut log = Vec::new();
    for eps in [0.0, 1e-6, 1e-3, 1.0] {
        for p in [1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0, 48.0, 64.0, 96.0, 128.0] {
            log.push(Choice::LogDist { eps, p });
        }
    }
    let mut add = Vec::new();
    for c in -3..=2 {
        for kappa in -2..=7 {
            add.push(Choice::Additive { c: pow2(c), kappa: pow2(kappa) });
        }
    }
    [dot, sq, log, add]
}

/// One attention call: the output, `n_q × d_v`.
fn attend(choice: Choice, q: &[f32], k: &[f32], d: usize, v: &[f32], d_v: usize) -> Result<Vec<f32>, Error> {
    let p = choice.prepare(q, k, d)?;
    let (n_q, n_kv) = (q.len() / d, k.len() / d);
    let mut out = vec![0.0f32; n_q * d_v];
    Attention::new(choice.scorer(&p.w)).run(
        MatRef::dense(&p.q, n_q, p.width)?,
        MatRef::dense(&p.k, n_kv, p.width)?,
        MatRef::dense(v, n_kv, d_v)?,
        MatMut::dense(&mut out, n_q, d_v)?,
    )?;
    Ok(out)
}

/// Values `n_kv × cols.len()` with `v[j][c] = 1` where `j = cols[c]`: the
/// output column `c` is the weight on key `cols[c]`.
fn one_hot(n_kv: usize, cols: &[usize]) -> Vec<f32> {
    let mut v = vec![0.0f32; n_kv * cols.len()];
    for (c, &j) in cols.iter().enumerate() {
        v[j * cols.len() + c] = 1.0;
    }
    v
}

/// Mean entropy (nats) of rows of weights.
fn entropy(weights: &[f32], n_kv: usize) -> f64 {
    let rows = weights.chunks(n_kv);
    let h = rows.map(|r| r.iter().filter(|&&p| p > 0.0).map(|&p| -(p as f64) * (p as f64).ln()).sum::<f64>());
    h.sum::<f64>() / (weights.len() / n_kv) as f64
}

/// The smooth function of task 1, `R⁴ → R²`.
fn f(x: &[f32]) -> [f32; 2] {
    let x: [f64; 4] = core::array::from_fn(|t| x[t] as f64);
    [
        ((1.5 * x[0] + x[1]).sin() + 0.5 * (2.0 * x[2] - x[3] + 1.0).sin()) as f32,
        ((x[0] - 2.0 * x[1] + 0.5 * x[2] + 2.0).sin() + 0.5 * (3.0 * x[3] - x[0]).sin()) as f32,
    ]
}
const F_TEXT: &str =
    "f(x) = (sin(1.5x1 + x2) + 0.5 sin(2x3 − x4 + 1), sin(x1 − 2x2 + 0.5x3 + 2) + 0.5 sin(3x4 − x1))";

fn rmse(out: &[f32], truth: &[f32]) -> f64 {
    let se: f64 = out.iter().zip(truth).map(|(&a, &b)| (a as f64 - b as f64).powi(2)).sum();
    (se / out.len() as f64).sqrt()
}

/// Index of the row of `k` nearest to `q` (f64).
fn nearest(q: &[f32], k: &[f32], d: usize) -> usize {
    let dist =
        k.chunks(d).map(|kj| q.iter().zip(kj).map(|(&x, &y)| (x as f64 - y as f64).powi(2)).sum::<f64>());
    dist.enumerate().fold((0, f64::INFINITY), |b, (j, x)| if x < b.1 { (j, x) } else { b }).0
}

/// The element of `grid` with the smallest `loss`.
fn best(grid: &[Choice], mut loss: impl FnMut(Choice) -> Result<f64, Error>) -> Result<Choice, Error> {
    let mut chosen = (grid[0], f64::INFINITY);
    for &c in grid {
        let l = loss(c)?;
        if l < chosen.1 {
            chosen = (c, l);
        }
    }
    Ok(chosen.0)
}

fn interpolation() -> Result<(), Error> {
    let (d, d_v, n_kv, n_val, n_test) = (4, 2, 2048, 256, 1024);
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let keys = rng.vec(n_kv * d);
    let (val, test) = (rng.vec(n_val * d), rng.vec(n_test * d));
    let values: Vec<f32> = keys.chunks(d).flat_map(f).collect();
    let truth_val: Vec<f32> = val.chunks(d).flat_map(f).collect();
    let truth_test: Vec<f32> = test.chunks(d).flat_map(f).collect();
    let identity = one_hot(n_kv, &(0..n_kv).collect::<Vec<_>>());

    println!("## Task 1: interpolation\n");
    println!("{F_TEXT}.");
    println!(
        "Keys: {n_kv} prototype points uniform in [−1, 1]^{d}, values f(key) (d_v = {d_v}); queries: other"
    );
    println!(
        "uniform points. Parameters: best RMSE on {n_val} validation queries († = at an end of the searched"
    );
    println!(
        "range; Additive's smallest c is its NegSqDist limit). Test RMSE over both outputs on {n_test} other"
    );
    println!(
        "queries; H: mean entropy of the weights (nats) on {ENTROPY_ROWS} of them; e^H: the number of keys"
    );
    println!("uniform weights of that entropy would cover.\n");
    println!("| scorer | parameters | test RMSE | H (nats) | e^H |");
    println!("|---|---|---:|---:|---:|");
    for grid in grids() {
        let chosen = best(&grid, |c| Ok(rmse(&attend(c, &val, &keys, d, &values, d_v)?, &truth_val)))?;
        let out = attend(chosen, &test, &keys, d, &values, d_v)?;
        let weights = attend(chosen, &test[..ENTROPY_ROWS * d], &keys, d, &identity, n_kv)?;
        let h = entropy(&weights, n_kv);
        let name = chosen.name();
        println!(
            "| {name} | {} | {:.4} | {h:.2} | {:.1} |",
            chosen.describe(&grid),
            rmse(&out, &truth_test),
            h.exp()
        );
    }
    let mean: Vec<f32> = (0..d_v)
        .map(|c| (values.iter().skip(c).step_by(d_v).map(|&x| x as f64).sum::<f64>() / n_kv as f64) as f32)
        .collect();
    let mean_out: Vec<f32> = (0..n_test).flat_map(|_| mean.iter().copied()).collect();
    let nn_out: Vec<f32> =
        test.chunks(d).flat_map(|q| values[nearest(q, &keys, d) * d_v..][..d_v].to_vec()).collect();
    println!(
        "\nFor scale (not attention): the mean of the prototype values has test RMSE {:.4}, the value of the",
        rmse(&mean_out, &truth_test)
    );
    println!(
        "nearest prototype {:.4}. Uniform weights have H = ln {n_kv} = {:.2}.\n",
        rmse(&nn_out, &truth_test),
        (n_kv as f64).ln()
    );
    Ok(())
}

/// Runs task 2 and returns the parameters each scorer chose.
fn retrieval() -> Result<Vec<Choice>, Error> {
    let (d, n_kv, n_val, n_test, sigma) = (32, 1024, 128, 512, 1.0f32);
    let mut rng = Rng(0x0fed_cba9_8765_4321);
    let keys = rng.vec(n_kv * d);
    // Validation queries aim at distinct keys (a partial shuffle), so that
    // values one-hot on those keys give each query's weight on its own key.
    let mut order: Vec<usize> = (0..n_kv).collect();
    for i in 0..n_val {
        let j = i + rng.below(n_kv - i);
        order.swap(i, j);
    }
    let val_target = order[..n_val].to_vec();
    let test_target: Vec<usize> = (0..n_test).map(|_| rng.below(n_kv)).collect();
    let mut queries = |target: &[usize]| -> Vec<f32> {
        target.iter().flat_map(|&j| keys[j * d..][..d].to_vec()).map(|x| x + sigma * rng.sym()).collect()
    };
    let (val, test) = (queries(&val_target), queries(&test_target));
    let val_values = one_hot(n_kv, &val_target);
    let identity = one_hot(n_kv, &(0..n_kv).collect::<Vec<_>>());

    println!("## Task 2: retrieval\n");
    println!("Keys: {n_kv} points uniform in [−1, 1]^{d}; queries: a random key plus noise uniform in [−{sigma}, {sigma}]");
    println!("per coordinate; values one-hot (d_v = {n_kv}), so a query's output is its row of weights.");
    println!(
        "Parameters: best mean ln(weight on the right key) on {n_val} validation queries († as in task 1)."
    );
    println!(
        "On {n_test} other queries: accuracy (the largest weight is on the right key), mean weight on the"
    );
    println!("right key, and H, e^H as in task 1 (all {n_test} queries).\n");
    println!("| scorer | parameters | accuracy | weight on right key | H (nats) | e^H |");
    println!("|---|---|---:|---:|---:|---:|");
    let mut chosen_all = Vec::new();
    for grid in grids() {
        let chosen = best(&grid, |c| {
            let out = attend(c, &val, &keys, d, &val_values, n_val)?;
            let ll: f64 = (0..n_val).map(|i| (out[i * n_val + i].max(f32::MIN_POSITIVE) as f64).ln()).sum();
            Ok(-ll / n_val as f64)
        })?;
        let weights = attend(chosen, &test, &keys, d, &identity, n_kv)?;
        let (mut hits, mut on_target) = (0, 0.0f64);
        for (row, &j) in weights.chunks(n_kv).zip(&test_target) {
            let top = row.iter().enumerate().fold((0, -1.0), |b, (t, &x)| if x > b.1 { (t, x) } else { b });
            hits += (top.0 == j) as usize;
            on_target += row[j] as f64;
        }
        let h = entropy(&weights, n_kv);
        println!(
            "| {} | {} | {:.1}% | {:.3} | {h:.2} | {:.1} |",
            chosen.name(),
            chosen.describe(&grid),
            100.0 * hits as f64 / n_test as f64,
            on_target / n_test as f64,
            h.exp()
        );
        chosen_all.push(chosen);
    }
    let nn_hits = test.chunks(d).zip(&test_target).filter(|(q, &j)| nearest(q, &keys, d) == j).count();
    println!(
        "\nFor scale (not attention): the exact nearest key is the right one for {:.1}% of the test queries.",
        100.0 * nn_hits as f64 / n_test as f64
    );
    println!("Uniform weights have H = ln {n_kv} = {:.2}.\n", (n_kv as f64).ln());
    Ok(chosen_all)
}

fn timing(choices: &[Choice]) -> Result<(), Error> {
    let (heads, n, d) = (2, 1024, 64);
    let mut rng = Rng(0x5eed_5eed_5eed_5eed);
    let (q, k, v) = (rng.vec(heads * n * d), rng.vec(heads * n * d), rng.vec(heads * n * d));
    let mut out = vec![0.0f32; heads * n * d];

    println!("## Speed\n");
    println!(
        "Attention::run_heads, {heads} heads × {n} queries × {n} keys, d = d_v = {d}, random inputs, the"
    );
    println!(
        "parameters chosen for retrieval (Additive: q, k stand for width-{d} projections). Median time per"
    );
    println!("call; GFLOP/s count 4·n_q·n_kv·d per head for every scorer (for Additive: d tanh per pair).\n");
    println!("| scorer | parameters | ms per call | GFLOP/s | calls timed |");
    println!("|---|---|---:|---:|---:|");
    for &choice in choices {
        let w = choice.w(d / 2);
        let attn = Attention::new(choice.scorer(&w));
        let mut call = || -> Result<f64, Error> {
            let t = Instant::now();
            attn.run_heads(
                HeadsRef::heads_major(&q, heads, n, d)?,
                HeadsRef::heads_major(&k, heads, n, d)?,
                HeadsRef::heads_major(&v, heads, n, d)?,
                HeadsMut::heads_major(&mut out, heads, n, d)?,
                None,
            )?;
            Ok(t.elapsed().as_secs_f64())
        };
        call()?; // warm-up
        let (mut times, start) = (Vec::new(), Instant::now());
        while times.len() < 3 || (times.len() < 15 && start.elapsed().as_secs_f64() < 0.5) {
            times.push(call()?);
        }
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        let flops = 4.0 * (heads * n * n * d) as f64;
        let params = choice.describe(&[]);
        println!(
            "| {} | {} | {:.1} | {:.1} | {} |",
            choice.name(),
            params,
            median * 1e3,
            flops / median / 1e9,
            times.len()
        );
    }
    Ok(())
}

fn main() -> Result<(), Error> {
    let simd = if cfg!(target_feature = "avx512f") {
        "AVX-512 (f32x16)"
    } else if cfg!(target_feature = "avx") {
        "AVX (f32x8)"
    } else if cfg!(any(target_feature = "sse2", target_feature = "neon", target_feature = "simd128")) {
        "4-lane vectors (f32x4)"
    } else {
        "scalar f32"
    };
    let start = Instant::now();
    println!("compare_scorers: the kernels of this build use {simd}.\n");
    interpolation()?;
    let chosen = retrieval()?;
    timing(&chosen)?;
    println!("\n(whole run {:.1} s)", start.elapsed().as_secs_f64());
    Ok(())
}
