//! Shared by the benchmarks: deterministic data, the scorers benchmarked,
//! the level they run at, buffers on 4 KiB or 2 MiB pages, and the
//! read-bandwidth and FMA-peak probes.

pub mod cache;
mod peak;
// Each bench uses one of them.
#[allow(unused_imports)]
pub use peak::{fma_gflops, fma_peak};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion};
use std::alloc::{alloc, dealloc, Layout};
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::time::Duration;
use streamattn::{Level, Scorer};

/// A benchmark group with the settings of every group here: 10 samples,
/// 0.5 s of warm-up and 2 s of measurement (0.1 s and 0.3 s if `quick`).
pub fn group<'a>(c: &'a mut Criterion, name: &str, quick: bool) -> BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(if quick { 100 } else { 500 }));
    g.measurement_time(Duration::from_millis(if quick { 300 } else { 2000 }));
    g
}

/// The level cap for every benchmark: `STREAMATTN_BENCH_LEVEL` (a
/// [`Level`] name, e.g. `avx2`), or no cap. Lets one build measure every
/// level side by side.
/// The shapes to set up: when the command line's filter (criterion's
/// positional argument) names some of `names`, only those, else all of them
/// (setting up a shape's buffers takes seconds, benchmarks or not).
#[allow(dead_code)] // used by the attention bench, not the parallel one
pub fn wanted<'a>(names: impl Iterator<Item = &'a str> + Clone) -> impl Fn(&str) -> bool {
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let named: Vec<String> =
        names.filter(|n| filter.as_deref().is_some_and(|f| f.contains(n))).map(str::to_owned).collect();
    move |name| named.is_empty() || named.iter().any(|n| n == name)
}

pub fn level() -> Level {
    match std::env::var("STREAMATTN_BENCH_LEVEL") {
        Ok(name) => name.parse().unwrap_or_else(|e| panic!("STREAMATTN_BENCH_LEVEL={name}: {e}")),
        Err(_) => Level::Avx512,
    }
}

/// Deterministic data in [-1, 1).
pub fn data(n: usize, seed: u32) -> Vec<f32> {
    values(seed).take(n).collect()
}

/// The endless sequence behind [`data`]: a xorshift generator.
fn values(seed: u32) -> impl Iterator<Item = f32> {
    let mut x = seed.wrapping_mul(2654435761).wrapping_add(1);
    std::iter::repeat_with(move || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        (x >> 8) as f32 / (1u32 << 23) as f32 - 1.0
    })
}

/// Every scorer with its default parameters; `Additive` with `h = d` and
/// output weights drawn in `[−1, 1)/√d` (so `q`, `k` act as the projections).
pub fn scorers(d: usize) -> [(&'static str, Scorer<'static>); 4] {
    let w: Vec<f32> = data(d, 4).iter().map(|x| x / (d as f32).sqrt()).collect();
    [
        ("dot", Scorer::dot()),
        ("sqdist", Scorer::neg_sq_dist()),
        ("logdist", Scorer::neg_log_dist()),
        ("additive", Scorer::additive(w.leak())),
    ]
}

/// Sum of a buffer with 4 independent 16-lane accumulators: lane-wise adds
/// vectorise without reassociation, so this streams at the read bandwidth.
pub fn read_all(data: &[f32]) -> f32 {
    let mut acc = [[0.0f32; 16]; 4];
    for chunk in data.chunks_exact(64) {
        for (a, c) in acc.iter_mut().zip(chunk.chunks_exact(16)) {
            for (x, y) in a.iter_mut().zip(c) {
                *x += y;
            }
        }
    }
    acc.iter().flatten().sum()
}

/// Reads `k` and `v` alternately, `rows` rows of 128 floats of each at a
/// time (`rows` = 128: the order in which a decode pass reads one KV head).
pub fn read_kv(k: &[f32], v: &[f32], rows: usize) -> f32 {
    k.chunks(rows * 128).zip(v.chunks(rows * 128)).map(|(a, b)| read_all(a) + read_all(b)).sum()
}

/// [`read_kv`] with the blocks of `rows` rows visited in the order
/// `order` (block `order[i]` of `k`, then of `v`): how a decode pass reads a
/// paged cache whose blocks are scattered.
#[allow(dead_code)] // used by the attention bench, not the parallel one
pub fn read_kv_blocks(k: &[f32], v: &[f32], rows: usize, order: &[u32]) -> f32 {
    let n = rows * 128;
    order.iter().map(|&b| read_all(&k[b as usize * n..][..n]) + read_all(&v[b as usize * n..][..n])).sum()
}

/// Asks for every cache line of `x` in L2 (`prefetcht1`; nothing on other
/// architectures).
#[allow(dead_code)] // used by the paired bench
pub fn prefetch_l2(x: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    for line in x.chunks(16) {
        // SAFETY: SSE is part of every x86-64 target; a prefetch is a hint
        // that reads nothing the program sees and never faults.
        unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T1 }>(line.as_ptr().cast()) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = x;
}

/// `0..n` in a shuffled order (a fixed Fisher-Yates shuffle).
pub fn shuffled(n: usize) -> Vec<u32> {
    let mut order: Vec<u32> = (0..n as u32).collect();
    let mut x = 12345u64;
    for i in (1..n).rev() {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        order.swap(i, (x >> 33) as usize % (i + 1));
    }
    order
}

/// The pages behind a benchmark's K and V.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Pages {
    /// The allocator's memory as it comes: 4 KiB pages unless the system
    /// hands out transparent huge pages unasked (`enabled` = `always`).
    Small,
    /// Transparent 2 MiB pages, asked for with `madvise(MADV_HUGEPAGE)`
    /// (Linux). A KV cache read once per decode step crosses a page every
    /// 4 KiB: on 4 KiB pages that is a TLB miss and a restart of the
    /// hardware prefetcher every 32 key rows of d = 128.
    Huge,
}

impl Pages {
    /// The page sizes this system can benchmark: `Huge` only on Linux with
    /// transparent huge pages not switched off.
    pub fn available() -> Vec<Pages> {
        let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled");
        match thp {
            Ok(mode) if cfg!(target_os = "linux") && !mode.contains("[never]") => {
                vec![Pages::Small, Pages::Huge]
            }
            _ => vec![Pages::Small],
        }
    }

    /// A suffix for benchmark names: empty for `Small`.
    pub fn suffix(self) -> &'static str {
        match self {
            Pages::Small => "",
            Pages::Huge => "-huge-pages",
        }
    }
}

/// An element type a benchmark buffer holds: `f32`, or the 16-bit floats
/// of a key/value cache (rounded from the f32 data).
pub trait Elem: streamattn::Element {
    fn from_f32(x: f32) -> Self;
}

impl Elem for f32 {
    fn from_f32(x: f32) -> Self {
        x
    }
}

impl Elem for streamattn::f16 {
    fn from_f32(x: f32) -> Self {
        streamattn::f16::from_f32(x)
    }
}

impl Elem for streamattn::bf16 {
    fn from_f32(x: f32) -> Self {
        streamattn::bf16::from_f32(x)
    }
}

/// [`data`] (as `T`) in a buffer of its own on the given pages, aligned to 2 MiB.
pub struct Floats<T = f32> {
    ptr: NonNull<T>,
    len: usize,
    layout: Layout,
}

const HUGE_PAGE: usize = 2 << 20;

impl<T: Elem> Floats<T> {
    pub fn new(n: usize, seed: u32, pages: Pages) -> Floats<T> {
        let bytes = (n.max(1) * size_of::<T>()).next_multiple_of(HUGE_PAGE);
        let layout = Layout::from_size_align(bytes, HUGE_PAGE).unwrap();
        // SAFETY: `layout` has a non-zero size.
        let ptr = NonNull::new(unsafe { alloc(layout) } as *mut T).expect("out of memory");
        if pages == Pages::Huge {
            advise_huge(ptr.as_ptr() as *mut u8, bytes);
        }
        for (i, x) in values(seed).take(n).enumerate() {
            // SAFETY: `i < n` elements fit in the `bytes ≥ n·size_of::<T>()`
            // just allocated, which are aligned for T (2 MiB). The first
            // write to each page faults it in, after the advice above.
            unsafe { ptr.as_ptr().add(i).write(T::from_f32(x)) };
        }
        let floats = Floats { ptr, len: n, layout };
        if pages == Pages::Huge {
            let got = floats.huge_page_bytes().unwrap_or(0);
            if got < bytes / 2 {
                eprintln!("note: asked for 2 MiB pages, got {} of {} MiB on them", got >> 20, bytes >> 20);
            }
        }
        floats
    }

    /// Bytes of this buffer on transparent huge pages, from the
    /// `AnonHugePages` lines of `/proc/self/smaps` for the mappings it
    /// overlaps (the allocator may have merged it with neighbours: then the
    /// figure counts them too). `None` where that file is not readable.
    pub fn huge_page_bytes(&self) -> Option<usize> {
        let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
        let (start, end) = (self.ptr.as_ptr() as usize, self.ptr.as_ptr() as usize + self.layout.size());
        let mut inside = false;
        let mut total = 0;
        for line in smaps.lines() {
            let range = line.split_once(' ').map(|(r, _)| r).and_then(|r| r.split_once('-'));
            let parse = |x: &str| usize::from_str_radix(x, 16).ok();
            if let Some((Some(lo), Some(hi))) = range.map(|(lo, hi)| (parse(lo), parse(hi))) {
                inside = lo < end && start < hi;
            } else if let Some(kib) = line.strip_prefix("AnonHugePages:") {
                if inside {
                    total += kib.trim().trim_end_matches("kB").trim().parse::<usize>().ok()? * 1024;
                }
            }
        }
        Some(total)
    }
}

#[cfg(target_os = "linux")]
fn advise_huge(ptr: *mut u8, bytes: usize) {
    // SAFETY: the range is one allocation of ours, page-aligned (2 MiB), and
    // MADV_HUGEPAGE only changes how the kernel backs it, not its contents.
    let rc = unsafe { libc::madvise(ptr.cast(), bytes, libc::MADV_HUGEPAGE) };
    assert_eq!(rc, 0, "madvise(MADV_HUGEPAGE) failed: {}", std::io::Error::last_os_error());
}

#[cfg(not(target_os = "linux"))]
fn advise_huge(_: *mut u8, _: usize) {
    unreachable!("Pages::available() offers huge pages on Linux only");
}

impl<T> Deref for Floats<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: `len` floats from `ptr` were written in `new`, and the
        // allocation lives as long as `self`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T> DerefMut for Floats<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`, and `&mut self` makes the borrow unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T> Drop for Floats<T> {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.ptr.as_ptr() as *mut u8, self.layout) }
    }
}

// SAFETY: `Floats<T>` owns its buffer like a `Vec<T>`.
unsafe impl<T: Send> Send for Floats<T> {}
// SAFETY: shared access only reads, as through a `&[T]`.
unsafe impl<T: Sync> Sync for Floats<T> {}
