//! The C ABI of `streamattn`: streaming attention kernels for C and C++
//! programs, as a static library (`libstreamattn_c.a`), a shared library
//! (`libstreamattn_c.so`) and the header `include/streamattn.h`.
//!
//! ```c
//! #include "streamattn.h"
//! float q[2 * 4], k[3 * 4], v[3 * 2], out[2 * 2], lse[2];
//! sa_heads qh = {q, 8, SA_F32, 1, 2, 4, 8, 4}; /* 1 head, 2 rows, d = 4 */
//! sa_heads kh = {k, 12, SA_F32, 1, 3, 4, 12, 4};
//! sa_heads vh = {v, 6, SA_F32, 1, 3, 2, 6, 2};
//! sa_heads_mut oh = {out, 4, 1, 2, 2, 4, 2};
//! sa_attention a = sa_attention_default(SA_DOT);
//! a.mask = SA_MASK_CAUSAL_BOTTOM_RIGHT;
//! sa_error err;
//! if (sa_run_heads(&a, &qh, &kh, &vh, &oh, lse, 2, &err) != SA_OK)
//!     fprintf(stderr, "%s: %s\n", sa_status_name(err.code), err.message);
//! ```
//!
//! Every entry checks its arguments and returns `SA_OK` or an error code
//! before it writes anything, fills an optional `sa_error` with the code and
//! a sentence naming the wrong argument, and allocates nothing. Views are
//! plain structs of a pointer, a length in elements, a shape and strides in
//! elements; keys and values may be `float`, IEEE half or bfloat16
//! (`uint16_t` bits), contiguous or paged (a pool of blocks and a block
//! table). The entries and their formulas are those of the Rust crate:
//!
//! | C | Rust |
//! |---|---|
//! | `sa_run_heads` | `Attention::run_heads` (one head: `heads = 1`) |
//! | `sa_run_batch` | `Attention::run_batch` |
//! | `sa_merge` | `merge` |
//! | `sa_key_norms` | `key_norms` |
//! | `sa_attention` | `Attention`'s builder: scorer, mask, key length, bias, cached norms, softcap, ALiBi, sinks, kernel, level cap |
//!
//! The parallel (rayon) entries are not part of the ABI: a C runtime runs
//! heads or sequences on its own threads.

#![no_std]
#![deny(unsafe_code)]
#![warn(missing_docs)]
// The ABI's names are C's: `sa_heads`, `SA_OK`.
#![allow(non_camel_case_types)]

#[cfg(feature = "std")]
extern crate std;

/// Without `std` (firmware), the library brings the panic handler a
/// `no_std` static library needs. The entries never panic (every argument
/// is checked before any work), so it never runs; if it did, it would halt.
#[cfg(all(not(feature = "std"), not(test)))]
#[panic_handler]
fn halt(_: &core::panic::PanicInfo) -> ! {
    loop {
        core::hint::spin_loop();
    }
}

mod config;
mod ffi;
mod status;
mod types;

pub use ffi::*;
pub use status::*;
pub use types::*;
