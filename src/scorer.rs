//! The four scorers: how a query is compared with a key.

use crate::{Element, Error};

/// How a query `q` is scored against a key `k` (both of length `d`).
///
/// | scorer | score `s(q, k)` | softmax weight `∝ e^s` | defaults |
/// |---|---|---|---|
/// | `Dot` | `scale · q·k` | `e^{scale q·k}` | `scale = 1/√d` |
/// | `NegSqDist` | `−scale · ‖q−k‖²` | `e^{−scale ‖q−k‖²}` (RBF, "L2 attention") | `scale = 1/√d` |
/// | `NegLogDist` | `−ln(eps + ‖q−k‖^p)` | `1 / (eps + ‖q−k‖^p)` (Shepard's inverse distance weighting) | `eps = 1e-3`, `p = 2` |
/// | `Additive` | `Σ_c w_c · tanh(q_c + k_c)` | `e^s` (Bahdanau attention) | none: `w` is learned |
///
/// `‖·‖` is the Euclidean norm; all quantities are in the units of the inputs
/// (scores are dimensionless logits). A scale of `None` means the default
/// `1/√d`.
///
/// - `NegSqDist` keeps the matrix-product structure of `Dot` by expanding
///   `‖q−k‖² = ‖a‖² + ‖b‖² − 2 a·b` with `a = q − c` and `b = k − c`, where the
///   centre `c` lies among the query rows computed together (per coordinate
///   the median of three of them, or 0 where those straddle 0). Rounding
///   errors then scale with the spread of the data around `c`, not with its
///   distance from the origin, so data far from the origin scores as
///   accurately as data near it. Scores are the full `−scale ‖q−k‖²` (at most
///   0), and the log-sum-exp is that of the scores in the table.
/// - `NegLogDist` computes the squared distance directly as `Σ (q_c − k_c)²`, so
///   a query that equals a key gets distance exactly 0 and weight `1/eps`: the
///   output is then close to that key's value (it is the value exactly when
///   `eps = 0`, where the weight is infinite). Its weights are bounded by
///   `1/eps`.
///
/// - `Additive` takes the *projected* queries `a_i = W q_i` as `q` and the
///   projected keys `b_j = U k_j` as `k` (both of width `h`, the projection
///   size, which plays the part of `d`), and the length-`h` vector `w`. The
///   crate does not own `W` and `U` ([`project`](fn@crate::project) applies them).
///   Every score lies in `[−‖w‖₁, ‖w‖₁]`; the crate requires
///   `‖w‖₁ · e^{(h+1)·2⁻²⁴} ≤ f32::MAX` (`‖w‖₁` finite, with room for the
///   rounding of the sum), so no score overflows and a finite input never
///   gives an infinite or NaN score. Each pair costs `h` hyperbolic tangents (a vectorised `tanh` with
///   the key index as the SIMD dimension), so it cannot become a matrix
///   product: expect it to be several times slower than the other scorers.
///
/// Parameters are checked at each call: `scale` finite and `> 0`, `eps` finite
/// and `>= 0`, `p` finite and `> 0`, `w` of length `d` with finite entries and
/// `‖w‖₁` as above, else [`Error::InvalidParameter`] (or
/// [`Error::ShapeMismatch`] for the length of `w`).
///
/// Each scorer is built when its Cargo feature is on (`dot`, `neg-sq-dist`,
/// `neg-log-dist`, `additive`; all are by default). A call with a scorer
/// whose feature is off is [`Error::Unsupported`] naming the feature, and
/// the build carries none of that scorer's code.
///
/// ```
/// use streamattn::Scorer;
/// assert_eq!(Scorer::dot(), Scorer::Dot { scale: None });
/// assert_eq!(Scorer::neg_log_dist(), Scorer::NegLogDist { eps: 1e-3, p: 2.0 });
/// let sharper = Scorer::NegSqDist { scale: Some(0.5) };
/// let w = [0.5f32, -1.0, 0.25];
/// let additive = Scorer::additive(&w); // for projections of width 3
/// # let _ = (sharper, additive);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Scorer<'w> {
    /// Scaled dot product `scale · q·k`.
    Dot {
        /// Multiplies `q·k`; `None` is `1/√d`.
        scale: Option<f32>,
    },
    /// Negative scaled squared Euclidean distance `−scale · ‖q−k‖²`.
    NegSqDist {
        /// Multiplies `‖q−k‖²`; `None` is `1/√d`.
        scale: Option<f32>,
    },
    /// Negative log distance `−ln(eps + ‖q−k‖^p)`: inverse distance weighting.
    NegLogDist {
        /// Added to the powered distance; keeps weights finite (`<= 1/eps`).
        eps: f32,
        /// Power of the Euclidean distance.
        p: f32,
    },
    /// Additive (Bahdanau) attention `Σ_c w_c · tanh(q_c + k_c)` on projected
    /// queries and keys.
    Additive {
        /// The output weights, one per column of the projections.
        w: &'w [f32],
    },
}

impl<'w> Scorer<'w> {
    /// `Dot` with the default scale `1/√d`.
    #[must_use]
    pub const fn dot() -> Self {
        Scorer::Dot { scale: None }
    }

    /// `NegSqDist` with the default scale `1/√d`.
    #[must_use]
    pub const fn neg_sq_dist() -> Self {
        Scorer::NegSqDist { scale: None }
    }

    /// `NegLogDist` with the defaults `eps = 1e-3`, `p = 2`.
    #[must_use]
    pub const fn neg_log_dist() -> Self {
        Scorer::NegLogDist { eps: 1e-3, p: 2.0 }
    }

    /// `Additive` with output weights `w` (its length is the projection width).
    #[must_use]
    pub const fn additive(w: &'w [f32]) -> Self {
        Scorer::Additive { w }
    }

    /// Checks the parameters and fills in the defaults for head dimension `d`.
    pub(crate) fn resolve(self, d: usize) -> Result<Kind<'w>, Error> {
        let default_scale = 1.0 / libm::sqrtf(d as f32);
        let scale = |s: Option<f32>| match s {
            None => Ok(default_scale),
            Some(s) if s.is_finite() && s > 0.0 => Ok(s),
            Some(value) => Err(Error::InvalidParameter { what: "scale", value }),
        };
        match self {
            Scorer::Dot { scale: s } => Ok(Kind::Dot { built: Built::get("dot")?, scale: scale(s)? }),
            Scorer::NegSqDist { scale: s } => {
                Ok(Kind::SqDist { built: Built::get("neg-sq-dist")?, scale: scale(s)? })
            }
            Scorer::NegLogDist { eps, p } => {
                // `()` or, without the feature, never a value: checked first.
                #[allow(clippy::let_unit_value)]
                let built = Built::get("neg-log-dist")?;
                if !(eps.is_finite() && eps >= 0.0) {
                    return Err(Error::InvalidParameter { what: "eps", value: eps });
                }
                if !(p.is_finite() && p > 0.0) {
                    return Err(Error::InvalidParameter { what: "p", value: p });
                }
                Ok(Kind::LogDist { eps, p, built })
            }
            Scorer::Additive { w } => {
                // `()` or, without the feature, never a value: checked first.
                #[allow(clippy::let_unit_value)]
                let built = Built::get("additive")?;
                if w.len() != d {
                    return Err(Error::ShapeMismatch { what: "w", expected: d, found: w.len() });
                }
                if let Some(&value) = w.iter().find(|x| !x.is_finite()) {
                    return Err(Error::InvalidParameter { what: "w", value });
                }
                if additive_overflows(w) {
                    return Err(Error::InvalidParameter { what: "w_l1_norm", value: f32::INFINITY });
                }
                Ok(Kind::Additive { w, built })
            }
        }
    }
}

/// A scorer with its parameters checked and defaults filled in. Each
/// variant carries a [`Built`] marker: `()` when the build includes the
/// scorer, the uninhabited [`Omitted`] when its feature is off. A variant
/// of an omitted scorer cannot exist, so the compiler drops every branch on
/// it, and the code only that branch calls.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Kind<'w> {
    Dot { scale: f32, built: DotBuilt },
    SqDist { scale: f32, built: SqDistBuilt },
    LogDist { eps: f32, p: f32, built: LogDistBuilt },
    Additive { w: &'w [f32], built: AdditiveBuilt },
}

/// No value: the marker of a scorer the build leaves out.
#[derive(Clone, Copy, Debug, PartialEq)]
#[allow(dead_code)] // unused when every scorer's feature is on
pub(crate) enum Omitted {}

/// `pub(crate) type $name = ()` when `$feature` is on, else [`Omitted`].
macro_rules! marker {
    ($($name:ident: $feature:literal),*) => {$(
        #[doc = concat!("The marker of `Kind`'s variant for the scorer of feature `", $feature, "`.")]
        #[cfg(feature = $feature)]
        pub(crate) type $name = ();
        #[doc = concat!("The marker of `Kind`'s variant for the scorer of feature `", $feature, "`.")]
        #[cfg(not(feature = $feature))]
        pub(crate) type $name = Omitted;
    )*};
}

marker!(DotBuilt: "dot", SqDistBuilt: "neg-sq-dist", LogDistBuilt: "neg-log-dist", AdditiveBuilt: "additive");

/// A marker value, if the build has one: `()` always, [`Omitted`] never
/// ([`Error::Unsupported`] naming the scorer's feature).
pub(crate) trait Built: Copy + core::fmt::Debug + PartialEq + Sized {
    fn get(feature: &'static str) -> Result<Self, Error>;
}

impl Built for () {
    fn get(_: &'static str) -> Result<(), Error> {
        Ok(())
    }
}

impl Built for Omitted {
    fn get(what: &'static str) -> Result<Omitted, Error> {
        Err(Error::Unsupported { what })
    }
}

impl Kind<'_> {
    /// The score of one pair, in plain scalar arithmetic.
    pub(crate) fn logit<E: Element>(self, q: &[f32], k: &[E]) -> f32 {
        match self {
            Kind::Dot { scale, .. } => scale * dot(q, k),
            Kind::SqDist { scale, .. } => -scale * sq_dist(q, k),
            // With eps = 0, −ln(d^p) = −(p/2)·ln(d²): no underflow of d^p.
            // d = 0 gives +∞ and d² = ∞ gives −∞, also when p/2 underflows to
            // 0 (0·(±∞) would be NaN).
            Kind::LogDist { eps: 0.0, p, .. } => match libm::logf(clamp0(sq_dist(q, k))) {
                f32::NEG_INFINITY => f32::INFINITY,
                f32::INFINITY => f32::NEG_INFINITY,
                y => -0.5 * p * y,
            },
            Kind::LogDist { eps, p, .. } => {
                let d2 = sq_dist(q, k);
                let dp = pow_dist(d2, p);
                if dp.is_finite() || !d2.is_finite() {
                    -libm::logf(eps + dp)
                } else {
                    // d^p overflows f32 (p > 2): −ln(eps + d^p) = −(y + ln(1 + eps·e^{−y}))
                    // with y = ln d^p = (p/2)·ln d², finite.
                    let y = 0.5 * p * libm::logf(d2);
                    -(y + libm::log1pf(eps * libm::expf(-y)))
                }
            }
            Kind::Additive { w, .. } => additive(w, q, k),
        }
    }
}

/// Whether `‖w‖₁ · e^{(h+1)·2⁻²⁴} > f32::MAX` (`h = w.len()`): then a partial
/// sum of `Σ_c w_c · tanh(a_c + b_c)` in f32 could round past `f32::MAX`.
/// Every `|tanh| ≤ 1`, and each of the `h` products and sums rounds by a
/// factor of at most `1 + 2⁻²⁴`, so every partial sum is at most
/// `‖w‖₁ (1 + 2⁻²⁴)^{h+1} ≤ ‖w‖₁ e^{(h+1)·2⁻²⁴}`. (`‖w‖₁` is summed in f64,
/// left to right: its own rounding is far below the margin.)
pub(crate) fn additive_overflows(w: &[f32]) -> bool {
    let l1 = w.iter().fold(0.0f64, |acc, &x| acc + f64::from(x).abs());
    let growth = libm::exp((w.len() as f64 + 1.0) * (1.0 / 16_777_216.0));
    l1 * growth > f64::from(f32::MAX)
}

/// `d^p` from the squared distance `d2 = d²`, clamped at 0 first.
#[inline]
pub(crate) fn pow_dist(d2: f32, p: f32) -> f32 {
    let d2 = clamp0(d2);
    if d2 == 0.0 {
        0.0 // 0^p = 0 for every p > 0, also when p/2 underflows to 0
    } else if d2 == f32::INFINITY {
        f32::INFINITY // ∞^p = ∞ for every p > 0 (powf gives 1 when p/2 underflows)
    } else if p == 2.0 {
        d2
    } else if p == 1.0 {
        libm::sqrtf(d2)
    } else {
        libm::powf(d2, 0.5 * p)
    }
}

/// `x` clamped at 0, NaN staying NaN (`f32::max` would turn it into 0).
#[inline]
fn clamp0(x: f32) -> f32 {
    if x < 0.0 {
        0.0
    } else {
        x
    }
}

/// `Σ w_c · tanh(a_c + b_c)`, summed left to right.
#[inline]
pub(crate) fn additive<E: Element>(w: &[f32], a: &[f32], b: &[E]) -> f32 {
    w.iter().zip(a.iter().zip(b)).fold(0.0, |acc, (wc, (x, y))| acc + wc * libm::tanhf(x + y.to_f32()))
}

/// `Σ a_c b_c`, summed left to right.
#[inline]
pub(crate) fn dot<A: Element, B: Element>(a: &[A], b: &[B]) -> f32 {
    a.iter().zip(b).fold(0.0, |acc, (x, y)| acc + x.to_f32() * y.to_f32())
}

/// `Σ (a_c − b_c)²`, summed left to right: every term is non-negative, so the
/// relative error is at most `γ_{d+2}` however close `a` is to `b`.
#[inline]
pub(crate) fn sq_dist<A: Element, B: Element>(a: &[A], b: &[B]) -> f32 {
    a.iter().zip(b).fold(0.0, |acc, (x, y)| {
        let t = x.to_f32() - y.to_f32();
        acc + t * t
    })
}
