//! The benchmarks' buffers (`benches/common`): a piece of `unsafe` code
//! the benchmarks add (the other, the FMA-peak probe, runs in CI's
//! benchmark smoke run), an aligned allocation written in place after
//! `madvise`. Its contents must equal `data`, on either page size.
//!
//! Whether the kernel granted the huge pages is not asserted: it may decline
//! (fragmented memory); the benchmarks print a note when it did.

// Test and example code is held to clippy's default lints (Cargo.toml).
#![allow(clippy::pedantic)]

#[allow(dead_code, unused_imports)]
#[path = "../benches/common/mod.rs"]
mod common;

use common::{data, Floats, Pages};

#[test]
fn buffers_hold_the_data_on_every_page_size() {
    for pages in Pages::available() {
        for n in [0, 1, 17, 1 << 20, (3 << 19) + 5] {
            let mut f = Floats::new(n, 7, pages);
            assert_eq!(&f[..], &data(n, 7)[..]);
            assert_eq!(f.as_ptr() as usize % (2 << 20), 0, "2 MiB aligned");
            f.fill(1.5);
            assert!(f.iter().all(|&x| x == 1.5) && f.len() == n);
        }
    }
}
