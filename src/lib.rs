//! Streaming (online-softmax) attention for `f32`, with four scorers that
//! share one softmax: the scaled dot product, the negative squared Euclidean
//! distance, the negative log distance (inverse distance weighting) and the
//! additive (Bahdanau) scorer.
//!
//! For one head, queries `Q` (`n_q × d`), keys `K` (`n_kv × d`) and values `V`
//! (`n_kv × d_v`) give the output `O` (`n_q × d_v`):
//!
//! ```text
//! O[i] = Σ_j softmax_j(s(q_i, k_j)) · v_j       over the keys j the mask lets row i see
//! ```
//!
//! Keys are visited a tile at a time with a running maximum and sum per query
//! row, so the `n_q × n_kv` score matrix is never stored: extra memory is a
//! fixed stack buffer, whatever `n_q` and `n_kv` are. The crate is `no_std`
//! and never allocates.
//!
//! - [`Scorer`] says how a query is compared with a key; [`project`](fn@project) makes the
//!   projected queries and keys of the additive scorer.
//! - [`Mask`], [`Attention::key_len`] and [`Bias`] say which keys each row sees.
//! - [`MatRef`], [`MatMut`], [`HeadsRef`], [`HeadsMut`] are strided views of the
//!   caller's buffers, so KV caches are read in place; [`HeadsRef::paged`]
//!   reads a cache kept in blocks of a pool through a block table.
//! - [`Attention`] runs one head or many (grouped-query), or a batch of
//!   sequences over caches of their own ([`Attention::run_batch`]), optionally reporting
//!   each row's log-sum-exp; [`merge`] combines results over disjoint key
//!   ranges (split-KV); [`key_norms`] and [`Attention::cached_key_norms`]
//!   let a KV cache keep the key norms the distance scorers need.
//! - The tiled kernel runs at the best [`Level`] of vector instructions the
//!   CPU has (AVX-512, AVX2 + FMA, SSE2, NEON, ...), detected once at run
//!   time, so a plain build is fast everywhere; [`Attention::max_level`]
//!   caps it, [`Kernel::Scalar`] is the simple path it is tested against.
//! - Every bad input is an [`Error`], never a panic.
//! - `unsafe` is denied but in the x86-64 module that detects the CPU and
//!   enters the `#[target_feature]` kernels; each block there states why it
//!   is sound.
//! - Features `tiled`, `dot`, `neg-sq-dist`, `neg-log-dist` and `additive`
//!   (all on by default) build the tiled kernel and each scorer; a firmware
//!   turns off what it does not call and keeps none of its code (a call
//!   that needs it is [`Error::Unsupported`]). On targets without SIMD the
//!   default kernel is the one that executes fewer instructions there
//!   ([`Kernel::default_for`]).
//! - With the `rayon` feature (which needs `std`), the `par_*` entries of
//!   [`Attention`] spread one call over rayon's thread pool: bit-identical
//!   to the single-thread call, or with the keys split across threads
//!   (split-KV) for decoding; see the `parallel` module. The default build is
//!   `no_std` and single-threaded.
//!
//! ```
//! use streamattn::{Attention, MatMut, MatRef, Scorer};
//! let q = [1.0f32, 0.0];
//! let k = [1.0f32, 0.0, 0.0, 1.0];
//! let v = [10.0f32, 20.0];
//! let mut out = [0.0f32];
//! Attention::new(Scorer::neg_log_dist()).run(
//!     MatRef::dense(&q, 1, 2)?,
//!     MatRef::dense(&k, 2, 2)?,
//!     MatRef::dense(&v, 2, 1)?,
//!     MatMut::dense(&mut out, 1, 1)?,
//! )?;
//! // The query equals key 0: inverse distance weighting returns (nearly) its value.
//! assert!((out[0] - 10.0).abs() < 0.01);
//! # Ok::<(), streamattn::Error>(())
//! ```
#![no_std]
#![deny(unsafe_code)]
// Without the tiled kernel its modules still compile (the levels are public
// API), unused.
#![cfg_attr(not(feature = "tiled"), allow(dead_code, unused_imports))]
#![warn(missing_docs)]
// Unit tests are held to clippy's default lints, like the integration tests.
#![cfg_attr(test, allow(clippy::pedantic))]

mod arch;
mod attention;
mod batch;
mod bias;
mod element;
mod error;
mod exp;
mod ln;
mod mask;
mod norms;
mod problem;
mod project;
mod scalar;
mod scorer;
mod softmax;
mod tanh;
mod tile;
mod view;

#[cfg(feature = "rayon")]
extern crate std;
#[cfg(feature = "rayon")]
pub mod parallel;
#[cfg(feature = "rayon")]
pub use parallel::KvSplit;

pub use arch::{Level, UnknownLevel};
pub use attention::{Attention, Kernel};
pub use bias::Bias;
pub use element::Element;
pub use error::Error;
/// The 16-bit element types of key/value caches, from the `half` crate.
pub use half::{bf16, f16};
pub use mask::Mask;
pub use norms::key_norms;
pub use project::project;
pub use scorer::Scorer;
pub use softmax::merge;
pub use view::{HeadsMut, HeadsRef, MatMut, MatRef, PagedLayout};

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
