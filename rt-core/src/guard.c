/*
 * guard.c: runs program code so that whatever the program does to end itself ends the call,
 * not the process.
 *
 * Each guarded entry point does a sigsetjmp (without saving the signal mask: no syscall on
 * the scan path), records that this thread is inside program code, and calls it. Three ways
 * out of the program lead back to that point instead of ending rt-core:
 *
 * - a synchronous fault (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS, SIGABRT from
 *   glibc's assert, heap checks or stack protector): the handler siglongjmps back;
 * - a terminating signal the process sent itself (raise(SIGTERM) through pthread_kill,
 *   SIGALRM from alarm(), ...), told apart by its siginfo from the same signal sent by
 *   another process, which is a shutdown request;
 * - a call of exit, _exit, _Exit, quick_exit, abort, raise or pthread_exit: the executable
 *   exports its own definitions of those (dynamic symbols of the executable come first in
 *   the lookup scope of every dlopen'ed library), which jump back inside a guarded call and
 *   forward to libc's (RTLD_NEXT) everywhere else.
 *
 * Every way out records a fault: its cause, where it happened (the faulting instruction,
 * or the caller of exit/abort/raise), and whether that place is the program's own code
 * ("clean"). A clean fault cannot have interrupted a library holding a lock: rt-core puts
 * the PLC in ERROR and carries on. Anything else (a fault inside libc, libstdc++, the
 * dynamic loader during dlopen/dlclose, or a watchdog abort landing there) may have left a
 * lock held, so rt-core restarts itself in place (see rt-core's restart.rs).
 *
 * The jump may cross C and C++ frames of the program, never Rust frames: every function
 * here is called from Rust and returns to Rust normally. Skipping C++ destructors is sound
 * in the way rt-core uses it: the faulted instance is never called again (state ERROR; a
 * new load is a new instance) and never unloaded (its static destructors never run), so
 * nothing ever observes the state those destructors would have cleaned up.
 *
 * SA_NODEFER keeps the signal unblocked after the jump, which is why the mask need not be
 * saved. Outside a guarded call the previous handler (Rust's stack-overflow reporter) or
 * the default action takes over, so rt-core's own bugs still crash loudly.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include "openplc_abi.h"

/* What ended a guarded call (mirrors rt-core's guard::RawFault). */
enum {
    OPLC_CAUSE_SIGNAL = 1,      /* a signal: `signal` */
    OPLC_CAUSE_WATCHDOG = 2,    /* the watchdog's abort request */
    OPLC_CAUSE_EXIT = 3,        /* exit/_exit/_Exit/quick_exit(`status`) */
    OPLC_CAUSE_ABORT = 4,       /* abort() */
    OPLC_CAUSE_RAISE = 5,       /* raise(`signal`) */
    OPLC_CAUSE_THREAD_EXIT = 6, /* pthread_exit() */
};

typedef struct {
    int32_t cause;
    int32_t signal;
    int32_t status;
    uint32_t clean; /* 1: stopped in the program's own code, outside the dynamic loader */
    uint64_t pc;    /* the faulting instruction, or the caller of exit/abort/raise */
} oplc_fault_t;

static __thread sigjmp_buf *volatile guard_jump;
static __thread oplc_fault_t guard_fault;
/* The program's executable segments, as set for this thread (oplc_guard_set_code). */
static __thread uintptr_t code_lo, code_hi;
/* Inside dlopen/dlclose: the dynamic loader's lock is held. */
static __thread volatile sig_atomic_t in_loader;

static pid_t own_pid;
static volatile sig_atomic_t stop_requested;
static volatile sig_atomic_t ignored_signals;
/* The watchdog's stamp for this thread's program runs (rt-core's
 * header.in_program_since_ns), read by the handler. */
static __thread const uint64_t *watch_stamp;

/* rt-core's own code: a program that tail-calls exit() from its entry point returns "into"
 * the guard functions below. */
extern char __executable_start[];
extern char etext[];

static void (*real_exit)(int);
static void (*real_exit_now)(int);
static void (*real_Exit)(int);
static void (*real_quick_exit)(int);
static void (*real_abort)(void);
static int (*real_raise)(int);
static void (*real_pthread_exit)(void *);

__attribute__((constructor)) static void resolve_libc(void) {
    real_exit = (void (*)(int))dlsym(RTLD_NEXT, "exit");
    real_exit_now = (void (*)(int))dlsym(RTLD_NEXT, "_exit");
    real_Exit = (void (*)(int))dlsym(RTLD_NEXT, "_Exit");
    real_quick_exit = (void (*)(int))dlsym(RTLD_NEXT, "quick_exit");
    real_abort = (void (*)(void))dlsym(RTLD_NEXT, "abort");
    real_raise = (int (*)(int))dlsym(RTLD_NEXT, "raise");
    real_pthread_exit = (void (*)(void *))dlsym(RTLD_NEXT, "pthread_exit");
}

static int in_program(uintptr_t pc) {
    return pc >= code_lo && pc < code_hi;
}

static int in_rt_core(uintptr_t pc) {
    return pc >= (uintptr_t)__executable_start && pc < (uintptr_t)etext;
}

__attribute__((noreturn)) static void jump_back(int32_t cause, int32_t sig, int32_t status, uintptr_t pc,
                                                int clean) {
    sigjmp_buf *target = guard_jump;
    guard_jump = NULL;
    guard_fault.cause = cause;
    guard_fault.signal = sig;
    guard_fault.status = status;
    guard_fault.pc = pc;
    guard_fault.clean = clean && !in_loader;
    siglongjmp(*target, 1);
}

/* ---- the interposers ---------------------------------------------------------------- */

#define CALLER ((uintptr_t)__builtin_extract_return_addr(__builtin_return_address(0)))
#define CALLER_CLEAN(pc) (in_program(pc) || in_rt_core(pc))

__attribute__((visibility("default"), noreturn)) void exit(int status) {
    uintptr_t pc = CALLER;
    if (guard_jump != NULL) {
        jump_back(OPLC_CAUSE_EXIT, 0, status, pc, CALLER_CLEAN(pc));
    }
    if (real_exit != NULL) {
        real_exit(status);
    }
    syscall(SYS_exit_group, status);
    __builtin_unreachable();
}

__attribute__((visibility("default"), noreturn)) void _exit(int status) {
    uintptr_t pc = CALLER;
    if (guard_jump != NULL) {
        jump_back(OPLC_CAUSE_EXIT, 0, status, pc, CALLER_CLEAN(pc));
    }
    if (real_exit_now != NULL) {
        real_exit_now(status);
    }
    syscall(SYS_exit_group, status);
    __builtin_unreachable();
}

__attribute__((visibility("default"), noreturn)) void _Exit(int status) {
    uintptr_t pc = CALLER;
    if (guard_jump != NULL) {
        jump_back(OPLC_CAUSE_EXIT, 0, status, pc, CALLER_CLEAN(pc));
    }
    if (real_Exit != NULL) {
        real_Exit(status);
    }
    syscall(SYS_exit_group, status);
    __builtin_unreachable();
}

__attribute__((visibility("default"), noreturn)) void quick_exit(int status) {
    uintptr_t pc = CALLER;
    if (guard_jump != NULL) {
        jump_back(OPLC_CAUSE_EXIT, 0, status, pc, CALLER_CLEAN(pc));
    }
    if (real_quick_exit != NULL) {
        real_quick_exit(status);
    }
    syscall(SYS_exit_group, status);
    __builtin_unreachable();
}

__attribute__((visibility("default"), noreturn)) void abort(void) {
    uintptr_t pc = CALLER;
    if (guard_jump != NULL) {
        jump_back(OPLC_CAUSE_ABORT, SIGABRT, 0, pc, CALLER_CLEAN(pc));
    }
    if (real_abort != NULL) {
        real_abort();
    }
    __builtin_trap();
}

__attribute__((visibility("default"))) int raise(int sig) {
    uintptr_t pc = CALLER;
    if (guard_jump != NULL) {
        jump_back(OPLC_CAUSE_RAISE, sig, 0, pc, CALLER_CLEAN(pc));
    }
    if (real_raise != NULL) {
        return real_raise(sig);
    }
    return (int)syscall(SYS_tgkill, getpid(), gettid(), sig);
}

__attribute__((visibility("default"), noreturn)) void pthread_exit(void *value) {
    uintptr_t pc = CALLER;
    if (guard_jump != NULL) {
        jump_back(OPLC_CAUSE_THREAD_EXIT, 0, 0, pc, CALLER_CLEAN(pc));
    }
    if (real_pthread_exit != NULL) {
        real_pthread_exit(value);
    }
    syscall(SYS_exit, 0);
    __builtin_unreachable();
}

/* ---- the signal handlers ------------------------------------------------------------- */

/* Faults of the instruction that runs, plus SIGABRT (glibc's internal abort raises it). */
static const int fault_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS, SIGABRT};
#define FAULT_COUNT (sizeof(fault_signals) / sizeof(fault_signals[0]))
static struct sigaction previous[FAULT_COUNT];

/* Signals whose default action ends the process without a fault of its own. SIGPIPE is
 * left alone (Rust ignores it); SIGRTMIN-2 and -1 belong to glibc. */
static const int terminating_signals[] = {SIGHUP,  SIGINT,    SIGQUIT,   SIGTERM, SIGUSR1, SIGUSR2, SIGALRM,
                                          SIGVTALRM, SIGPROF, SIGXCPU, SIGXFSZ, SIGIO,   SIGPWR,  SIGSTKFLT};

static uintptr_t fault_pc(void *context) {
    const ucontext_t *uc = (const ucontext_t *)context;
    if (uc == NULL) {
        return 0;
    }
#if defined(__x86_64__)
    return (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
#elif defined(__aarch64__)
    return (uintptr_t)uc->uc_mcontext.pc;
#else
    return 0; /* unknown: never clean */
#endif
}

/* Sent by a process (kill, sigqueue, tgkill) rather than generated by the kernel. */
static int sent_by_a_process(const siginfo_t *info) {
    return info->si_code == SI_USER || info->si_code == SI_QUEUE || info->si_code == SI_TKILL;
}

static void chain_or_default(int sig, siginfo_t *info, void *context) {
    for (size_t i = 0; i < FAULT_COUNT; i++) {
        if (fault_signals[i] != sig) {
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
    /* Not ours: the default action; the faulting instruction runs again (or, for a sent
     * SIGABRT, the signal is sent again). */
    signal(sig, SIG_DFL);
    if (sig == SIGABRT) {
        syscall(SYS_tgkill, own_pid, gettid(), SIGABRT);
    }
}

static void on_fault(int sig, siginfo_t *info, void *context) {
    if (guard_jump != NULL) {
        uintptr_t pc = fault_pc(context);
        jump_back(OPLC_CAUSE_SIGNAL, sig, 0, pc, in_program(pc));
    }
    chain_or_default(sig, info, context);
}

static void on_terminating(int sig, siginfo_t *info, void *context) {
    int from_us = sent_by_a_process(info) && info->si_pid == own_pid;
    if (sig == SIGUSR2 && from_us && info->si_code == SI_QUEUE) {
        /* The watchdog's request: only for the program run it was sent for (the stamp),
         * never for the next guarded call of the same thread. */
        const uint64_t *stamp = watch_stamp;
        uint64_t wanted = (uint64_t)(uintptr_t)info->si_value.sival_ptr;
        if (guard_jump != NULL && stamp != NULL && wanted != 0 && __atomic_load_n(stamp, __ATOMIC_ACQUIRE) == wanted) {
            uintptr_t pc = fault_pc(context);
            jump_back(OPLC_CAUSE_WATCHDOG, sig, 0, pc, in_program(pc));
        }
        return;
    }
    int shutdown_request = sent_by_a_process(info) ? !from_us
                                                   : (sig == SIGTERM || sig == SIGINT || sig == SIGHUP ||
                                                      sig == SIGQUIT); /* a terminal, a hangup */
    if (shutdown_request) {
        stop_requested = 1;
        return;
    }
    /* The process's own doing (the program raised it, or set an alarm): a fault inside a
     * guarded call, ignored anywhere else. */
    if (guard_jump != NULL) {
        uintptr_t pc = fault_pc(context);
        jump_back(OPLC_CAUSE_SIGNAL, sig, 0, pc, in_program(pc));
    }
    ignored_signals = ignored_signals + 1;
}

static int install(int sig, void (*handler)(int, siginfo_t *, void *), struct sigaction *old) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = handler;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    return sigaction(sig, &sa, old);
}

/* Installs the handlers once per process. Returns 0 or -1. */
int oplc_guard_install(void) {
    own_pid = getpid();
    for (size_t i = 0; i < FAULT_COUNT; i++) {
        if (install(fault_signals[i], on_fault, &previous[i]) != 0) {
            return -1;
        }
    }
    for (size_t i = 0; i < sizeof(terminating_signals) / sizeof(terminating_signals[0]); i++) {
        if (install(terminating_signals[i], on_terminating, NULL) != 0) {
            return -1;
        }
    }
    for (int sig = SIGRTMIN; sig <= SIGRTMAX; sig++) {
        if (install(sig, on_terminating, NULL) != 0) {
            return -1;
        }
    }
    return 0;
}

/* A terminating signal from another process (or a terminal) arrived. */
int oplc_guard_stop_requested(void) {
    return stop_requested;
}

/* Signals the program sent the process outside any guarded call (ignored). */
int oplc_guard_ignored_signals(void) {
    return ignored_signals;
}

/* Where this thread stamps its program runs for the watchdog. */
void oplc_guard_set_watch_stamp(const uint64_t *stamp) {
    watch_stamp = stamp;
}

/* The program whose code this thread calls from now on (its executable segments). */
void oplc_guard_set_code(uintptr_t lo, uintptr_t hi) {
    code_lo = lo;
    code_hi = hi;
}

/* The watchdog's abort request for the program run stamped `stamp`, to thread `tid`. */
int oplc_guard_signal_watchdog(pid_t tid, uint64_t stamp) {
    siginfo_t info;
    memset(&info, 0, sizeof(info));
    info.si_signo = SIGUSR2;
    info.si_code = SI_QUEUE;
    info.si_pid = own_pid;
    info.si_uid = getuid();
    info.si_value.sival_ptr = (void *)(uintptr_t)stamp;
    return (int)syscall(SYS_rt_tgsigqueueinfo, own_pid, tid, SIGUSR2, &info);
}

struct code_search {
    uintptr_t base;
    uintptr_t lo, hi;
};

static int find_code(struct dl_phdr_info *info, size_t size, void *data) {
    struct code_search *s = (struct code_search *)data;
    (void)size;
    if (info->dlpi_addr != s->base) {
        return 0;
    }
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X)) {
            continue;
        }
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        uintptr_t hi = lo + ph->p_memsz;
        if (s->lo == 0 || lo < s->lo) {
            s->lo = lo;
        }
        if (hi > s->hi) {
            s->hi = hi;
        }
    }
    return 1;
}

/* The executable segments of a library dlopen returned. 0, or -1 when not found. */
int oplc_code_range(void *handle, uintptr_t *lo, uintptr_t *hi) {
    struct link_map *map = NULL;
    if (dlinfo(handle, RTLD_DI_LINKMAP, &map) != 0 || map == NULL) {
        return -1;
    }
    struct code_search s = {map->l_addr, 0, 0};
    if (!dl_iterate_phdr(find_code, &s) || s.hi == 0) {
        return -1;
    }
    *lo = s.lo;
    *hi = s.hi;
    return 0;
}

/* ---- the guarded calls -----------------------------------------------------------------
 * Each returns 0 when the call completed, or 1 with *fault filled in. */

#define GUARD_BEGIN(fault)                                                                   \
    sigjmp_buf jump;                                                                         \
    if (sigsetjmp(jump, 0) != 0) {                                                           \
        in_loader = 0; /* a jump out of dlopen/dlclose skipped the reset */                  \
        *(fault) = guard_fault;                                                              \
        return 1;                                                                            \
    }                                                                                        \
    guard_jump = &jump;

#define GUARD_END   \
    guard_jump = NULL; \
    return 0;

/* dlopen runs the library's constructors: program code, with the loader's lock held. */
int oplc_guarded_dlopen(const char *path, int flags, void **handle, const char **error, oplc_fault_t *fault) {
    GUARD_BEGIN(fault)
    in_loader = 1;
    *handle = dlopen(path, flags);
    *error = *handle == NULL ? dlerror() : NULL;
    in_loader = 0;
    GUARD_END
}

/* dlclose runs the library's destructors, the same way. */
int oplc_guarded_dlclose(void *handle, int *rc, oplc_fault_t *fault) {
    GUARD_BEGIN(fault)
    in_loader = 1;
    *rc = dlclose(handle);
    in_loader = 0;
    GUARD_END
}

int oplc_guarded_entry(const oplc_program_abi_t *(*entry)(void), const oplc_program_abi_t **abi,
                       oplc_fault_t *fault) {
    GUARD_BEGIN(fault)
    *abi = entry();
    GUARD_END
}

/* Copies n bytes from program memory (the ABI table). */
int oplc_guarded_copy(void *dst, const void *src, size_t n, oplc_fault_t *fault) {
    GUARD_BEGIN(fault)
    memcpy(dst, src, n);
    GUARD_END
}

/* Copies a C string from program memory: at most cap bytes, *len of them used; *len = cap
 * when no NUL came within cap bytes. */
int oplc_guarded_cstr(const char *src, char *dst, size_t cap, size_t *len, oplc_fault_t *fault) {
    /* Read through a volatile copy: gcc -O2 and above otherwise warn (-Wclobbered, an error
     * here) that the register holding `cap` could be clobbered by the jump back. */
    volatile size_t limit = cap;
    GUARD_BEGIN(fault)
    size_t n = 0;
    while (n < limit && src[n] != '\0') {
        dst[n] = src[n];
        n++;
    }
    *len = n;
    GUARD_END
}

int oplc_guarded_u64(uint64_t (*f)(void), uint64_t *out, oplc_fault_t *fault) {
    GUARD_BEGIN(fault)
    *out = f();
    GUARD_END
}

int oplc_guarded_u32(uint32_t (*f)(void), uint32_t *out, oplc_fault_t *fault) {
    GUARD_BEGIN(fault)
    *out = f();
    GUARD_END
}

int oplc_guarded_u32_u32(uint32_t (*f)(uint32_t), uint32_t arg, uint32_t *out, oplc_fault_t *fault) {
    GUARD_BEGIN(fault)
    *out = f(arg);
    GUARD_END
}

int oplc_guarded_cstr_fn(const char *(*f)(void), const char **out, oplc_fault_t *fault) {
    GUARD_BEGIN(fault)
    *out = f();
    GUARD_END
}

/* Every variable's size and kind, once at load. */
int oplc_guarded_var_table(uint32_t (*var_size)(uint32_t), uint32_t (*var_kind)(uint32_t), uint32_t count,
                           uint32_t *sizes, uint32_t *kinds, oplc_fault_t *fault) {
    GUARD_BEGIN(fault)
    for (uint32_t i = 0; i < count; i++) {
        sizes[i] = var_size(i);
        kinds[i] = var_kind(i);
    }
    GUARD_END
}

int oplc_guarded_located(int32_t (*at)(uint32_t, oplc_located_t *), uint32_t i, oplc_located_t *out, int32_t *rc,
                         oplc_fault_t *fault) {
    GUARD_BEGIN(fault)
    *rc = at(i, out);
    GUARD_END
}

int oplc_guarded_tick(void (*run_tick)(uint64_t), uint64_t tick, oplc_fault_t *fault) {
    GUARD_BEGIN(fault)
    run_tick(tick);
    GUARD_END
}

int oplc_guarded_init(int32_t (*init)(void), int32_t *result, oplc_fault_t *fault) {
    GUARD_BEGIN(fault)
    *result = init();
    GUARD_END
}

int oplc_guarded_bind(int32_t (*bind)(oplc_image_t *), oplc_image_t *image, int32_t *result, oplc_fault_t *fault) {
    GUARD_BEGIN(fault)
    *result = bind(image);
    GUARD_END
}

/* A forced variable as rt-core keeps it (shared-abi's ForcedValue). */
typedef struct {
    uint32_t var;
    uint32_t len;
    uint8_t bytes[256];
} oplc_forced_t;

/* Hands every value to `set` (var_force, retain_set): forces, RETAIN restores. */
int oplc_guarded_apply_forces(int32_t (*set)(uint32_t, const void *, uint32_t), const oplc_forced_t *forced,
                              size_t count, oplc_fault_t *fault) {
    GUARD_BEGIN(fault)
    for (size_t i = 0; i < count; i++) {
        set(forced[i].var, forced[i].bytes, forced[i].len);
    }
    GUARD_END
}

/* One call of an int32_t(uint32_t, const void *, uint32_t) function (var_write). */
int oplc_guarded_value_call(int32_t (*f)(uint32_t, const void *, uint32_t), uint32_t index, const void *value,
                            uint32_t len, int32_t *result, oplc_fault_t *fault) {
    GUARD_BEGIN(fault)
    *result = f(index, value, len);
    GUARD_END
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
                           const void **addresses, oplc_fault_t *fault) {
    GUARD_BEGIN(fault)
    for (size_t i = 0; i < count; i++) {
        addresses[i] = watched[i].valid ? addr_of(watched[i].var) : NULL;
    }
    GUARD_END
}

/* Copies the value of every valid watched variable from its address into data. */
/* One watched value. The usual sizes (a BOOL to an LREAL, a TIME) are copied inline:
 * this file is built with -fno-builtin (so that exit, abort and raise stay calls to be
 * interposed), which would otherwise make each copy a call of memcpy; __builtin_memcpy
 * with a constant size is inlined regardless. */
static inline void copy_value(uint8_t *dst, const void *src, size_t size) {
    switch (size) {
    case 1: __builtin_memcpy(dst, src, 1); break;
    case 2: __builtin_memcpy(dst, src, 2); break;
    case 4: __builtin_memcpy(dst, src, 4); break;
    case 8: __builtin_memcpy(dst, src, 8); break;
    case 16: __builtin_memcpy(dst, src, 16); break;
    default: memcpy(dst, src, size); break;
    }
}

int oplc_guarded_copy_watched(const void *const *addresses, const oplc_watched_t *watched, size_t count,
                              uint8_t *data, oplc_fault_t *fault) {
    GUARD_BEGIN(fault)
    for (size_t i = 0; i < count; i++) {
        if (!watched[i].valid) {
            continue;
        }
        if (addresses[i] != NULL) {
            copy_value(data + watched[i].offset, addresses[i], watched[i].size);
        } else {
            memset(data + watched[i].offset, 0, watched[i].size);
        }
    }
    GUARD_END
}

/* A single guarded call of an int32_t(uint32_t) debug function (unforce). */
int oplc_guarded_index_call(int32_t (*fn)(uint32_t), uint32_t index, int32_t *result, oplc_fault_t *fault) {
    GUARD_BEGIN(fault)
    *result = fn(index);
    GUARD_END
}

/* A task's run (oplc_program_abi_t.task_run) on its own thread. */
int oplc_guarded_task_run(void (*run)(uint32_t, uint64_t), uint32_t task, uint64_t tick, oplc_fault_t *fault) {
    GUARD_BEGIN(fault)
    run(task, tick);
    GUARD_END
}

/* oplc_program_abi_t.task_info: `out` is an oplc_task_info_t (48 bytes) rt-core owns. */
int oplc_guarded_task_info(int32_t (*info)(uint32_t, void *), uint32_t task, void *out, int32_t *rc,
                           oplc_fault_t *fault) {
    GUARD_BEGIN(fault)
    *rc = info(task, out);
    GUARD_END
}
