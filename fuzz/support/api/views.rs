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
    match u.int_in_range(0u8..=7)? {
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
