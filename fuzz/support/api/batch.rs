//! The `batch` operation: `run_batch` and `par_run_batch` on a packed batch
//! of up to five sequences, each over a contiguous or paged cache, with one
//! argument possibly wrong; checked against the model of the documented
//! checks (in order), the untouched-buffer rule, and, on `Ok`, against one
//! `run_heads` call per sequence on the same views with the mask at the
//! cache's last rows, bit for bit.

#[allow(unused_imports)]
use super::*;
use streamattn::KvSplit;

/// One sequence's cache: new rows, cache rows, and K/V buffers (dense
/// `[rows, heads, cols]`, or a pool of blocks read through `table`).
struct Seq {
    n_q: usize,
    n_kv: usize,
    cols_k: usize,
    heads: usize,
    k: Vec<f32>,
    v: Vec<f32>,
    paged: Option<(PagedLayout, PagedLayout, Vec<u32>)>,
}

impl Seq {
    fn views(&self, dv: usize) -> (HeadsRef<'_>, HeadsRef<'_>) {
        match &self.paged {
            None => (
                HeadsRef::seq_major(&self.k, self.heads, self.n_kv, self.cols_k).unwrap(),
                HeadsRef::seq_major(&self.v, self.heads, self.n_kv, dv).unwrap(),
            ),
            Some((lk, lv, table)) => (
                HeadsRef::paged(&self.k, *lk, table, self.n_kv).unwrap(),
                HeadsRef::paged(&self.v, *lv, table, self.n_kv).unwrap(),
            ),
        }
    }
}

pub(crate) fn batch_op(u: &mut Unstructured) -> Result<()> {
    let kvh = u.int_in_range(1..=2)?;
    let nh = kvh * u.int_in_range(1..=3)?;
    let d = *u.choose(&[1, 3, 8, 16, 17])?;
    let dv = *u.choose(&[1, 4, 9])?;
    let n = u.int_in_range(0..=5)?;
    let mut seqs = Vec::with_capacity(n);
    for _ in 0..n {
        let n_kv = if one_in(u, 6)? { 0 } else { u.int_in_range(1..=70)? };
        let n_q = if one_in(u, 4)? { 0 } else { u.int_in_range(1..=n_kv.clamp(1, 9))? };
        // Now and then a sequence of the wrong width or heads.
        let cols_k = if one_in(u, 24)? { d + 1 } else { d };
        let heads = if one_in(u, 24)? { kvh + 1 } else { kvh };
        let (k, v, paged) = if u.ratio(1u8, 2u8)? {
            (floats(u, n_kv * heads * cols_k)?, floats(u, n_kv * heads * dv)?, None)
        } else {
            let bs = u.int_in_range(1..=20)?;
            let blocks = n_kv.div_ceil(bs).max(1) + u.int_in_range(0..=2)?;
            let lk = PagedLayout::seq_major(bs, heads, cols_k).unwrap();
            let lv = PagedLayout::seq_major(bs, heads, dv).unwrap();
            let mut table: Vec<u32> = (0..blocks as u32).collect();
            for i in (1..table.len()).rev() {
                table.swap(i, u.int_in_range(0..=i)?);
            }
            (floats(u, blocks * lk.block_stride)?, floats(u, blocks * lv.block_stride)?, Some((lk, lv, table)))
        };
        // Short random buffers: only exact lengths make valid views.
        let full = match &paged {
            None => k.len() == n_kv * heads * cols_k && v.len() == n_kv * heads * dv,
            Some((lk, lv, t)) => k.len() == t.len() * lk.block_stride && v.len() == t.len() * lv.block_stride,
        };
        if !full {
            return Ok(());
        }
        seqs.push(Seq { n_q, n_kv, cols_k, heads, k, v, paged });
    }
    let mut cu: Vec<usize> = vec![0];
    for s in &seqs {
        cu.push(cu.last().unwrap() + s.n_q);
    }
    let total = *cu.last().unwrap();
    let q = floats(u, total * nh * d)?;
    if q.len() != total * nh * d {
        return Ok(());
    }
    // One argument possibly wrong.
    let mut out_rows = total;
    let mut lse_len = nh * total;
    let mut v_count = seqs.len();
    match u.int_in_range(0u8..=15)? {
        0 => {
            cu.pop();
        }
        1 => cu[0] = 1,
        2 if cu.len() > 2 => {
            let i = u.int_in_range(1..=cu.len() - 2)?;
            cu[i] = cu[i + 1] + 1;
        }
        3 => *cu.last_mut().unwrap() += 1,
        4 if out_rows > 0 => out_rows -= 1,
        5 => lse_len = lse_len.saturating_sub(1),
        6 if v_count > 0 => v_count -= 1,
        _ => {}
    }
    let mask = match u.int_in_range(0u8..=3)? {
        0 => Mask::None,
        1 => Mask::Causal { offset: u.int_in_range(0..=3)? },
        _ => Mask::Window { offset: u.int_in_range(0..=3)?, left: size(u, 10)?, right: size(u, 4)? },
    };
    let kern = kernel(u)?;
    let mut att = Attention::new(Scorer::dot()).mask(mask).kernel(kern.0).max_level(kern.1);
    let norms = [0.0f32; 1];
    // 0: key_len, 1: bias, 2: cached key norms (each unsupported in a batch).
    let unsupported = u.int_in_range(0u8..=15)?;
    match unsupported {
        0 => att = att.key_len(0),
        1 => att = att.bias(Bias::shared(&norms, 1, 1).unwrap()),
        2 => att = att.cached_key_norms(HeadsRef::heads_major(&norms, 1, 1, 1).unwrap()),
        _ => {}
    }
    let sinks_len = if one_in(u, 8)? { nh + 1 } else { nh };
    let sinks_buf = floats(u, sinks_len)?;
    let sinks = if u.ratio(1u8, 3u8)? { Some(&sinks_buf[..]) } else { None };
    let softcap = if one_in(u, 4)? { Some(param(u)?) } else { None };
    let slopes_buf = floats(u, nh)?;
    let slopes = if one_in(u, 4)? { Some(&slopes_buf[..]) } else { None };
    if let Some(x) = sinks {
        att = att.sinks(x);
    }
    if let Some(c) = softcap {
        att = att.softcap(c);
    }
    if let Some(x) = slopes {
        att = att.alibi(x);
    }

    // The documented checks, in order.
    let expected: core::result::Result<(), Error> = (|| {
        let mismatch = |what, expected: usize, found: usize| {
            if expected == found {
                Ok(())
            } else {
                Err(Error::ShapeMismatch { what, expected, found })
            }
        };
        if unsupported <= 2 {
            return Err(Error::Unsupported { what: ["key_len", "bias", "key_norms"][unsupported as usize] });
        }
        mismatch("v", seqs.len(), v_count)?;
        mismatch("cu_seqlens", seqs.len() + 1, cu.len())?;
        mismatch("cu_seqlens", 0, cu[0])?;
        if let Some(index) = (1..cu.len()).find(|&s| cu[s] < cu[s - 1]) {
            return Err(Error::Decreasing { what: "cu_seqlens", index });
        }
        mismatch("cu_seqlens", total, cu[cu.len() - 1])?;
        mismatch("out", total, out_rows)?;
        if nh * total > lse_len {
            return Err(Error::BufferTooShort { what: "lse", needed: nh * total, len: lse_len });
        }
        for (s, seq) in seqs.iter().enumerate() {
            let n_q = cu[s + 1] - cu[s];
            if n_q > seq.n_kv {
                return Err(Error::OutOfRange { what: "cu_seqlens", value: n_q, max: seq.n_kv });
            }
            if n_q > 0 && offset_of(mask) > n_q {
                return Err(Error::OutOfRange { what: "offset", value: offset_of(mask), max: n_q });
            }
            mismatch("k", d, seq.cols_k)?;
            if seq.heads == 0 || nh % seq.heads != 0 {
                return Err(Error::HeadGrouping { n_heads: nh, n_kv_heads: seq.heads });
            }
            if let Some(c) = softcap {
                if !(c.is_finite() && c > 0.0) {
                    return Err(Error::InvalidParameter { what: "softcap", value: c });
                }
            }
            for (what, x) in [("alibi_slopes", slopes), ("sinks", sinks)] {
                if let Some(x) = x {
                    mismatch(what, nh, x.len())?;
                    if let Some(&bad) = x.iter().find(|x| !x.is_finite()) {
                        return Err(Error::InvalidParameter { what, value: bad });
                    }
                }
            }
        }
        Ok(())
    })();

    let views: Vec<_> = seqs.iter().map(|s| s.views(dv)).collect();
    let k: Vec<HeadsRef<'_>> = views.iter().map(|x| x.0).collect();
    let v: Vec<HeadsRef<'_>> = views.iter().map(|x| x.1).take(v_count).collect();
    let qv = HeadsRef::seq_major(&q, nh, total, d).unwrap();
    let lse_init = floats(u, nh * total + 2)?;
    if lse_init.len() != nh * total + 2 {
        return Ok(());
    }
    let par = u.ratio(1u8, 3u8)?;
    let mut out = vec![f32::from_bits(0x7fc0_beef); total * nh * dv];
    let mut lse = lse_init.clone();
    let res = {
        let ov = HeadsMut::seq_major(&mut out[..out_rows * nh * dv], nh, out_rows, dv).unwrap();
        let l = Some(&mut lse[..lse_len]);
        if par {
            att.par_run_batch(qv, &cu, &k, &v, ov, l, KvSplit::Off)
        } else {
            att.run_batch(qv, &cu, &k, &v, ov, l)
        }
    };
    let ctx = || format!("run_batch (par {par}) with {kern:?}, {mask:?}, heads {nh}/{kvh}, d {d}, dv {dv}, cu {cu:?}");
    match (&res, &expected) {
        (Ok(()), Err(x)) => panic!("{}: invalid per the docs ({x:?}), accepted", ctx()),
        (Err(e), Ok(())) => panic!("{}: valid per the docs, rejected: {e:?}", ctx()),
        (Err(e), Err(x)) if !same_error(e, x) => {
            panic!("{}: rejected with {e:?}, the docs' first failing check gives {x:?}", ctx())
        }
        (Err(e), _) => {
            let _ = format!("{e}");
            assert!(out.iter().all(|x| x.to_bits() == 0x7fc0_beef), "{}: Err({e:?}) but out was written", ctx());
            assert!(same_bits(&lse, &lse_init), "{}: Err({e:?}) but lse was written", ctx());
            return Ok(());
        }
        _ => {}
    }
    // Ok: each sequence as one `run_heads` call, bit for bit.
    for (s, seq) in seqs.iter().enumerate() {
        let rows = cu[s]..cu[s + 1];
        if rows.is_empty() {
            continue;
        }
        let shift = seq.n_kv - rows.len();
        let alone = match mask {
            Mask::Causal { offset } => Mask::Causal { offset: shift + offset },
            Mask::Window { offset, left, right } => Mask::Window { offset: shift + offset, left, right },
            m => m,
        };
        let qs = &q[rows.start * nh * d..rows.end * nh * d];
        let mut want = vec![0.0f32; rows.len() * nh * dv];
        let mut want_lse = vec![0.0f32; nh * rows.len()];
        att.mask(alone)
            .run_heads(
                HeadsRef::seq_major(qs, nh, rows.len(), d).unwrap(),
                k[s],
                v[s],
                HeadsMut::seq_major(&mut want, nh, rows.len(), dv).unwrap(),
                Some(&mut want_lse),
            )
            .unwrap_or_else(|e| panic!("{}: sequence {s} alone rejected: {e:?}", ctx()));
        let got = &out[rows.start * nh * dv..rows.end * nh * dv];
        assert!(same_bits(got, &want), "{}: sequence {s} differs from run_heads", ctx());
        for h in 0..nh {
            let got = &lse[h * total + rows.start..h * total + rows.end];
            assert!(same_bits(got, &want_lse[h * rows.len()..][..rows.len()]), "{}: sequence {s} lse", ctx());
        }
    }
    // Nothing written past the batch's lse.
    assert!(same_bits(&lse[nh * total..], &lse_init[nh * total..]), "{}: lse written past the batch", ctx());
    Ok(())
}
