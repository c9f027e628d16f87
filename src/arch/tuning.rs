//! The tiled kernel's blocking at each level, in one table.
//!
//! Register blocks fill the register file without spilling: AVX-512 has 32
//! vector registers, AVX2, SSE2 and NEON 16. The figures behind each choice
//! (side-by-side benchmark runs) are in `benches/RESULTS.md`.
//!
//! Targets with a vector level (x86-64, aarch64, wasm32 with `simd128`) get
//! tiles sized for their caches. On the others (Cortex-M, RISC-V without
//! the V extension, ...) only [`GENERIC`] runs, and there stacks are small:
//! tiles, row blocks and the decode pass's centre are sized so that a call
//! needs about 5 KiB of stack for any problem, measured on a Cortex-M4F by
//! the firmware in `embedded/`.

/// Whether the target has a level with vectors (`tuning` sizes for caches,
/// not for small stacks).
macro_rules! with_simd {
    ($($item:item)*) => {
        $(
            #[cfg(any(target_arch = "x86_64", target_arch = "aarch64", target_feature = "simd128"))]
            $item
        )*
    };
}
/// The converse of [`with_simd`].
macro_rules! without_simd {
    ($($item:item)*) => {
        $(
            #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64", target_feature = "simd128")))]
            $item
        )*
    };
}

with_simd! {
    /// Whether the target has a level with vectors.
    pub(crate) const SIMD_TARGET: bool = true;
    /// Keys per tile at most, every level: 128 keys amortise the per-row
    /// work of a tile (maximum, rescaling) over twice the multiply-adds of 64.
    pub(crate) const TILE_KEYS: usize = 128;
    /// Query rows per prefill block: each packed key tile serves this many rows.
    pub(crate) const BLOCK_ROWS: usize = 512;
    /// Columns of a centre and of offset query rows a decode pass holds on
    /// the stack (`NegSqDist`); wider heads run through the prefill loop.
    pub(crate) const DECODE_COLS: usize = 256;
    /// The `Generic` level's packed tile here: 16 KiB, whole tiles up to `d = 32`.
    const PACKED_GENERIC: usize = 4096;
    /// The largest packed tile of a level this target has: the size of the
    /// stack buffer.
    pub(crate) const PACKED_MAX: usize = PACKED_SIMD;
}

without_simd! {
    /// Whether the target has a level with vectors.
    pub(crate) const SIMD_TARGET: bool = false;
    /// Keys per tile at most: 32 (128 bytes of scores per row).
    pub(crate) const TILE_KEYS: usize = 32;
    /// Query rows per prefill block.
    pub(crate) const BLOCK_ROWS: usize = 16;
    /// Columns of a decode pass's centre and offset query rows.
    pub(crate) const DECODE_COLS: usize = 64;
    /// The packed tile: 1 KiB, whole tiles of 32 keys up to `d = 8` and of
    /// 16 keys up to `d = 16`, wider heads in chunks of 16 columns.
    const PACKED_GENERIC: usize = 256;
    /// The size of the packed tile's stack buffer.
    pub(crate) const PACKED_MAX: usize = PACKED_GENERIC;
}

/// The decode pass takes the query heads that share a key/value head when
/// they have at most this many rows in all.
pub(crate) const DECODE_ROWS: usize = 8;
/// How many `f32` key rows ahead the decode passes that prefetch keys during
/// the dot products ask for (8 KiB at d = 128); as many bytes ahead, twice
/// the rows, for 16-bit keys.
pub(crate) const KEYS_AHEAD: usize = 16;

/// One level's blocking.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tuning {
    /// Prefill score block: query rows × vectors of keys.
    pub rows: usize,
    pub key_vectors: usize,
    /// Prefill P·V block: the same rows × vectors of output columns.
    pub out_vectors: usize,
    /// Floats of the packed key tile: `d × 128` for `d ≤ packed / 128`,
    /// `d × 64` up to twice that; wider heads are packed in column chunks.
    pub packed: usize,
    /// The decode pass of `r` rows, at index `r`.
    pub decode: [Pass; DECODE_ROWS + 1],
}

/// One decode pass.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pass {
    /// Keys per block of the dot products: `rows × block` accumulators and
    /// `block` key vectors (and `block` norms) in registers.
    pub key_block: usize,
    /// Output vectors per P·V block, held in registers over the tile.
    pub out_vectors: usize,
    /// What the pass asks the caches for besides the tile's value rows.
    pub prefetch: Prefetch,
}

/// A decode pass's key prefetch (into L2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Prefetch {
    /// Nothing: the hardware prefetcher alone.
    None,
    /// The key rows [`KEYS_AHEAD`] ahead, during the dot products.
    KeysAhead,
    /// The next tile's key rows during P·V of this tile (the columns that
    /// match the value columns read), so memory traffic spans the whole pass.
    NextKeys,
}

const fn pass(key_block: usize, out_vectors: usize, prefetch: Prefetch) -> Pass {
    Pass { key_block, out_vectors, prefetch }
}

use Prefetch::{KeysAhead, NextKeys};

/// 16 registers (AVX2, SSE2, NEON): 6 × 2 score and P·V blocks, as ggml's
/// AVX2 kernel; decode blocks two keys from three rows on.
const SIXTEEN_REGISTERS: [Pass; DECODE_ROWS + 1] = [
    pass(1, 8, KeysAhead), // (no pass has 0 rows)
    pass(1, 8, KeysAhead),
    pass(1, 4, KeysAhead),
    pass(2, 2, KeysAhead),
    pass(2, 2, KeysAhead),
    pass(1, 1, KeysAhead),
    pass(1, 1, KeysAhead),
    pass(1, 1, KeysAhead),
    pass(1, 1, KeysAhead),
];

/// The packed tile with SIMD: 64 KiB, whole tiles up to `d = 128`.
#[cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64", target_feature = "simd128")),
    allow(dead_code)
)]
const PACKED_SIMD: usize = 16384;

/// AVX-512: 32 registers, 4 × 4 blocks; decode with up to eight output
/// vectors and four-key blocks, and the next tile's keys during P·V for 2 to
/// 4 rows (one row leaves the keys to the hardware prefetcher).
pub(crate) const AVX512: Tuning = Tuning {
    rows: 4,
    key_vectors: 4,
    out_vectors: 4,
    packed: PACKED_SIMD,
    decode: [
        pass(1, 8, Prefetch::None),
        pass(1, 8, Prefetch::None),
        pass(1, 8, NextKeys),
        pass(4, 4, NextKeys),
        pass(4, 4, NextKeys),
        pass(2, 2, KeysAhead),
        pass(2, 2, KeysAhead),
        pass(2, 2, KeysAhead),
        pass(2, 2, KeysAhead),
    ],
};

/// AVX2 + FMA: 16 registers of 8 lanes.
pub(crate) const AVX2: Tuning =
    Tuning { rows: 6, key_vectors: 2, out_vectors: 2, packed: PACKED_SIMD, decode: SIXTEEN_REGISTERS };

/// SSE2, NEON, simd128: 16 registers of 4 lanes.
pub(crate) const WIDE4: Tuning = AVX2;

/// One lane, no SIMD. It runs no decode pass (`tile::run`): its `decode`
/// entries are never read.
pub(crate) const GENERIC: Tuning =
    Tuning { rows: 4, key_vectors: 4, out_vectors: 4, packed: PACKED_GENERIC, decode: SIXTEEN_REGISTERS };

/// The register blocks the tiled kernel is instantiated with
/// (`tile::head_at`); every level's must be one of them.
pub(crate) const BLOCKS: [(usize, usize, usize); 2] = [(4, 4, 4), (6, 2, 2)];

const fn check(t: &Tuning) {
    let mut found = false;
    let mut b = 0;
    while b < BLOCKS.len() {
        let (r, k, o) = BLOCKS[b];
        found |= t.rows == r && t.key_vectors == k && t.out_vectors == o;
        b += 1;
    }
    assert!(found, "a prefill block the kernel is not instantiated with");
    assert!(t.packed.is_multiple_of(TILE_KEYS));
    let mut r = 1;
    while r <= DECODE_ROWS {
        let p = t.decode[r];
        assert!(matches!(p.key_block, 1 | 2 | 4) && matches!(p.out_vectors, 1 | 2 | 4 | 8));
        r += 1;
    }
}

const _: () = {
    check(&AVX512);
    check(&AVX2);
    check(&WIDE4);
    check(&GENERIC);
};
