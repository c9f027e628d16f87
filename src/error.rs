//! The error type: every rejected input has its own variant.

use core::fmt;

/// Why an attention call (or a view constructor) rejected its input.
///
/// Every check happens before any output is written, so an `Err` leaves the
/// output buffers untouched. `what` names the argument at fault: `"k"`, `"v"`,
/// `"out"`, `"bias"`, `"lse"`, `"alibi_slopes"`, `"sinks"` in an attention call; `"out_b"`, `"lse_a"`,
/// `"lse_b"` in [`merge`](crate::merge); `"matrix"` or `"heads"` when a view
/// constructor rejects its shape; `"pool"`, `"block_size"`, `"block_stride"`
/// or `"block_table"` when [`HeadsRef::paged`](crate::HeadsRef::paged) does; `"cu_seqlens"`
/// in a batch; `"scale"`, `"eps"`, `"p"`, `"offset"`,
/// `"key_len"` for parameters; `"split"` for a split point of the parallel
/// entries (feature `rayon`).
///
/// ```
/// use streamattn::{Error, MatRef};
/// // 2 rows of 3 columns need at least 6 floats.
/// let err = MatRef::new(&[0.0; 5], 2, 3, 3).unwrap_err();
/// assert_eq!(err, Error::BufferTooShort { what: "matrix", needed: 6, len: 5 });
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// A head dimension (`d` or `d_v`, the column count of a view) is zero.
    ZeroDim {
        /// The argument at fault.
        what: &'static str,
    },
    /// A slice is shorter than its shape and strides require.
    BufferTooShort {
        /// The argument at fault.
        what: &'static str,
        /// Minimum length in `f32` elements.
        needed: usize,
        /// Actual length.
        len: usize,
    },
    /// A row or head stride is smaller than the extent it must step over, so
    /// rows (or heads) would overlap.
    StrideTooSmall {
        /// The argument at fault.
        what: &'static str,
        /// The stride given, in `f32` elements.
        stride: usize,
        /// The smallest stride that would be accepted for this layout: the row
        /// length for a row stride; for a head stride, the extent of one
        /// head's rows (heads one after another). Heads interleaved within a
        /// row (`[seq, heads, d]`) are accepted too, with any head stride of at
        /// least the row length that the row stride can hold.
        min: usize,
    },
    /// `shape × stride` does not fit in `usize`.
    Overflow {
        /// The argument at fault.
        what: &'static str,
    },
    /// Two arguments disagree on a dimension (for example `k.cols() != q.cols()`).
    ShapeMismatch {
        /// The argument at fault.
        what: &'static str,
        /// The dimension the other arguments imply.
        expected: usize,
        /// The dimension this argument has.
        found: usize,
    },
    /// The number of query heads is not a positive multiple of the number of
    /// key/value heads.
    HeadGrouping {
        /// Query heads.
        n_heads: usize,
        /// Key/value heads.
        n_kv_heads: usize,
    },
    /// A parameter is out of its domain: `scale` not finite or not
    /// positive, `eps` negative or not finite, `p` not finite or not
    /// positive; a softcap not finite or not positive; an ALiBi slope or a
    /// sink not finite.
    InvalidParameter {
        /// `"scale"`, `"eps"`, `"p"`, `"w"`, `"w_l1_norm"` (`‖w‖₁` too
        /// large), `"softcap"`, `"alibi_slopes"` or `"sinks"`.
        what: &'static str,
        /// The rejected value.
        value: f32,
    },
    /// An entry of a paged cache's block table names a block beyond the
    /// pool ([`HeadsRef::paged`](crate::HeadsRef::paged)).
    BlockOutOfPool {
        /// The index of the entry in the table.
        entry: usize,
        /// The block it names.
        block: u32,
        /// The number of whole blocks the pool holds.
        blocks: usize,
    },
    /// An entry of a sequence of offsets is smaller than the entry before
    /// it (`cu_seqlens` of [`Attention::run_batch`](crate::Attention::run_batch)).
    Decreasing {
        /// The argument at fault.
        what: &'static str,
        /// The index of the first entry below its predecessor.
        index: usize,
    },
    /// A setting the entry cannot apply: a key length, a bias or cached key
    /// norms given to a batch entry ([`Attention::run_batch`](crate::Attention::run_batch)),
    /// whose sequences each have their own cache.
    ///
    /// Also a scorer or the tiled kernel that this build of the crate leaves
    /// out: its Cargo feature (`"dot"`, `"neg-sq-dist"`, `"neg-log-dist"`,
    /// `"additive"`, `"tiled"`) is off.
    Unsupported {
        /// `"key_len"`, `"bias"`, `"key_norms"`, `"split"`, or the feature
        /// of a scorer or kernel left out.
        what: &'static str,
    },
    /// A mask offset, key length or split point lies beyond the number of
    /// keys; in a batch, a sequence with more new rows than cache rows.
    OutOfRange {
        /// `"offset"`, `"key_len"`, `"split"` or `"cu_seqlens"`.
        what: &'static str,
        /// The rejected value.
        value: usize,
        /// The largest value accepted (`n_kv`).
        max: usize,
    },
}

/// The Cargo features of the parts a build may leave out.
const FEATURES: [&str; 5] = ["tiled", "dot", "neg-sq-dist", "neg-log-dist", "additive"];

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::ZeroDim { what } => write!(f, "{what}: zero head dimension"),
            Error::BufferTooShort { what, needed, len } => {
                write!(f, "{what}: slice of {len} floats is too short, shape and strides need {needed}")
            }
            Error::StrideTooSmall { what, stride, min } => {
                write!(f, "{what}: stride {stride} is smaller than {min}, rows or heads would overlap")
            }
            Error::Overflow { what } => write!(f, "{what}: shape times stride overflows usize"),
            Error::ShapeMismatch { what, expected, found } => {
                write!(f, "{what}: dimension {found} does not match the expected {expected}")
            }
            Error::HeadGrouping { n_heads, n_kv_heads } => {
                write!(f, "{n_heads} query heads is not a positive multiple of {n_kv_heads} key/value heads")
            }
            Error::InvalidParameter { what, value } => {
                write!(f, "parameter {what} = {value} is out of its domain")
            }
            Error::BlockOutOfPool { entry, block, blocks } => {
                write!(f, "block_table[{entry}] = {block} is outside the pool of {blocks} blocks")
            }
            Error::Decreasing { what, index } => {
                write!(f, "{what}[{index}] is smaller than the entry before it")
            }
            Error::Unsupported { what } if FEATURES.contains(&what) => {
                write!(f, "{what} is not in this build (the crate's `{what}` feature is off)")
            }
            Error::Unsupported { what } => write!(f, "{what} cannot be applied by this entry"),
            Error::OutOfRange { what, value, max } => {
                write!(f, "{what} = {value} is out of range (at most {max})")
            }
        }
    }
}

impl core::error::Error for Error {}
