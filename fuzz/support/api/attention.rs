//! The `attention` operation: views, scorer, mask, key length, bias and lse from the input; then a call, checked against the model, the untouched-buffer rule and the finite and convex tiers.

#[allow(unused_imports)]
use super::*;

pub(crate) fn attention(u: &mut Unstructured) -> Result<()> {
    // 0 run, 1 run_lse, 2 run_heads without lse, 3 run_heads with lse.
    let entry = u.int_in_range(0u8..=3)?;
    let mat = entry <= 1;
    let consistent = u.ratio(3u8, 4u8)?;
    let (mut kvh, group) = if mat { (1, 1) } else { (u.int_in_range(1..=3)?, u.int_in_range(1..=3)?) };
    let mut nh = kvh * group;
    let mut n_q = if one_in(u, 8)? { 0 } else { u.int_in_range(1..=12)? };
    let mut n_kv = if one_in(u, 8)? { 0 } else { u.int_in_range(1..=80)? };
    let mut d = *u.choose(&[1, 2, 3, 4, 5, 7, 8, 16, 17, 33])?;
    let mut dv = *u.choose(&[1, 2, 3, 4, 5, 8, 9, 16])?;
    if !consistent {
        // Any of the shared dimensions, anything.
        match u.int_in_range(0u8..=5)? {
            0 if !mat => nh = size(u, 8)?,
            1 if !mat => kvh = size(u, 4)?,
            2 => n_q = size(u, 16)?,
            3 => n_kv = size(u, 100)?,
            4 => d = size(u, 40)?,
            _ => dv = size(u, 16)?,
        }
    }
    // Each operand may disagree with the others in one dimension.
    let mut dims = [(nh, n_q, d), (kvh, n_kv, d), (kvh, n_kv, dv), (nh, n_q, dv)];
    if !consistent && u.ratio(1u8, 2u8)? {
        let which = u.int_in_range(0..=3)?;
        match u.int_in_range(0u8..=2)? {
            0 if !mat => dims[which].0 = size(u, 4)?,
            1 => dims[which].1 = size(u, 16)?,
            _ => dims[which].2 = size(u, 16)?,
        }
    }
    let mut ops = Vec::with_capacity(4);
    for (t, &(h, r, c)) in dims.iter().enumerate() {
        ops.push(operand(u, h, r, c, mat, if t == 0 { CAP_Q } else { CAP_KV })?);
    }
    let [qo, mut ko, mut vo, oo]: [Operand; 4] = ops.try_into().unwrap();
    // K and V in one buffer (a KV cache read twice).
    if one_in(u, 6)? && ko.cols == vo.cols {
        vo = ko.clone();
    }
    if one_in(u, 16)? {
        std::mem::swap(&mut ko.buf, &mut vo.buf);
    }

    let kind = u.int_in_range(0u8..=3)?;
    // `Additive` weights, for the queries' width (which the other operands
    // may not share).
    let w_buf = if kind == 3 { additive_w(u, qo.cols)? } else { vec![] };
    let scorer = match kind {
        0 => Scorer::Dot { scale: if u.ratio(1u8, 2u8)? { None } else { Some(param(u)?) } },
        1 => Scorer::NegSqDist { scale: if u.ratio(1u8, 2u8)? { None } else { Some(param(u)?) } },
        2 => Scorer::NegLogDist { eps: param(u)?, p: param(u)? },
        _ => Scorer::Additive { w: &w_buf },
    };
    let off = |u: &mut Unstructured| -> Result<usize> {
        Ok(if u.ratio(3u8, 4u8)? { u.int_in_range(0..=n_kv.saturating_add(1))? } else { size(u, 100)? })
    };
    let mask = match u.int_in_range(0u8..=4)? {
        0 => Mask::None,
        1 => Mask::Causal { offset: off(u)? },
        2 => Mask::causal_bottom_right(n_q, n_kv),
        _ => Mask::Window { offset: off(u)?, left: size(u, 40)?, right: size(u, 40)? },
    };
    let key_len = if one_in(u, 3)? { Some(off(u)?) } else { None };
    let kern = kernel(u)?;

    // Bias: rows × cols per head, strides, buffer.
    let bias_spec = if one_in(u, 3)? {
        let rows = if u.ratio(7u8, 8u8)? { n_q } else { size(u, 16)? };
        let cols = if u.ratio(7u8, 8u8)? { n_kv } else { size(u, 100)? };
        let shared = one_in(u, 4)?;
        let rs = match u.int_in_range(0u8..=4)? {
            0 | 1 => cols,
            2 => 0,
            3 => cols.saturating_add(u.int_in_range(1..=3)?),
            _ => size(u, 100)?,
        };
        let hs = match u.int_in_range(0u8..=3)? {
            0 => 0,
            1 | 2 => rows.saturating_mul(rs),
            _ => size(u, 400)?,
        };
        let needed = (nh as u128)
            .saturating_sub(1)
            .saturating_mul(hs as u128)
            .saturating_add((rows as u128).saturating_sub(1).saturating_mul(rs as u128))
            .saturating_add(cols as u128);
        let len = match u.int_in_range(0u8..=3)? {
            0 | 1 => needed,
            2 => needed.saturating_sub(1),
            _ => u.int_in_range(0u128..=2048)?,
        }
        .min(4096) as usize;
        Some((rows, cols, rs, hs, shared, floats(u, len)?))
    } else {
        None
    };
    // Softcap, ALiBi slopes and sinks: each in one call of four, any value;
    // slopes and sinks of the right length most of the time.
    let softcap = if one_in(u, 4)? { Some(param(u)?) } else { None };
    let per_head = |u: &mut Unstructured| -> Result<Option<Vec<f32>>> {
        if !one_in(u, 4)? {
            return Ok(None);
        }
        let len = if u.ratio(7u8, 8u8)? { nh } else { size(u, 10)? };
        let mut x = floats(u, len.min(64))?;
        if !x.is_empty() && one_in(u, 8)? {
            let t = u.choose_index(x.len())?;
            x[t] = *u.choose(&[f32::NAN, f32::INFINITY, f32::NEG_INFINITY])?;
        }
        Ok(Some(x))
    };
    let slopes = per_head(u)?;
    let sinks = per_head(u)?;
    let extras = softcap.is_some() || slopes.is_some() || sinks.is_some();
    let lse_len = match u.int_in_range(0u8..=3)? {
        0 | 1 => nh.saturating_mul(n_q).min(1024),
        2 => nh.saturating_mul(n_q).saturating_sub(1).min(1024),
        _ => u.int_in_range(0..=1024)?,
    };
    let mut lse = floats(u, lse_len)?;
    let mut out_buf = oo.buf.clone();

    // Build the views, each checked against the model.
    let qv = heads_ref(&qo, &qo.buf);
    agree("q view", qo.verdict(), &qv);
    let kv = heads_ref(&ko, &ko.buf);
    agree("k view", ko.verdict(), &kv);
    let vv = heads_ref(&vo, &vo.buf);
    agree("v view", vo.verdict(), &vv);
    let out_ok = {
        let r = heads_mut(&oo, &mut out_buf);
        agree("out view", oo.verdict(), &r);
        r.is_ok()
    };
    let mut att = Attention::new(scorer).mask(mask).kernel(kern.0).max_level(kern.1);
    assert!(att.level().supported() && att.level().lanes() <= kern.1.lanes(), "level cap");
    if let Some(n) = key_len {
        att = att.key_len(n);
    }
    if let Some(c) = softcap {
        att = att.softcap(c);
    }
    if let Some(x) = &slopes {
        att = att.alibi(x);
    }
    if let Some(x) = &sinks {
        att = att.sinks(x);
    }
    let mut bias_entry = None;
    if let Some((rows, cols, rs, hs, shared, buf)) = &bias_spec {
        let b = if *shared && *hs == 0 && *rs == *cols {
            Bias::shared(buf, *rows, *cols)
        } else {
            Bias::new(buf, *rows, *cols, *hs, *rs)
        };
        let expect = if *rs != 0 && rs < cols { Verdict::Err } else { Verdict::Ok };
        agree("Bias::new", expect, &b);
        match b {
            Ok(b) => {
                att = att.bias(b);
                bias_entry = Some((*rows, *cols, *rs, *hs, buf.as_slice()));
            }
            Err(_) => return Ok(()),
        }
    }
    let (Ok(qv), Ok(kv), Ok(vv), true) = (qv, kv, vv, out_ok) else { return Ok(()) };

    // The documented checks of the call.
    let (nh, kvh, n_q, n_kv, d) = (qv.heads(), kv.heads(), qv.rows(), kv.rows(), qv.cols());
    let kl = key_len.unwrap_or(n_kv);
    let with_lse = entry == 1 || entry == 3;
    // The first failing check, in the order of the docs (`Attention::problem`).
    let expected: core::result::Result<(), Error> = (|| {
        let mismatch = |what, expected: usize, found: usize| {
            if expected == found {
                Ok(())
            } else {
                Err(Error::ShapeMismatch { what, expected, found })
            }
        };
        mismatch("k", d, kv.cols())?;
        mismatch("v", kvh, vv.heads())?;
        mismatch("v", n_kv, vv.rows())?;
        if kvh == 0 || nh == 0 || nh % kvh != 0 {
            return Err(Error::HeadGrouping { n_heads: nh, n_kv_heads: kvh });
        }
        mismatch("out", nh, oo.heads)?;
        mismatch("out", n_q, oo.rows)?;
        mismatch("out", vv.cols(), oo.cols)?;
        if let Some(e) = scorer_error(scorer, d) {
            return Err(e);
        }
        if kl > n_kv {
            return Err(Error::OutOfRange { what: "key_len", value: kl, max: n_kv });
        }
        if offset_of(mask) > n_kv {
            return Err(Error::OutOfRange { what: "offset", value: offset_of(mask), max: n_kv });
        }
        if let Some((rows, cols, rs, hs, buf)) = bias_entry {
            mismatch("bias", n_q, rows)?;
            mismatch("bias", n_kv, cols)?;
            if nh > 0 && n_q > 0 && n_kv > 0 {
                let needed = (nh as u128 - 1)
                    .saturating_mul(hs as u128)
                    .saturating_add((n_q as u128 - 1).saturating_mul(rs as u128))
                    .saturating_add(n_kv as u128);
                if needed > MAX {
                    return Err(Error::Overflow { what: "bias" });
                }
                if needed > buf.len() as u128 {
                    return Err(Error::BufferTooShort {
                        what: "bias",
                        needed: needed as usize,
                        len: buf.len(),
                    });
                }
            }
        }
        if let Some(c) = softcap {
            if !(c.is_finite() && c > 0.0) {
                return Err(Error::InvalidParameter { what: "softcap", value: c });
            }
        }
        for (what, x) in [("alibi_slopes", &slopes), ("sinks", &sinks)] {
            if let Some(x) = x {
                mismatch(what, nh, x.len())?;
                if let Some(&bad) = x.iter().find(|x| !x.is_finite()) {
                    return Err(Error::InvalidParameter { what, value: bad });
                }
            }
        }
        if with_lse {
            let needed = nh as u128 * n_q as u128;
            if needed > MAX {
                return Err(Error::Overflow { what: "lse" });
            }
            if needed > lse.len() as u128 {
                return Err(Error::BufferTooShort { what: "lse", needed: needed as usize, len: lse.len() });
            }
        }
        Ok(())
    })();
    let valid = expected.is_ok();
    // Known bug: with no query rows, the kernels still loop over every head
    // (and the tiled one zeroes its scratch for each), so 2^64 heads hang.
    if valid && n_q == 0 && nh > 1 << 16 && known("heads-loop") {
        return Ok(());
    }

    let lse_before = lse.clone();
    let out_before = oo.buf.clone();
    let res = {
        let out = &mut out_buf;
        match entry {
            0 => att.run(mat_ref(&qo, &qo.buf).unwrap(), kv.head(0), vv.head(0), mat_mut(&oo, out).unwrap()),
            1 => att.run_lse(
                mat_ref(&qo, &qo.buf).unwrap(),
                kv.head(0),
                vv.head(0),
                mat_mut(&oo, out).unwrap(),
                &mut lse,
            ),
            2 => att.run_heads(qv, kv, vv, heads_mut(&oo, out).unwrap(), None),
            _ => att.run_heads(qv, kv, vv, heads_mut(&oo, out).unwrap(), Some(&mut lse)),
        }
    };
    let ctx = || {
        format!(
            "{entry_name} with {kern:?}, {scorer:?}, {mask:?}, key_len {key_len:?}, bias {:?}, \
             softcap {softcap:?}, slopes {slopes:?}, sinks {sinks:?}, \
             heads {nh}/{kvh}, n_q {n_q}, n_kv {n_kv}, d {d}, dv {}",
            bias_entry.map(|(r, c, rs, hs, b)| (r, c, rs, hs, b.len())),
            oo.cols,
            entry_name = ["run", "run_lse", "run_heads", "run_heads+lse"][entry as usize]
        )
    };
    match (&res, &expected) {
        (Ok(()), Err(x)) => panic!("{}: invalid per the docs ({x:?}), accepted", ctx()),
        (Err(e), Ok(())) => panic!("{}: valid per the docs, rejected: {e:?}", ctx()),
        (Err(e), Err(x)) if !same_error(e, x) => {
            panic!("{}: rejected with {e:?}, the docs' first failing check gives {x:?}", ctx())
        }
        _ => {}
    }
    if let Err(e) = res {
        let _ = format!("{e}");
        assert!(same_bits(&out_buf, &out_before), "{}: Err({e:?}) but the output was written", ctx());
        assert!(same_bits(&lse, &lse_before), "{}: Err({e:?}) but lse was written", ctx());
        return Ok(());
    }

    // Ok: nothing written outside the output view and lse[..nh * n_q].
    let ins = inside(&oo);
    for (idx, (&a, &b)) in out_buf.iter().zip(&out_before).enumerate() {
        assert!(ins[idx] || a.to_bits() == b.to_bits(), "{}: out[{idx}] outside the view was written", ctx());
    }
    let lse_rows = if with_lse { nh * n_q } else { 0 };
    assert!(same_bits(&lse[lse_rows..], &lse_before[lse_rows..]), "{}: lse past heads * n_q written", ctx());

    // Tiers (module docs). With a softcap, ALiBi or sinks only the checks
    // above apply here: their results are checked against the f64
    // reference by the `differential` target.
    if extras {
        return Ok(());
    }
    let group = nh / kvh;
    // n_q = 0: no row to look at, however many heads.
    let nh_rows = if n_q == 0 { 0 } else { nh };
    let bias_at = |h: usize, i: usize, j: usize| bias_entry.map(|(_, _, rs, hs, b)| b[h * hs + i * rs + j]);
    let moderate = |x: f32| x.is_finite() && (x as f64).abs() <= BIG;
    let additive = matches!(scorer, Scorer::Additive { .. });
    let sq_dist = matches!(scorer, Scorer::NegSqDist { .. });
    // Additive: q and k anything but NaN (tanh saturates), see below.
    // NegSqDist: any finite q and k (documented: scores never NaN or +∞ for
    // finite inputs; a key whose d² overflows weighs 0). Values: anywhere
    // in the finite range (documented: the output is then finite).
    let qk_ok = |x: f32| if additive { !x.is_nan() } else if sq_dist { x.is_finite() } else { moderate(x) };
    let all_qk = |ok: &dyn Fn(f32) -> bool| {
        (0..nh_rows).all(|h| (0..n_q).all(|i| qv.head(h).row(i).iter().all(|&x| ok(x))))
            && (0..if kl == 0 { 0 } else { kvh }).all(|h| (0..kl).all(|j| kv.head(h).row(j).iter().all(|&x| ok(x))))
    };
    let values_ok = (0..if kl == 0 { 0 } else { kvh })
        .all(|h| (0..kl).all(|j| vv.head(h).row(j).iter().all(|x| x.is_finite())));
    let mut data_ok = all_qk(&qk_ok) && values_ok;
    // NegSqDist is convex (no key overflows to weight 0) for moderate q, k.
    let qk_moderate = !sq_dist || all_qk(&moderate);
    // Additive: `+∞ + −∞` in a column of a visible pair is a NaN score.
    if additive && data_ok {
        data_ok = (0..nh_rows).all(|h| {
            (0..n_q).all(|i| {
                let q = qv.head(h).row(i);
                let (lo, hi) = model_range(mask, i, kl).unwrap_or((0, 0));
                (lo..hi).all(|j| kv.head(h / group).row(j).iter().zip(q).all(|(&k, &q)| !(q + k).is_nan()))
            })
        });
    }
    let mut neg_inf_bias = false;
    if bias_entry.is_some() {
        for h in 0..nh_rows {
            for i in 0..n_q {
                for j in 0..kl {
                    let b = bias_at(h, i, j).unwrap();
                    neg_inf_bias |= b == f32::NEG_INFINITY;
                    data_ok &= moderate(b) || b == f32::NEG_INFINITY;
                }
            }
        }
    }
    let scale_eff = |s: Option<f32>| s.map_or(1.0 / (d as f64).sqrt(), |x| x as f64);
    let (pos_inf_logit, convex_params) = match scorer {
        Scorer::Dot { scale } => {
            let s = scale_eff(scale);
            (s > 2f64.powi(40), s <= 2f64.powi(40))
        }
        // Documented: scores `−scale · d²` are never positive; with a huge
        // scale every one may overflow to `−∞` (an empty row, not convex).
        Scorer::NegSqDist { scale } => (false, scale_eff(scale) <= 2f64.powi(40)),
        Scorer::NegLogDist { eps, p } => (eps == 0.0, p <= 4.0 && (eps as f64) <= 2f64.powi(100)),
        // Documented: scores in [−‖w‖₁, ‖w‖₁], never infinite.
        Scorer::Additive { .. } => (false, true),
        _ => (true, false),
    };
    let finite_tier = data_ok && !(neg_inf_bias && pos_inf_logit);
    let convex_tier = finite_tier && convex_params && qk_moderate;

    let dv = oo.cols;
    for h in 0..nh_rows {
        let (v, q) = (vv.head(h / group), qv.head(h));
        for i in 0..n_q {
            let o = oo.offset(h, i);
            let row = &out_buf[o..o + dv];
            let q_finite = q.row(i).iter().all(|x| x.is_finite());
            let lse_i = with_lse.then(|| lse[h * n_q + i]);
            let keys = model_range(mask, i, kl);
            let got = mask.key_range(i, kl);
            match keys {
                None => assert!(got.is_empty(), "{}: key_range({i}, {kl}) = {got:?}, expected empty", ctx()),
                Some((lo, hi)) => assert_eq!(got, lo..hi, "{}: key_range({i}, {kl})", ctx()),
            }
            let empty_row = |what: &str| {
                assert!(
                    row.iter().all(|&x| x == 0.0),
                    "{}: head {h} row {i} {what}: out {row:?}, expected 0",
                    ctx()
                );
                if let Some(l) = lse_i {
                    assert!(
                        l == f32::NEG_INFINITY,
                        "{}: head {h} row {i} {what}: lse {l}, expected -inf",
                        ctx()
                    );
                }
            };
            if keys.is_none() && q_finite {
                empty_row("sees no key");
            }
            if finite_tier {
                assert!(
                    row.iter().all(|x| x.is_finite()),
                    "{}: head {h} row {i}: out {row:?} not finite (finite tier)",
                    ctx()
                );
            }
            if !convex_tier {
                continue;
            }
            let seen: Vec<usize> = keys
                .map_or(0..0, |(lo, hi)| lo..hi)
                .filter(|&j| bias_at(h, i, j) != Some(f32::NEG_INFINITY))
                .collect();
            if seen.is_empty() {
                empty_row("sees only -inf biases");
                continue;
            }
            if let (Scorer::Additive { w }, Some(l)) = (scorer, lse_i) {
                // Scores in [−‖w‖₁, ‖w‖₁]: max b − ‖w‖₁ ≤ lse ≤ max b + ‖w‖₁ + ln n.
                // The slack (64u relative) is loose: it is there for overflow.
                let l1 = l1_f64(w);
                let bmax =
                    seen.iter().map(|&j| bias_at(h, i, j).unwrap_or(0.0) as f64).fold(f64::MIN, f64::max);
                let ln_n = (seen.len() as f64).ln();
                let slack = 64.0 * U * (l1 + bmax.abs() + ln_n + 1.0);
                let (lo, hi) = (bmax - l1 - slack, bmax + l1 + ln_n + slack);
                assert!(
                    (l as f64) >= lo && (l as f64) <= hi,
                    "{}: head {h} row {i}: lse {l:e} outside [{lo:e}, {hi:e}] (‖w‖₁ {l1:e}, max bias {bmax:e}, \
                     {} keys): a score beyond ±‖w‖₁",
                    ctx(),
                    seen.len()
                );
            }
            let slack_rel = 8.0 * gamma(2 * seen.len() + 3);
            for (c, &x) in row.iter().enumerate() {
                let vals = seen.iter().map(|&j| v.row(j)[c] as f64);
                let lo = vals.clone().fold(f64::INFINITY, f64::min);
                let hi = vals.clone().fold(f64::NEG_INFINITY, f64::max);
                let amax = vals.fold(0.0f64, |m, x| m.max(x.abs()));
                let s = slack_rel * amax + 1e-30;
                assert!(
                    (x as f64) >= lo - s && (x as f64) <= hi + s,
                    "{}: head {h} row {i} col {c}: out {x:e} outside the values' range [{lo:e}, {hi:e}] \
                     of its {} keys (convex tier)",
                    ctx(),
                    seen.len()
                );
            }
        }
    }
    Ok(())
}
