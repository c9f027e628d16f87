//! From `sa_attention` (with its arrays already made slices) to an
//! [`Attention`]: the enumeration fields checked, the defaults applied.

use crate::status::{Fail, SA_ERR_UNKNOWN_VALUE};
use crate::types::*;
use streamattn::{Attention, Bias, HeadsRef, Kernel, Level, Mask, Scorer};

/// The arrays an `sa_attention` points to, as slices (`None` for `NULL`).
pub(crate) struct Terms<'a> {
    pub additive_w: &'a [f32],
    pub bias: Option<&'a [f32]>,
    pub cached_key_norms: Option<HeadsRef<'a>>,
    pub alibi_slopes: Option<&'a [f32]>,
    pub sinks: Option<&'a [f32]>,
}

/// The defaults of `scorer`: the scale `1/√d`, `eps = 1e-3`, `p = 2`, no
/// mask, every key, no bias, softcap, ALiBi or sinks, the tiled kernel at
/// the best level. `additive_w` must still be set for `SA_ADDITIVE`.
pub(crate) fn default(scorer: u32) -> sa_attention {
    sa_attention {
        scorer,
        scale: 0.0,
        eps: 1e-3,
        p: 2.0,
        additive_w: core::ptr::null(),
        additive_w_len: 0,
        mask: SA_MASK_NONE,
        mask_offset: 0,
        window_left: 0,
        window_right: 0,
        key_len: SA_ALL_KEYS,
        bias: core::ptr::null(),
        bias_len: 0,
        bias_rows: 0,
        bias_cols: 0,
        bias_head_stride: 0,
        bias_row_stride: 0,
        cached_key_norms: core::ptr::null(),
        softcap: 0.0,
        alibi_slopes: core::ptr::null(),
        alibi_len: 0,
        sinks: core::ptr::null(),
        sinks_len: 0,
        kernel: SA_KERNEL_DEFAULT,
        max_level: SA_LEVEL_AVX512,
    }
}

/// The level a `SA_LEVEL_*` value names.
pub(crate) fn level(value: u32) -> Option<Level> {
    Some(match value {
        SA_LEVEL_GENERIC => Level::Generic,
        SA_LEVEL_SSE2 => Level::Sse2,
        SA_LEVEL_NEON => Level::Neon,
        SA_LEVEL_SIMD128 => Level::Simd128,
        SA_LEVEL_AVX2 => Level::Avx2,
        SA_LEVEL_AVX512 => Level::Avx512,
        _ => return None,
    })
}

/// The `SA_LEVEL_*` value of a level.
pub(crate) fn level_value(level: Level) -> u32 {
    match level {
        Level::Sse2 => SA_LEVEL_SSE2,
        Level::Neon => SA_LEVEL_NEON,
        Level::Simd128 => SA_LEVEL_SIMD128,
        Level::Avx2 => SA_LEVEL_AVX2,
        Level::Avx512 => SA_LEVEL_AVX512,
        _ => SA_LEVEL_GENERIC,
    }
}

const fn unknown(what: &'static str) -> Fail {
    Fail::Abi(SA_ERR_UNKNOWN_VALUE, what)
}

/// The attention `c` describes, for `n_q` query rows over `n_kv` keys (the
/// bottom-right causal mask needs them; a batch passes its own and aligns
/// masks per sequence).
pub(crate) fn attention<'a>(
    c: &sa_attention,
    t: Terms<'a>,
    n_q: usize,
    n_kv: usize,
) -> Result<Attention<'a>, Fail> {
    let scale = (c.scale != 0.0).then_some(c.scale);
    let scorer = match c.scorer {
        SA_DOT => Scorer::Dot { scale },
        SA_NEG_SQ_DIST => Scorer::NegSqDist { scale },
        SA_NEG_LOG_DIST => Scorer::NegLogDist { eps: c.eps, p: c.p },
        SA_ADDITIVE => Scorer::additive(t.additive_w),
        _ => return Err(unknown("sa_attention.scorer")),
    };
    let mask = match c.mask {
        SA_MASK_NONE => Mask::None,
        SA_MASK_CAUSAL => Mask::Causal { offset: c.mask_offset },
        SA_MASK_CAUSAL_BOTTOM_RIGHT => Mask::causal_bottom_right(n_q, n_kv),
        SA_MASK_WINDOW => Mask::Window { offset: c.mask_offset, left: c.window_left, right: c.window_right },
        _ => return Err(unknown("sa_attention.mask")),
    };
    let kernel = match c.kernel {
        SA_KERNEL_TILED => Kernel::Tiled,
        SA_KERNEL_SCALAR => Kernel::Scalar,
        SA_KERNEL_DEFAULT => Kernel::default_for(&scorer),
        _ => return Err(unknown("sa_attention.kernel")),
    };
    let max_level = level(c.max_level).ok_or(unknown("sa_attention.max_level"))?;
    let mut a = Attention::new(scorer).mask(mask).kernel(kernel).max_level(max_level);
    if c.key_len != SA_ALL_KEYS {
        a = a.key_len(c.key_len);
    }
    if let Some(data) = t.bias {
        a = a.bias(Bias::new(data, c.bias_rows, c.bias_cols, c.bias_head_stride, c.bias_row_stride)?);
    }
    if let Some(norms) = t.cached_key_norms {
        a = a.cached_key_norms(norms);
    }
    if c.softcap != 0.0 {
        a = a.softcap(c.softcap);
    }
    if let Some(slopes) = t.alibi_slopes {
        a = a.alibi(slopes);
    }
    if let Some(sinks) = t.sinks {
        a = a.sinks(sinks);
    }
    Ok(a)
}
