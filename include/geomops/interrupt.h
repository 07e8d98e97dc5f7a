/* Interrupting long calls (docs/architecture.md, "Interrupts and memory limits"), shared by the
 * launchers of every backend and by whoever calls them (the Python bindings, the C API).
 *
 * A launcher whose work can take long polls gm_interrupt_poll() between chunks of it, only on
 * the thread that called the launcher: the CPU kernels from OpenMP thread 0, which then raises a
 * flag that the other threads check at their chunk starts (cpu/interrupt_omp.h); the CUDA
 * launchers between their launches and while they wait for the device. When the poll says stop,
 * the launcher frees its temporaries and returns GM_ERR_INTERRUPTED; its outputs are then
 * undefined, nothing else changed. A call that is not interrupted does exactly the same work
 * (results stay bitwise identical), plus a clock read per poll. */
#ifndef GEOMOPS_INTERRUPT_H
#define GEOMOPS_INTERRUPT_H

#include "geomops/common.h"

/* The handler runs at most this often (per thread); between its runs a poll reads the clock. */
#define GM_INTERRUPT_INTERVAL_MS 50

/* Nonzero asks the running call to stop (e.g. Python's: a signal handler raised
 * KeyboardInterrupt). It runs on the thread that called the launcher, never inside an OpenMP
 * worker, so it may take that thread's locks (the GIL). */
typedef int (*gm_interrupt_handler)(void);

#ifdef __cplusplus
extern "C" {
#endif

/* Installs the handler of this module, process-wide; NULL (the default) never interrupts. */
void gm_interrupt_set_handler(gm_interrupt_handler handler);

/* Nonzero when the calling thread's call must stop. Once the handler said so, every later poll
 * on this thread says so too (so nested steps of one call all stop) until gm_interrupt_reset. */
int gm_interrupt_poll(void);

/* Clears the calling thread's interrupted state: the caller of an interrupted launcher calls it
 * before its next call (the Python bindings do after every launcher). */
void gm_interrupt_reset(void);

#ifdef __cplusplus
}
#endif

#endif /* GEOMOPS_INTERRUPT_H */
