//! One operand's views: shape, strides, buffer, built with every public constructor.

#[allow(unused_imports)]
use super::*;

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Ctor {
    HeadsMajor,
    SeqMajor,
    New,
    /// `MatRef::new` / `MatMut::new` (one head).
    MatNew,
    /// `MatRef::dense` / `MatMut::dense` (one head).
    MatDense,
}

/// Shape, strides (as the constructor derives them, in `u128`) and buffer.
#[derive(Clone, Debug)]
pub(crate) struct Operand {
    pub(crate) heads: usize,
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    pub(crate) hs: u128,
    pub(crate) rs: u128,
    pub(crate) ctor: Ctor,
    pub(crate) buf: Vec<f32>,
}

impl Operand {
    /// What the constructor must do.
    pub(crate) fn verdict(&self) -> Verdict {
        let (h, r, c) = (self.heads as u128, self.rows as u128, self.cols as u128);
        // A derived stride that overflows is an error whatever the shape.
        if self.hs > MAX || self.rs > MAX {
            return Verdict::Err;
        }
        layout_verdict(h, r, c, self.hs, self.rs, self.buf.len())
    }

    pub(crate) fn offset(&self, h: usize, r: usize) -> usize {
        (h as u128 * self.hs + r as u128 * self.rs) as usize
    }
}

pub(crate) const CAP_Q: usize = 512;
pub(crate) const CAP_KV: usize = 1024;

/// An operand of `heads × rows × cols` (one head when `mat`), its
/// constructor and strides, and a buffer of about the length they need.
pub(crate) fn operand(
    u: &mut Unstructured,
    heads: usize,
    rows: usize,
    cols: usize,
    mat: bool,
    cap: usize,
) -> Result<Operand> {
    let (h, r, c) = (heads as u128, rows as u128, cols as u128);
    let ctor = if mat {
        *u.choose(&[Ctor::MatNew, Ctor::MatDense])?
    } else {
        *u.choose(&[Ctor::HeadsMajor, Ctor::SeqMajor, Ctor::New, Ctor::New])?
    };
    let (hs, rs) = match ctor {
        Ctor::HeadsMajor => (r * c, c),
        Ctor::SeqMajor => (c, h * c),
        Ctor::MatDense => (0, c),
        Ctor::MatNew | Ctor::New => {
            let rs = match u.int_in_range(0u8..=4)? {
                0 | 1 => c,
                2 => c + u.int_in_range(1u128..=4)?,
                3 => c.saturating_sub(u.int_in_range(1u128..=2)?),
                _ => size(u, 64)? as u128,
            };
            let hs = if ctor == Ctor::MatNew {
                0
            } else {
                match u.int_in_range(0u8..=5)? {
                    // heads-major, padded or not
                    0 | 1 => r.saturating_sub(1) * rs + c + u.int_in_range(0u128..=3)?,
                    // seq-major inside a row
                    2 => c,
                    3 => (r.saturating_sub(1) * rs + c).saturating_sub(1),
                    4 => 0,
                    _ => size(u, 64)? as u128,
                }
            };
            (hs.min(MAX), rs.min(MAX))
        }
    };
    let mut op = Operand { heads, rows, cols, hs, rs, ctor, buf: vec![] };
    // Length: what the layout needs (plus a little, minus one, or anything).
    let needed = if h == 0 || r == 0 || hs > MAX || rs > MAX {
        0
    } else {
        (h - 1).saturating_mul(hs).saturating_add((r - 1).saturating_mul(rs)).saturating_add(c)
    };
    let len = match u.int_in_range(0u8..=5)? {
        0..=2 => needed,
        3 => needed.saturating_add(u.int_in_range(1u128..=9)?),
        4 => needed.saturating_sub(1),
        _ => u.int_in_range(0..=cap)? as u128,
    };
    let len = if len > cap as u128 { u.int_in_range(0..=cap)? } else { len as usize };
    op.buf = floats(u, len)?;
    Ok(op)
}

pub(crate) fn heads_ref<'a>(op: &Operand, buf: &'a [f32]) -> core::result::Result<HeadsRef<'a>, Error> {
    let (h, r, c) = (op.heads, op.rows, op.cols);
    match op.ctor {
        Ctor::HeadsMajor => HeadsRef::heads_major(buf, h, r, c),
        Ctor::SeqMajor => HeadsRef::seq_major(buf, h, r, c),
        Ctor::New => HeadsRef::new(buf, h, r, c, op.hs as usize, op.rs as usize),
        Ctor::MatNew => MatRef::new(buf, r, c, op.rs as usize).map(HeadsRef::from_mat),
        Ctor::MatDense => MatRef::dense(buf, r, c).map(HeadsRef::from_mat),
    }
}

pub(crate) fn mat_ref<'a>(op: &Operand, buf: &'a [f32]) -> core::result::Result<MatRef<'a>, Error> {
    match op.ctor {
        Ctor::MatDense => MatRef::dense(buf, op.rows, op.cols),
        _ => MatRef::new(buf, op.rows, op.cols, op.rs as usize),
    }
}

pub(crate) fn heads_mut<'a>(op: &Operand, buf: &'a mut [f32]) -> core::result::Result<HeadsMut<'a>, Error> {
    let (h, r, c) = (op.heads, op.rows, op.cols);
    match op.ctor {
        Ctor::HeadsMajor => HeadsMut::heads_major(buf, h, r, c),
        Ctor::SeqMajor => HeadsMut::seq_major(buf, h, r, c),
        Ctor::New => HeadsMut::new(buf, h, r, c, op.hs as usize, op.rs as usize),
        Ctor::MatNew => MatMut::new(buf, r, c, op.rs as usize).map(HeadsMut::from_mat),
        Ctor::MatDense => MatMut::dense(buf, r, c).map(HeadsMut::from_mat),
    }
}

pub(crate) fn mat_mut<'a>(op: &Operand, buf: &'a mut [f32]) -> core::result::Result<MatMut<'a>, Error> {
    match op.ctor {
        Ctor::MatDense => MatMut::dense(buf, op.rows, op.cols),
        _ => MatMut::new(buf, op.rows, op.cols, op.rs as usize),
    }
}

/// Positions of `buf` inside the view (only for a valid, non-huge view).
pub(crate) fn inside(op: &Operand) -> Vec<bool> {
    let mut m = vec![false; op.buf.len()];
    if op.rows == 0 || op.heads == 0 {
        return m;
    }
    for h in 0..op.heads {
        for r in 0..op.rows {
            let o = op.offset(h, r);
            m[o..o + op.cols].iter_mut().for_each(|x| *x = true);
        }
    }
    m
}

pub(crate) fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}
