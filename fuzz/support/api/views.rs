//! The `views` operation: the view and bias constructors alone, with absurd numbers.

#[allow(unused_imports)]
use super::*;

pub(crate) fn views(u: &mut Unstructured) -> Result<()> {
    let heads = size(u, 6)?;
    let rows = size(u, 12)?;
    let cols = size(u, 12)?;
    let hs = size(u, 100)?;
    let rs = size(u, 30)?;
    let len = u.int_in_range(0..=2048)?;
    let mut buf = floats(u, len)?;
    let (h, r, c) = (heads as u128, rows as u128, cols as u128);
    let base = buf.as_ptr() as usize;
    let at = |p: *const f32| (p as usize - base) / 4;
    // Rows to look at: first, last, middle, one more.
    let pick = |u: &mut Unstructured, n: usize| -> Result<Vec<usize>> {
        Ok(if n == 0 { vec![] } else { vec![0, n - 1, n / 2, u.int_in_range(0..=n - 1)?] })
    };
    let (rs_pick, hs_pick) = (pick(u, rows)?, pick(u, heads)?);
    let check_mat = |m: &MatRef<'_>, rs: usize, what: &str| {
        assert_eq!((m.rows(), m.cols()), (rows, cols), "{what}: shape");
        for &i in &rs_pick {
            let row = m.row(i);
            assert_eq!((at(row.as_ptr()), row.len()), (i * rs, cols), "{what}: row {i}");
        }
    };
    let check_heads = |m: &HeadsRef<'_>, hs: usize, rs: usize, what: &str| {
        assert_eq!((m.heads(), m.rows(), m.cols()), (heads, rows, cols), "{what}: shape");
        for &hh in &hs_pick {
            let mh = m.head(hh);
            assert_eq!((mh.rows(), mh.cols()), (rows, cols), "{what}: head {hh} shape");
            for &i in &rs_pick {
                let row = mh.row(i);
                assert_eq!(
                    (at(row.as_ptr()), row.len()),
                    (hh * hs + i * rs, cols),
                    "{what}: head {hh} row {i}"
                );
            }
        }
    };
    let display = |e: &Error| {
        let _ = format!("{e}");
    };
    match u.int_in_range(0u8..=8)? {
        0 => {
            let m = MatRef::new(&buf, rows, cols, rs);
            agree("MatRef::new", layout_verdict(1, r, c, 0, rs as u128, len), &m);
            match m {
                Ok(m) => {
                    check_mat(&m, rs, "MatRef::new");
                    let hm = HeadsRef::from_mat(m);
                    assert_eq!(hm.heads(), 1);
                    if rows > 0 {
                        check_mat(&hm.head(0), rs, "HeadsRef::from_mat");
                    }
                }
                Err(e) => display(&e),
            }
        }
        1 => {
            let m = MatRef::dense(&buf, rows, cols);
            agree("MatRef::dense", layout_verdict(1, r, c, 0, c, len), &m);
            match m {
                Ok(m) => check_mat(&m, cols, "MatRef::dense"),
                Err(e) => display(&e),
            }
        }
        2 | 3 => {
            let (m, rs_eff, what) = if u.ratio(1u8, 2u8)? {
                (MatMut::new(&mut buf, rows, cols, rs), rs, "MatMut::new")
            } else {
                (MatMut::dense(&mut buf, rows, cols), cols, "MatMut::dense")
            };
            agree(what, layout_verdict(1, r, c, 0, rs_eff as u128, len), &m);
            match m {
                Ok(mut m) => {
                    assert_eq!((m.rows(), m.cols()), (rows, cols));
                    check_mat(&m.as_ref(), rs_eff, what);
                    for &i in &rs_pick {
                        let row = m.row_mut(i);
                        assert_eq!((at(row.as_ptr()), row.len()), (i * rs_eff, cols), "{what}: row_mut {i}");
                        row.fill(7.0);
                    }
                    let _ = HeadsMut::from_mat(m).heads();
                }
                Err(e) => display(&e),
            }
        }
        4 | 5 => {
            let kind = u.int_in_range(0u8..=2)?;
            let (v, hs_m, rs_m, what) = match kind {
                0 => {
                    (HeadsRef::new(&buf, heads, rows, cols, hs, rs), hs as u128, rs as u128, "HeadsRef::new")
                }
                1 => (HeadsRef::heads_major(&buf, heads, rows, cols), r * c, c, "HeadsRef::heads_major"),
                _ => (HeadsRef::seq_major(&buf, heads, rows, cols), c, h * c, "HeadsRef::seq_major"),
            };
            let verdict = if hs_m > MAX || rs_m > MAX {
                Verdict::Err
            } else {
                layout_verdict(h, r, c, hs_m, rs_m, len)
            };
            agree(what, verdict, &v);
            match v {
                Ok(v) => check_heads(&v, hs_m as usize, rs_m as usize, what),
                Err(e) => display(&e),
            }
        }
        6 => {
            let kind = u.int_in_range(0u8..=2)?;
            let (hs_m, rs_m) = match kind {
                0 => (hs as u128, rs as u128),
                1 => (r * c, c),
                _ => (c, h * c),
            };
            let v = match kind {
                0 => HeadsMut::new(&mut buf, heads, rows, cols, hs, rs),
                1 => HeadsMut::heads_major(&mut buf, heads, rows, cols),
                _ => HeadsMut::seq_major(&mut buf, heads, rows, cols),
            };
            let verdict = if hs_m > MAX || rs_m > MAX {
                Verdict::Err
            } else {
                layout_verdict(h, r, c, hs_m, rs_m, len)
            };
            agree("HeadsMut", verdict, &v);
            match v {
                Ok(v) => assert_eq!((v.heads(), v.rows(), v.cols()), (heads, rows, cols)),
                Err(e) => display(&e),
            }
        }
        7 => paged(u, heads, rows, cols, hs, rs, &buf)?,
        _ => {
            let shared = u.ratio(1u8, 2u8)?;
            let b = if shared { Bias::shared(&buf, rows, cols) } else { Bias::new(&buf, rows, cols, hs, rs) };
            let expect = if !shared && rs != 0 && rs < cols { Verdict::Err } else { Verdict::Ok };
            agree("Bias", expect, &b);
            if let Err(e) = b {
                display(&e);
            }
        }
    }
    Ok(())
}

/// `HeadsRef::paged` (with `PagedLayout::heads_major`, `seq_major` or any
/// strides) against its documented checks, in order, and on `Ok` the rows
/// where the table and strides put them.
fn paged(u: &mut Unstructured, heads: usize, rows: usize, cols: usize, hs: usize, rs: usize, buf: &[f32]) -> Result<()> {
    let bs = size(u, 5)?;
    let n = u.int_in_range(0..=6)?;
    let mut table = Vec::with_capacity(n);
    for _ in 0..n {
        table.push(match u.int_in_range(0u8..=7)? {
            0..=5 => u.int_in_range(0..=12)?,
            6 => u32::MAX - u.int_in_range(0..=2)?,
            _ => u.arbitrary()?,
        });
    }
    let (h, b, c) = (heads as u128, bs as u128, cols as u128);
    let (layout, what) = match u.int_in_range(0u8..=2)? {
        0 => {
            let block_stride = size(u, 300)?;
            (Ok(PagedLayout { block_size: bs, heads, cols, block_stride, head_stride: hs, row_stride: rs }), "any strides")
        }
        1 => {
            let l = PagedLayout::heads_major(bs, heads, cols);
            assert_eq!(l.is_ok(), b * c <= MAX && h.saturating_mul(b * c) <= MAX, "PagedLayout::heads_major: overflow");
            (l, "PagedLayout::heads_major")
        }
        _ => {
            let l = PagedLayout::seq_major(bs, heads, cols);
            assert_eq!(l.is_ok(), h * c <= MAX && b.saturating_mul(h * c) <= MAX, "PagedLayout::seq_major: overflow");
            (l, "PagedLayout::seq_major")
        }
    };
    let Ok(l) = layout else { return Ok(()) };
    let dense = match what {
        "PagedLayout::heads_major" => Some((b * c, c, h * b * c)),
        "PagedLayout::seq_major" => Some((c, h * c, b * h * c)),
        _ => None,
    };
    if let Some((hs, rs, bst)) = dense {
        assert_eq!((l.head_stride as u128, l.row_stride as u128, l.block_stride as u128), (hs, rs, bst), "{what}");
    }
    let v = HeadsRef::paged(buf, l, &table, rows);
    let (hs, rs, bst) = (l.head_stride as u128, l.row_stride as u128, l.block_stride as u128);
    // The documented checks, in order, in exact arithmetic.
    let expected: core::result::Result<(), Option<Error>> = (|| {
        if bs == 0 {
            return Err(Some(Error::ZeroDim { what: "block_size" }));
        }
        if cols == 0 {
            return Err(Some(Error::ZeroDim { what: "pool" }));
        }
        if heads == 0 {
            return Ok(());
        }
        if layout_verdict(h, b, c, hs, rs, buf.len()) == Verdict::Err {
            return Err(None); // the block's own checks (`HeadsRef::new`'s)
        }
        if rows == 0 {
            return Ok(());
        }
        let extent = (h - 1) * hs + (b - 1) * rs + c;
        if bst < extent {
            return Err(Some(Error::StrideTooSmall { what: "block_stride", stride: l.block_stride, min: extent as usize }));
        }
        let needed = rows.div_ceil(bs);
        if table.len() < needed {
            return Err(Some(Error::BufferTooShort { what: "block_table", needed, len: table.len() }));
        }
        let blocks = (buf.len() as u128 - extent) / bst + 1;
        if let Some((entry, &block)) = table[..needed].iter().enumerate().find(|(_, &x)| x as u128 >= blocks) {
            return Err(Some(Error::BlockOutOfPool { entry, block, blocks: blocks as usize }));
        }
        Ok(())
    })();
    match (&expected, &v) {
        (Ok(()), Err(e)) => panic!("HeadsRef::paged ({what}): valid per the docs, rejected: {e:?}"),
        (Err(_), Ok(_)) => panic!("HeadsRef::paged ({what}): invalid per the docs ({expected:?}), accepted"),
        (Err(Some(want)), Err(got)) => assert!(same_error(want, got), "HeadsRef::paged ({what}): {got:?}, expected {want:?}"),
        _ => {}
    }
    if let Ok(v) = v {
        assert_eq!((v.heads(), v.rows(), v.cols()), (heads, rows, cols), "HeadsRef::paged: shape");
        if heads > 0 && rows > 0 {
            let base = buf.as_ptr() as usize;
            for hh in [0, heads - 1, heads / 2] {
                for i in [0, rows - 1, rows / 2, u.int_in_range(0..=rows - 1)?] {
                    let row = v.head(hh).row(i);
                    let want = table[i / bs] as usize * l.block_stride + hh * l.head_stride + (i % bs) * l.row_stride;
                    assert_eq!(((row.as_ptr() as usize - base) / 4, row.len()), (want, cols), "HeadsRef::paged: head {hh} row {i}");
                }
            }
        }
    }
    Ok(())
}
