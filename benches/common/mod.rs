//! Shared by the benchmarks: deterministic data, the scorers benchmarked,
//! and the read-bandwidth probe.

use streamattn::Scorer;

/// Deterministic data in [-1, 1).
pub fn data(n: usize, seed: u32) -> Vec<f32> {
    let mut x = seed.wrapping_mul(2654435761).wrapping_add(1);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 8) as f32 / (1u32 << 23) as f32 - 1.0
        })
        .collect()
}

/// Every scorer with its default parameters; `Additive` with `h = d` and
/// output weights drawn in `[−1, 1)/√d` (so `q`, `k` act as the projections).
pub fn scorers(d: usize) -> [(&'static str, Scorer<'static>); 4] {
    let w: Vec<f32> = data(d, 4).iter().map(|x| x / (d as f32).sqrt()).collect();
    [
        ("dot", Scorer::dot()),
        ("sqdist", Scorer::neg_sq_dist()),
        ("logdist", Scorer::neg_log_dist()),
        ("additive", Scorer::additive(w.leak())),
    ]
}

/// Sum of a buffer with 4 independent 16-lane accumulators: lane-wise adds
/// vectorise without reassociation, so this streams at the read bandwidth.
pub fn read_all(data: &[f32]) -> f32 {
    let mut acc = [[0.0f32; 16]; 4];
    for chunk in data.chunks_exact(64) {
        for (a, c) in acc.iter_mut().zip(chunk.chunks_exact(16)) {
            for (x, y) in a.iter_mut().zip(c) {
                *x += y;
            }
        }
    }
    acc.iter().flatten().sum()
}
