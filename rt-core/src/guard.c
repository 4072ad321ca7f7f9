/*
 * guard.c: runs program code so that a fault inside it ends the call, not the process.
 *
 * Each guarded entry point does a sigsetjmp (without saving the signal mask: no syscall on
 * the scan path) and calls into the program. Our handler for SIGSEGV, SIGBUS, SIGFPE,
 * SIGILL and SIGUSR2 (the watchdog's abort request) siglongjmps back to it when the
 * faulting thread is inside a guarded call. The jump only ever crosses C frames of the
 * program: every function here is called from Rust and returns to Rust normally.
 *
 * SA_NODEFER keeps the signal unblocked after the jump, which is why the mask need not be
 * saved. Outside a guarded call the previous handler (Rust's stack-overflow reporter) or
 * the default action takes over, so rt-core's own bugs still crash loudly.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "openplc_abi.h"

static __thread sigjmp_buf *volatile guard_jump;
static __thread volatile sig_atomic_t guard_signal;

static const int guarded_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGUSR2};
#define GUARDED_COUNT (sizeof(guarded_signals) / sizeof(guarded_signals[0]))
static struct sigaction previous[GUARDED_COUNT];

static void on_signal(int sig, siginfo_t *info, void *context) {
    if (guard_jump != NULL) {
        sigjmp_buf *target = guard_jump;
        guard_jump = NULL;
        guard_signal = sig;
        siglongjmp(*target, 1);
    }
    if (sig == SIGUSR2) {
        return; /* the watchdog's request arrived after the program returned */
    }
    for (size_t i = 0; i < GUARDED_COUNT; i++) {
        if (guarded_signals[i] != sig) {
            continue;
        }
        if ((previous[i].sa_flags & SA_SIGINFO) && previous[i].sa_sigaction != NULL) {
            previous[i].sa_sigaction(sig, info, context);
            return;
        }
        if (previous[i].sa_handler != SIG_DFL && previous[i].sa_handler != SIG_IGN && previous[i].sa_handler != NULL) {
            previous[i].sa_handler(sig);
            return;
        }
    }
    /* Not ours: fall back to the default action; the faulting instruction runs again. */
    signal(sig, SIG_DFL);
}

/* Installs the handler once per process. Returns 0 or -1. */
int oplc_guard_install(void) {
    for (size_t i = 0; i < GUARDED_COUNT; i++) {
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_sigaction = on_signal;
        sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;
        sigemptyset(&sa.sa_mask);
        if (sigaction(guarded_signals[i], &sa, &previous[i]) != 0) {
            return -1;
        }
    }
    return 0;
}

/* Each returns 0 when the call completed, or the signal number that aborted it. */

int oplc_guarded_tick(void (*run_tick)(uint64_t), uint64_t tick) {
    sigjmp_buf jump;
    if (sigsetjmp(jump, 0) != 0) {
        return guard_signal;
    }
    guard_jump = &jump;
    run_tick(tick);
    guard_jump = NULL;
    return 0;
}

int oplc_guarded_init(int32_t (*init)(void), int32_t *result) {
    sigjmp_buf jump;
    if (sigsetjmp(jump, 0) != 0) {
        return guard_signal;
    }
    guard_jump = &jump;
    *result = init();
    guard_jump = NULL;
    return 0;
}

int oplc_guarded_bind(int32_t (*bind)(oplc_image_t *), oplc_image_t *image, int32_t *result) {
    sigjmp_buf jump;
    if (sigsetjmp(jump, 0) != 0) {
        return guard_signal;
    }
    guard_jump = &jump;
    *result = bind(image);
    guard_jump = NULL;
    return 0;
}

/* A forced variable as rt-core keeps it (mirrors rt-core's ForcedVar). */
typedef struct {
    uint32_t var;
    uint32_t len;
    uint8_t bytes[256];
} oplc_forced_t;

/* Applies every forced value. */
int oplc_guarded_apply_forces(int32_t (*force)(uint32_t, const void *, uint32_t), const oplc_forced_t *forced,
                              size_t count) {
    sigjmp_buf jump;
    if (sigsetjmp(jump, 0) != 0) {
        return guard_signal;
    }
    guard_jump = &jump;
    for (size_t i = 0; i < count; i++) {
        force(forced[i].var, forced[i].bytes, forced[i].len);
    }
    guard_jump = NULL;
    return 0;
}

/* A watched variable's place in the debug data (mirrors shared-abi's WatchedValue). */
typedef struct {
    uint32_t var;
    uint32_t offset;
    uint16_t size;
    uint8_t kind;
    uint8_t valid;
} oplc_watched_t;

/* Asks the program where each valid watched variable's value is (NULL for the others). */
int oplc_guarded_addresses(void *(*addr_of)(uint32_t), const oplc_watched_t *watched, size_t count,
                           const void **addresses) {
    sigjmp_buf jump;
    if (sigsetjmp(jump, 0) != 0) {
        return guard_signal;
    }
    guard_jump = &jump;
    for (size_t i = 0; i < count; i++) {
        addresses[i] = watched[i].valid ? addr_of(watched[i].var) : NULL;
    }
    guard_jump = NULL;
    return 0;
}

/* Copies the value of every valid watched variable from its address into data. */
int oplc_guarded_copy_watched(const void *const *addresses, const oplc_watched_t *watched, size_t count,
                              uint8_t *data) {
    sigjmp_buf jump;
    if (sigsetjmp(jump, 0) != 0) {
        return guard_signal;
    }
    guard_jump = &jump;
    for (size_t i = 0; i < count; i++) {
        if (!watched[i].valid) {
            continue;
        }
        if (addresses[i] != NULL) {
            memcpy(data + watched[i].offset, addresses[i], watched[i].size);
        } else {
            memset(data + watched[i].offset, 0, watched[i].size);
        }
    }
    guard_jump = NULL;
    return 0;
}

/* A single guarded call of an int32_t(uint32_t) debug function (unforce). */
int oplc_guarded_index_call(int32_t (*fn)(uint32_t), uint32_t index, int32_t *result) {
    sigjmp_buf jump;
    if (sigsetjmp(jump, 0) != 0) {
        return guard_signal;
    }
    guard_jump = &jump;
    *result = fn(index);
    guard_jump = NULL;
    return 0;
}
