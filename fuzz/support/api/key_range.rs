//! The `key_range` operation: `Mask::key_range` and `Mask::causal_bottom_right` in exact integer arithmetic.

#[allow(unused_imports)]
use super::*;

pub(crate) fn key_range(u: &mut Unstructured) -> Result<()> {
    let i = size(u, 300)?;
    let key_len = size(u, 300)?;
    let mask = match u.int_in_range(0u8..=2)? {
        0 => Mask::None,
        1 => Mask::Causal { offset: size(u, 300)? },
        _ => Mask::Window { offset: size(u, 300)?, left: size(u, 300)?, right: size(u, 300)? },
    };
    let got = mask.key_range(i, key_len);
    assert!(got.start <= got.end && got.end <= key_len, "{mask:?}.key_range({i}, {key_len}) = {got:?}");
    // Known bug: `i + offset` saturates at usize::MAX, so a window's start
    // `i + offset − left` is too small when `i + offset` overflows.
    let overflow = (i as u128 + offset_of(mask) as u128) > MAX;
    if !(overflow && known("key-range-overflow")) {
        match model_range(mask, i, key_len) {
            None => assert!(got.is_empty(), "{mask:?}.key_range({i}, {key_len}) = {got:?}, expected empty"),
            Some((lo, hi)) => assert_eq!(got, lo..hi, "{mask:?}.key_range({i}, {key_len})"),
        }
    }
    let (n_q, n_kv) = (size(u, 300)?, size(u, 300)?);
    let br = Mask::causal_bottom_right(n_q, n_kv);
    assert_eq!(br, Mask::Causal { offset: n_kv.saturating_sub(n_q) });
    if n_q > 0 {
        assert_eq!(br.key_range(n_q - 1, n_kv), 0..n_kv, "causal_bottom_right({n_q}, {n_kv}): last row");
    }
    Ok(())
}
