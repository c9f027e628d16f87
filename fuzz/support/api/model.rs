//! The model of the documented checks: what each constructor and call must return, in `u128` arithmetic.

#[allow(unused_imports)]
use super::*;

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Verdict {
    Ok,
    Err,
    /// Zero heads or rows: not specified either way.
    Either,
}

/// `HeadsRef::new` (and every other view constructor) per the docs, exact.
pub(crate) fn layout_verdict(heads: u128, rows: u128, cols: u128, hs: u128, rs: u128, len: usize) -> Verdict {
    if cols == 0 {
        return Verdict::Err;
    }
    if heads == 0 || rows == 0 {
        return Verdict::Either;
    }
    if rows > 1 && rs < cols {
        return Verdict::Err;
    }
    let extent = (rows - 1).saturating_mul(rs).saturating_add(cols);
    if extent > MAX {
        return Verdict::Err;
    }
    if heads > 1 {
        let heads_major = hs >= extent;
        let seq_major = hs >= cols && (heads - 1).saturating_mul(hs).saturating_add(cols) <= rs;
        if !heads_major && !seq_major {
            return Verdict::Err;
        }
    }
    let needed = (heads - 1).saturating_mul(hs).saturating_add(extent);
    if needed > MAX || needed > len as u128 {
        Verdict::Err
    } else {
        Verdict::Ok
    }
}

pub(crate) fn agree<T, E: std::fmt::Debug>(what: &str, verdict: Verdict, r: &core::result::Result<T, E>) {
    match (verdict, r) {
        (Verdict::Ok, Err(e)) => panic!("{what}: valid per the docs, rejected: {e:?}"),
        (Verdict::Err, Ok(_)) => panic!("{what}: invalid per the docs, accepted"),
        _ => {}
    }
}

/// Exactly the keys the docs give row `i`, among the first `key_len`.
pub(crate) fn model_range(mask: Mask, i: usize, key_len: usize) -> Option<(usize, usize)> {
    let (i, kl) = (i as i128, key_len as i128);
    let (lo, hi) = match mask {
        Mask::None => (0, kl),
        Mask::Causal { offset } => (0, i + offset as i128 + 1),
        Mask::Window { offset, left, right } => {
            let pos = i + offset as i128;
            (pos - left as i128, pos + right as i128 + 1)
        }
        _ => unreachable!("a mask the model does not know: {mask:?}"),
    };
    let (lo, hi) = (lo.max(0), hi.min(kl));
    (lo < hi).then_some((lo as usize, hi as usize))
}

pub(crate) fn offset_of(mask: Mask) -> usize {
    match mask {
        Mask::None => 0,
        Mask::Causal { offset } | Mask::Window { offset, .. } => offset,
        _ => unreachable!("a mask the model does not know: {mask:?}"),
    }
}

/// The first failing scorer check for head dimension `d`, per the docs (and
/// in their order): `scale` finite and `> 0`; `eps` finite and `>= 0`, then
/// `p` finite and `> 0`; `w` of length `d`, then its first non-finite entry,
/// then `‖w‖₁` (summed in f64, left to right) at most `f32::MAX`.
pub(crate) fn scorer_error(s: Scorer, d: usize) -> Option<Error> {
    let bad = |what, value| Some(Error::InvalidParameter { what, value });
    match s {
        Scorer::Dot { scale: Some(x) } | Scorer::NegSqDist { scale: Some(x) }
            if !(x.is_finite() && x > 0.0) =>
        {
            bad("scale", x)
        }
        Scorer::NegLogDist { eps, .. } if !(eps.is_finite() && eps >= 0.0) => bad("eps", eps),
        Scorer::NegLogDist { p, .. } if !(p.is_finite() && p > 0.0) => bad("p", p),
        Scorer::Additive { w } => {
            if w.len() != d {
                return Some(Error::ShapeMismatch { what: "w", expected: d, found: w.len() });
            }
            if let Some(&x) = w.iter().find(|x| !x.is_finite()) {
                return bad("w", x);
            }
            (l1_f64(w) * growth(w.len()) > f32::MAX as f64)
                .then_some(Error::InvalidParameter { what: "w_l1_norm", value: f32::INFINITY })
        }
        _ => None,
    }
}

/// `e^{(h+1)·2⁻²⁴}`: the documented room for the rounding of the score's
/// f32 sum (`‖w‖₁ · growth(h) ≤ f32::MAX`), computed as the crate does.
pub(crate) fn growth(h: usize) -> f64 {
    libm::exp((h as f64 + 1.0) * (1.0 / 16_777_216.0))
}

/// `‖w‖₁` summed in f64, left to right.
pub(crate) fn l1_f64(w: &[f32]) -> f64 {
    w.iter().fold(0.0f64, |acc, &x| acc + (x as f64).abs())
}

/// Two errors equal, an `InvalidParameter` value compared bit for bit (NaN).
pub(crate) fn same_error(a: &Error, b: &Error) -> bool {
    match (a, b) {
        (
            Error::InvalidParameter { what: wa, value: va },
            Error::InvalidParameter { what: wb, value: vb },
        ) => wa == wb && va.to_bits() == vb.to_bits(),
        _ => a == b,
    }
}

/// `Additive` output weights for queries of width `d`: a length that is
/// usually right (else off by one, 0 or anything up to 48), entries that are
/// moderate, any parameter value, subnormal, huge (`‖w‖₁` around
/// `f32::MAX`) or [`near_max`]; then maybe a few special values anywhere.
pub(crate) fn additive_w(u: &mut Unstructured, d: usize) -> Result<Vec<f32>> {
    let len = match u.int_in_range(0u8..=9)? {
        0..=6 => d,
        7 => {
            if u.ratio(1u8, 2u8)? {
                d.wrapping_add(1)
            } else {
                d.wrapping_sub(1)
            }
        }
        8 => 0,
        _ => u.int_in_range(0..=48)?,
    };
    let len = if len > 512 { u.int_in_range(0..=48)? } else { len };
    let mut g = Gen(u.arbitrary::<u32>()? as u64);
    let mut w: Vec<f32> = match u.int_in_range(0u8..=9)? {
        0..=2 => (0..len)
            .map(|_| {
                let r = g.next();
                ((r % 2049) as f32 - 1024.0) / ((r >> 12) % 64 + 1) as f32
            })
            .collect(),
        3 => (0..len).map(|_| param(u)).collect::<Result<_>>()?,
        4 => (0..len)
            .map(|_| {
                let r = g.next();
                let x = f32::from_bits((r % 0x80_0000) as u32 + 1);
                if (r >> 24) & 1 == 0 {
                    x
                } else {
                    -x
                }
            })
            .collect(),
        5 => {
            let base = f32::MAX as f64 / len.max(1) as f64;
            (0..len)
                .map(|_| {
                    let r = g.next();
                    let x = (base * (1.0 + ((r % 65) as f64 - 32.0) / (1u64 << 22) as f64)) as f32;
                    if (r >> 8) & 1 == 0 {
                        x
                    } else {
                        -x
                    }
                })
                .collect()
        }
        _ => near_max(u, &mut g, len)?,
    };
    if len > 0 && one_in(u, 4)? {
        for _ in 0..u.int_in_range(1u8..=3)? {
            let i = u.int_in_range(0..=len - 1)?;
            w[i] = match u.int_in_range(0u8..=3)? {
                0 => f32::from_bits(u.int_in_range(1u32..=8)?),
                _ => *u.choose(&SPECIALS)?,
            };
        }
    }
    Ok(w)
}

/// `len` weights whose `‖w‖₁` is the largest accepted,
/// `f32::MAX / e^{(len+1)·2⁻²⁴}`, within a few ulps of its last entry, either
/// side: a head of about `2^127`; then pieces just over half an
/// ulp of the running f32 sum `Σ w_c` (so that a score whose tangents are all
/// `±1` rounds up by almost half an ulp at each); then a filler bringing the
/// f64 sum of magnitudes to that limit, moved by up to two ulps. Signs all
/// the same, or random; in that order or reversed.
pub(crate) fn near_max(u: &mut Unstructured, g: &mut Gen, len: usize) -> Result<Vec<f32>> {
    if len == 0 {
        return Ok(vec![]);
    }
    let head = *u.choose(&[2f32.powi(127), 1.5 * 2f32.powi(127), 1.7e38, f32::MAX / 2.0, f32::MAX, 1e38])?;
    let mut w = vec![head];
    let mut sum = head; // the f32 running sum (all tangents 1)
    while w.len() + 1 < len {
        // Half an ulp of `sum`, times 1 + k·2^-23, small k.
        let e = ((sum.to_bits() >> 23) & 0xff) as i32 - 24; // exponent of half an ulp
        let k = (g.next() % 64) as u32 + 1;
        let piece = if e >= 1 { f32::from_bits(((e as u32) << 23) | k) } else { 0.0 };
        w.push(piece);
        sum += piece;
    }
    if len > 1 {
        let rest = f32::MAX as f64 / growth(len) - l1_f64(&w);
        let mut f = if rest > 0.0 { rest as f32 } else { 0.0 };
        if f > 0.0 && f as f64 > rest {
            f = f32::from_bits(f.to_bits() - 1);
        }
        let nudge = u.int_in_range(-2i32..=2)?;
        if f > 0.0 {
            f = f32::from_bits((f.to_bits() as i32 + nudge) as u32);
        }
        w.push(f);
    }
    match u.int_in_range(0u8..=3)? {
        0 => w.iter_mut().for_each(|x| *x = -*x),
        1 => w.iter_mut().for_each(|x| {
            if g.next() & 1 == 0 {
                *x = -*x
            }
        }),
        _ => {}
    }
    if u.ratio(1u8, 4u8)? {
        w.reverse();
    }
    Ok(w)
}
