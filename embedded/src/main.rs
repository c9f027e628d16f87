//! A Cortex-M4F firmware that runs streamattn under QEMU (`mps2-an386`,
//! semihosting): every scorer and kernel its features select, on a prefill,
//! a decode and a large problem, each result checked against an f64
//! reference (computed here, in software f64) with the crate's derived
//! error bound, and against the first kernel's result (the scalar path when
//! the build has it) within twice that bound; for every call the
//! instructions executed and the peak stack. `check.sh` builds it in each
//! configuration, runs it and checks the flash and stack budgets.

#![no_std]
#![no_main]

mod measure;
mod reference;

use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprintln};
use streamattn::{Attention, Error, Kernel, Mask, MatMut, MatRef, Scorer};

/// One problem: `n_q` query rows over `n_kv` keys of width `d` (values as
/// wide), causal (bottom-right) or unmasked.
struct Case {
    name: &'static str,
    n_q: usize,
    n_kv: usize,
    d: usize,
    causal: bool,
}

const CASES: [Case; 3] = [
    Case { name: "prefill 4x64 d16", n_q: 4, n_kv: 64, d: 16, causal: true },
    Case { name: "decode 1x64 d16", n_q: 1, n_kv: 64, d: 16, causal: false },
    // More rows than a prefill block, more keys than a tile, wider than a
    // packed tile: the stack a call needs does not grow past this.
    Case { name: "large 520x130 d40", n_q: 520, n_kv: 130, d: 40, causal: true },
];

const MAX_Q: usize = 520 * 40;
const MAX_KV: usize = 130 * 40;
const MAX_D: usize = 40;

/// The kernels this build calls (`None`: the default for the scorer).
const KERNELS: &[(&str, Option<Kernel>)] = &[
    #[cfg(feature = "scalar")]
    ("scalar", Some(Kernel::Scalar)),
    #[cfg(feature = "tiled")]
    ("tiled", Some(Kernel::Tiled)),
    #[cfg(feature = "default-kernel")]
    ("default", None),
];

/// A deterministic generator: uniform in `[lo, lo + width)`.
struct Lcg(u32);

impl Lcg {
    fn next(&mut self, lo: f32, width: f32) -> f32 {
        self.0 = self.0.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        lo + width * ((self.0 >> 8) as f32 / (1u32 << 24) as f32)
    }
}

#[entry]
fn main() -> ! {
    let peripherals = cortex_m::Peripherals::take().unwrap();
    measure::start(peripherals.SYST);
    let per_tick = measure::instructions_per_tick();
    hprintln!("instructions per SysTick tick: {}", per_tick);

    let mut rng = Lcg(1);
    let mut w = [0.0f32; MAX_D];
    w.iter_mut().for_each(|x| *x = rng.next(-1.0, 2.0));
    let scorers: &[(&str, Scorer, reference::Scorer)] = &[
        #[cfg(feature = "dot")]
        ("dot", Scorer::dot(), reference::Scorer::Dot),
        #[cfg(feature = "neg-sq-dist")]
        ("neg_sq_dist", Scorer::neg_sq_dist(), reference::Scorer::NegSqDist),
        #[cfg(feature = "neg-log-dist")]
        ("neg_log_dist", Scorer::neg_log_dist(), reference::Scorer::NegLogDist { eps: 1e-3, p: 2.0 }),
        #[cfg(feature = "additive")]
        ("additive", Scorer::additive(&w), reference::Scorer::Additive { w: &w }),
    ];

    let mut q = [0.0f32; MAX_Q];
    let mut k = [0.0f32; MAX_KV];
    let mut v = [0.0f32; MAX_KV];
    let mut out = [0.0f32; MAX_Q];
    // The first kernel's output of the current case and scorer, which the
    // others are compared with.
    let mut first = [0.0f32; MAX_Q];
    let mut failed = false;
    for case in &CASES {
        let (n_q, n_kv, d) = (case.n_q, case.n_kv, case.d);
        let (q, k, v, out) = (&mut q[..n_q * d], &mut k[..n_kv * d], &mut v[..n_kv * d], &mut out[..n_q * d]);
        let first = &mut first[..n_q * d];
        for x in q.iter_mut().chain(k.iter_mut()).chain(v.iter_mut()) {
            *x = rng.next(-1.0, 2.0);
        }
        // The box of the query rows, which holds the centre of NegSqDist.
        let (mut lo, mut hi) = ([f64::INFINITY; MAX_D], [f64::NEG_INFINITY; MAX_D]);
        for row in q.chunks(d) {
            for c in 0..d {
                lo[c] = lo[c].min(f64::from(row[c]));
                hi[c] = hi[c].max(f64::from(row[c]));
            }
        }
        let mask = if case.causal { Mask::causal_bottom_right(n_q, n_kv) } else { Mask::None };
        for &(scorer_name, scorer, reference) in scorers {
            let scorer = match scorer {
                Scorer::Additive { w } => Scorer::additive(&w[..d]),
                s => s,
            };
            let reference = match reference {
                reference::Scorer::Additive { w } => reference::Scorer::Additive { w: &w[..d] },
                r => r,
            };
            for (n, &(kernel_name, kernel)) in KERNELS.iter().enumerate() {
                out.fill(f32::NAN);
                let mut attention = Attention::new(scorer).mask(mask);
                if let Some(kernel) = kernel {
                    attention = attention.kernel(kernel);
                }
                let (result, stack) = call(&attention, q, k, v, out, n_q, n_kv, d, true);
                // Instructions: the mean of repeated calls on the small
                // cases (SysTick counts thousands of instructions).
                let reps = if n_q * n_kv * d < 100_000 { 20 } else { 1 };
                let ((), ticks) = measure::ticks_of(|| {
                    for _ in 0..reps {
                        let _ = call(&attention, q, k, v, out, n_q, n_kv, d, false);
                    }
                });
                if n == 0 {
                    first.copy_from_slice(out);
                }
                // Rows checked: all of the small cases; of the large one
                // every 13th and the last.
                let (mut worst, mut apart) = (0.0f64, 0.0f64);
                for i in (0..n_q).filter(|&i| n_q <= 64 || i % 13 == 0 || i == n_q - 1) {
                    let seen = mask.key_range(i, n_kv).end;
                    let (r, a) = reference::check_row(
                        reference,
                        &q[i * d..][..d],
                        k,
                        v,
                        seen,
                        (&lo[..d], &hi[..d]),
                        &out[i * d..][..d],
                        &first[i * d..][..d],
                    );
                    (worst, apart) = (worst.max(r), apart.max(a));
                }
                let ok = cfg!(feature = "baseline") || (result && worst <= 1.0 && apart <= 1.0);
                failed |= !ok;
                let kernel_name = match kernel {
                    Some(_) => kernel_name,
                    None if Kernel::default_for(&scorer) == Kernel::Tiled => "default (tiled)",
                    None => "default (scalar)",
                };
                hprintln!(
                    "{} | {} | {} | instructions {} | stack {} B | error/bound {:.3} | vs {}: {:.3} | {}",
                    case.name,
                    scorer_name,
                    kernel_name,
                    (ticks as f64 * per_tick / f64::from(reps)) as u64,
                    stack,
                    worst,
                    KERNELS[0].0,
                    apart,
                    if ok { "ok" } else { "FAIL" }
                );
            }
        }
    }
    if !cfg!(feature = "baseline") {
        failed |= !left_out_is_unsupported(&q[..4], &k[..4], &v[..4], &mut out[..4]);
    }
    hprintln!("{}", if failed { "FAILED" } else { "passed" });
    debug::exit(if failed { debug::EXIT_FAILURE } else { debug::EXIT_SUCCESS });
    loop {
        cortex_m::asm::wfi();
    }
}

/// The call measured: one head; `true` when it returned `Ok`, and with
/// `paint` the stack the crate used (else 0). The baseline build (the firmware without the
/// crate, for the flash the crate adds) leaves the output as it is.
#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn call(
    attention: &Attention,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    out: &mut [f32],
    n_q: usize,
    n_kv: usize,
    d: usize,
    paint: bool,
) -> (bool, usize) {
    if cfg!(feature = "baseline") {
        core::hint::black_box((attention, q, k, v, &out, n_q, n_kv, d, paint));
        return (true, 0);
    }
    let (Ok(q), Ok(k), Ok(v), Ok(out)) = (
        MatRef::dense(q, n_q, d),
        MatRef::dense(k, n_kv, d),
        MatRef::dense(v, n_kv, d),
        MatMut::dense(out, n_q, d),
    ) else {
        return (false, 0);
    };
    if !paint {
        return (attention.run(q, k, v, out).is_ok(), 0);
    }
    let (r, stack) = measure::stack_used(|| attention.run(q, k, v, out));
    (r.is_ok(), stack)
}

/// Each scorer and kernel this build leaves out is `Error::Unsupported`
/// naming its feature, with the output untouched.
fn left_out_is_unsupported(q: &[f32], k: &[f32], v: &[f32], out: &mut [f32]) -> bool {
    #[cfg(not(feature = "additive"))]
    let w = [0.5f32; 4];
    let left_out: &[(&str, Attention)] = &[
        #[cfg(not(feature = "dot"))]
        ("dot", Attention::new(Scorer::dot()).kernel(Kernel::Scalar)),
        #[cfg(not(feature = "neg-sq-dist"))]
        ("neg-sq-dist", Attention::new(Scorer::neg_sq_dist()).kernel(Kernel::Scalar)),
        #[cfg(not(feature = "neg-log-dist"))]
        ("neg-log-dist", Attention::new(Scorer::neg_log_dist()).kernel(Kernel::Scalar)),
        #[cfg(not(feature = "additive"))]
        ("additive", Attention::new(Scorer::additive(&w)).kernel(Kernel::Scalar)),
        #[cfg(not(feature = "with-tiled"))]
        ("tiled", Attention::new(Scorer::dot()).kernel(Kernel::Tiled)),
    ];
    let mut ok = true;
    for &(what, attention) in left_out {
        out.fill(7.0);
        let (Ok(qv), Ok(kv), Ok(vv), Ok(ov)) = (
            MatRef::dense(q, 1, 4),
            MatRef::dense(k, 1, 4),
            MatRef::dense(v, 1, 4),
            MatMut::dense(out, 1, 4),
        ) else {
            return false;
        };
        let r = attention.run(qv, kv, vv, ov);
        let this = r == Err(Error::Unsupported { what }) && out.iter().all(|&x| x == 7.0);
        hprintln!(
            "left out: {} | {}",
            what,
            if this { "Error::Unsupported, output untouched: ok" } else { "FAIL" }
        );
        ok &= this;
    }
    ok
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    hprintln!("panic: {}", info);
    debug::exit(debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::wfi();
    }
}
