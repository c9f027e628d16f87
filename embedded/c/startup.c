/* Start-up code for a C firmware on QEMU's mps2-an386 (Cortex-M4F): the
 * vector table, the reset handler (copy .data, zero .bss, enable the FPU,
 * open newlib's semihosting stdio, run main) and the exit through
 * semihosting with main's status, which QEMU returns as its own. */
#include <stdint.h>

extern int main(void);
extern void initialise_monitor_handles(void);
extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;

/* SYS_EXIT_EXTENDED: ADP_Stopped_ApplicationExit with an exit status. */
static void semihosting_exit(int status) {
    uint32_t block[2] = {0x20026, (uint32_t)status};
    register uint32_t r0 __asm__("r0") = 0x20;
    register uint32_t *r1 __asm__("r1") = block;
    __asm__ volatile("bkpt 0xab" : : "r"(r0), "r"(r1) : "memory");
    for (;;) {
    }
}

void reset(void) {
    uint32_t *src = &_sidata;
    for (uint32_t *dst = &_sdata; dst < &_edata;) {
        *dst++ = *src++;
    }
    for (uint32_t *dst = &_sbss; dst < &_ebss;) {
        *dst++ = 0;
    }
    /* CPACR: full access to the coprocessors 10 and 11 (the FPU). */
    *(volatile uint32_t *)0xE000ED88 |= 0xFu << 20;
    __asm__ volatile("dsb\n\tisb");
    initialise_monitor_handles();
    semihosting_exit(main());
}

/* A fault ends the run with status 3. */
static void fault(void) { semihosting_exit(3); }

__attribute__((section(".vectors"), used)) static const void *const vectors[16] = {
    &_estack, (const void *)reset, (const void *)fault, (const void *)fault,
    (const void *)fault, (const void *)fault, (const void *)fault,
};
