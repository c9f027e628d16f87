//! The `merge` operation: `streamattn::merge` on arbitrary views and lse slices.

#[allow(unused_imports)]
use super::*;

pub(crate) fn lse_value(u: &mut Unstructured) -> Result<f32> {
    Ok(match u.int_in_range(0u8..=7)? {
        0..=2 => (u.int_in_range(-400i32..=400)? as f32) / 8.0,
        3 => f32::NEG_INFINITY,
        4 => *u.choose(&[f32::INFINITY, f32::NAN, 1e30, -1e30, 3e38, -3e38, 88.0, -104.0])?,
        5 => u.int_in_range(-2000i32..=2000)? as f32,
        _ => f32::from_bits(u.arbitrary()?),
    })
}

pub(crate) fn merge_op(u: &mut Unstructured) -> Result<()> {
    let rows = if u.ratio(7u8, 8u8)? { u.int_in_range(0..=8)? } else { size(u, 8)? };
    let cols = if u.ratio(7u8, 8u8)? { u.int_in_range(1..=9)? } else { size(u, 8)? };
    let (rb, cb) = if u.ratio(7u8, 8u8)? { (rows, cols) } else { (size(u, 8)?, size(u, 8)?) };
    let a = operand(u, 1, rows, cols, true, 1024)?;
    let b = operand(u, 1, rb, cb, true, 1024)?;
    let lse_len = |u: &mut Unstructured, n: usize| -> Result<usize> {
        Ok(match u.int_in_range(0u8..=3)? {
            0 | 1 => n.min(1024),
            2 => n.saturating_sub(1).min(1024),
            _ => u.int_in_range(0..=1024)?,
        })
    };
    let (na, nb) = (lse_len(u, rows)?, lse_len(u, rows)?);
    let mut lse_a = (0..na).map(|_| lse_value(u)).collect::<Result<Vec<f32>>>()?;
    let lse_b = (0..nb).map(|_| lse_value(u)).collect::<Result<Vec<f32>>>()?;
    let mut out_a = a.buf.clone();
    let b_view = mat_ref(&b, &b.buf);
    agree("merge out_b view", b.verdict(), &b_view);
    let (out_before, lse_before) = (out_a.clone(), lse_a.clone());
    let a_view = mat_mut(&a, &mut out_a);
    agree("merge out_a view", a.verdict(), &a_view);
    let (Ok(a_view), Ok(b_view)) = (a_view, b_view) else { return Ok(()) };
    let valid = rb == rows && cb == cols && na >= rows && nb >= rows;
    let res = merge(a_view, &mut lse_a, b_view, &lse_b);
    let ctx = format!("merge {rows}x{cols} (b {rb}x{cb}), lse lengths {na}/{nb}");
    match &res {
        Ok(()) if !valid => panic!("{ctx}: invalid per the docs, accepted"),
        Err(e) if valid => panic!("{ctx}: valid per the docs, rejected: {e:?}"),
        Err(e) => {
            let _ = format!("{e}");
            assert!(same_bits(&out_a, &out_before) && same_bits(&lse_a, &lse_before), "{ctx}: Err wrote");
            return Ok(());
        }
        Ok(()) => {}
    }
    let ins = inside(&a);
    for (idx, (&x, &y)) in out_a.iter().zip(&out_before).enumerate() {
        assert!(ins[idx] || x.to_bits() == y.to_bits(), "{ctx}: out_a[{idx}] outside the view was written");
    }
    assert!(same_bits(&lse_a[rows..], &lse_before[rows..]), "{ctx}: lse_a past the rows was written");
    for r in 0..rows {
        let (oa, ob) = (a.offset(0, r), b.offset(0, r));
        check_merge_row(
            &format!("{ctx}, row {r}"),
            &out_before[oa..oa + cols],
            lse_before[r],
            &b.buf[ob..ob + cols],
            lse_b[r],
            &out_a[oa..oa + cols],
            lse_a[r],
        );
    }
    Ok(())
}

/// One merged row against the documented semantics.
///
/// General case (both lse finite): the exact union is `O = c_a x_a + c_b x_b`,
/// `c_a = 1/(1 + e^{L_b − L_a})`, `L = max + ln(1 + e^{−|L_a − L_b|})`. The
/// merge computes `e^{fl(L_x − max)}` (the larger weight exactly 1): the
/// subtraction errs by `u|L_a − L_b|` in the exponent, `expf` by 1 ulp
/// (`4u` allowed), the sum and the division by `u` each, so the computed
/// `c_x` has relative error at most `ρ = e^{u|ΔL| + 4u}(1 + u)² − 1`; the
/// final `c_a x_a + c_b x_b` adds `γ(2)` relative (plus `10^-42` for
/// subnormal products). A weight `e^{−|ΔL|}` below `2^-126` is subnormal,
/// with an absolute (not relative) error of `2^-150` from `expf` and another
/// from the division: `2^-149 (|x_a| + |x_b|)` more. The lse: the sum `1 + w` is off by at most a factor
/// `1 ± ρ`, then the log and the addition round by `u(|L| + 1)` each.
pub(crate) fn check_merge_row(ctx: &str, xa: &[f32], la: f32, xb: &[f32], lb: f32, got: &[f32], lg: f32) {
    let eq = |x: f32, y: f32| x == y || (x.is_nan() && y.is_nan());
    let finite = |x: &[f32]| x.iter().all(|v| v.is_finite());
    let (inf, ninf) = (f32::INFINITY, f32::NEG_INFINITY);
    if la.is_nan() || lb.is_nan() {
        assert!(
            got.iter().all(|x| x.is_nan()) && lg.is_nan(),
            "{ctx}: NaN lse ({la}, {lb}) but row {got:?}, lse {lg}"
        );
    } else if la == ninf && lb == ninf {
        assert!(
            got.iter().all(|&x| x == 0.0) && lg == ninf,
            "{ctx}: two empty partials gave {got:?}, lse {lg}"
        );
    } else if (lb == ninf || (la == inf && lb != inf)) && finite(xb) {
        assert!(
            xa.iter().zip(got).all(|(&x, &y)| eq(x, y)) && lg == la,
            "{ctx}: a unchanged expected: {xa:?} -> {got:?}, lse {la} -> {lg}"
        );
    } else if (la == ninf || (lb == inf && la != inf)) && finite(xa) {
        assert!(
            xb.iter().zip(got).all(|(&x, &y)| eq(x, y)) && lg == lb,
            "{ctx}: b expected: {xb:?} -> {got:?}, lse {lb} -> {lg}"
        );
    } else if la == inf && lb == inf {
        assert!(lg == inf, "{ctx}: two +inf partials gave lse {lg}");
        if finite(xa) && finite(xb) {
            for ((&x, &y), &g) in xa.iter().zip(xb).zip(got) {
                let (x, y, g) = (x as f64, y as f64, g as f64);
                let bound = U * (x.abs() + y.abs()) + 1e-44;
                assert!(
                    (g - 0.5 * (x + y)).abs() <= bound,
                    "{ctx}: two +inf partials: {g:e}, expected the average of {x:e} and {y:e}"
                );
            }
        }
    } else if la.is_finite() && lb.is_finite() {
        let (a64, b64) = (la as f64, lb as f64);
        let dl = (a64 - b64).abs();
        let rho = (U * dl + 4.0 * U).exp() * (1.0 + U).powi(2) - 1.0;
        let big_l = a64.max(b64) + (-dl).exp().ln_1p();
        let lse_bound = -(1.0 - rho).ln() + 2.0 * U * (big_l.abs() + 1.0);
        assert!(
            (lg as f64 - big_l).abs() <= lse_bound
                || rho >= 1.0
                || !(lg as f64).is_finite() && big_l.abs() > f32::MAX as f64,
            "{ctx}: lse {lg:e}, exact {big_l:e}, bound {lse_bound:e} (inputs {la:e}, {lb:e})"
        );
        if finite(xa) && finite(xb) {
            let ca = 1.0 / (1.0 + (b64 - a64).exp());
            let cb = 1.0 / (1.0 + (a64 - b64).exp());
            for ((&x, &y), &g) in xa.iter().zip(xb).zip(got) {
                let (x, y) = (x as f64, y as f64);
                let mag = ca * x.abs() + cb * y.abs();
                // A weight below 2^-126 is subnormal: absolute error 2^-150 in
                // the exponential and again in the division.
                let bound = (rho + gamma(2) * (1.0 + rho)) * mag + SUB * (x.abs() + y.abs()) + 1e-42;
                let exact = ca * x + cb * y;
                // (A result within rounding of f32::MAX may overflow.)
                let overflow = g.is_infinite() && mag * (1.0 + 4.0 * U) >= f32::MAX as f64;
                assert!(
                    (g as f64 - exact).abs() <= bound || (rho >= 1.0 && g.is_finite()) || overflow,
                    "{ctx}: merged {g:e}, exact {exact:e}, bound {bound:e} (x {x:e}, y {y:e}, lse {la:e}, {lb:e})"
                );
            }
        }
    }
}
