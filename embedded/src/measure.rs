//! Peak stack (by painting) and instructions executed (QEMU's `-icount
//! shift=0` runs one instruction per virtual nanosecond, which SysTick
//! counts), around one call.

use core::sync::atomic::{AtomicU32, Ordering};
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::SYST;
use cortex_m_rt::exception;

/// Written over the free stack before a call; a word still holding it after
/// the call was never written.
const PAINT: u32 = 0x5AA5_C33C;

extern "C" {
    /// The end of the statics (cortex-m-rt's linker script): the stack may
    /// grow down to here.
    static __sheap: u32;
}

/// Runs `f` and returns its result with the bytes of stack it used below
/// the frame of this function.
#[inline(never)]
pub fn stack_used<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let top = cortex_m::register::msp::read() as usize & !3;
    let bottom = core::ptr::addr_of!(__sheap) as usize;
    // Leave 256 bytes below `top` for this function's own calls (the loops
    // below call nothing).
    let painted_top = top - 256;
    let mut a = bottom;
    while a < painted_top {
        // SAFETY: `bottom..painted_top` is RAM between the statics and the
        // current stack pointer (minus a margin), which no live frame or
        // static occupies; the volatile write keeps the paint in place.
        unsafe { core::ptr::write_volatile(a as *mut u32, PAINT) };
        a += 4;
    }
    let r = f();
    let mut a = bottom;
    // SAFETY: as above; the words are read back after `f` returned.
    while a < painted_top && unsafe { core::ptr::read_volatile(a as *const u32) } == PAINT {
        a += 4;
    }
    (r, top - a)
}

/// SysTick reloads.
static WRAPS: AtomicU32 = AtomicU32::new(0);

#[exception]
fn SysTick() {
    WRAPS.fetch_add(1, Ordering::Relaxed);
}

const RELOAD: u32 = 0x00FF_FFFF;

/// Starts SysTick on the reference clock (1 MHz on this board; the core
/// clock input is not modelled by QEMU), counting down from 2²⁴ − 1, with an
/// interrupt at each reload.
pub fn start(mut syst: SYST) {
    syst.set_clock_source(SystClkSource::External);
    syst.set_reload(RELOAD);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();
    // The counter holds 0 until its first reload.
    while SYST::get_current() == 0 {}
    WRAPS.store(0, Ordering::Relaxed);
}

/// SysTick ticks since [`start`].
fn ticks() -> u64 {
    loop {
        let w = WRAPS.load(Ordering::Relaxed);
        let cvr = SYST::get_current();
        if WRAPS.load(Ordering::Relaxed) == w {
            return u64::from(w) * (u64::from(RELOAD) + 1) + u64::from(RELOAD - cvr);
        }
    }
}

/// Runs `f` and returns its result with the SysTick ticks it took.
pub fn ticks_of<R>(f: impl FnOnce() -> R) -> (R, u64) {
    let t0 = ticks();
    let r = f();
    (r, ticks() - t0)
}

/// Instructions per SysTick tick, from a loop of known length: `2n`
/// instructions (`subs`, `bne`).
pub fn instructions_per_tick() -> f64 {
    let n: u32 = 1_000_000;
    let ((), t) = ticks_of(|| {
        // SAFETY: a register-only countdown loop; it touches no memory and
        // leaves the flags and `r0` clobbered, as declared.
        unsafe {
            core::arch::asm!("2:", "subs {0}, #1", "bne 2b", inout(reg) n => _, options(nomem, nostack));
        }
    });
    2.0 * f64::from(n) / t as f64
}
