/*
 * The printf-style log_debug/info/warn/error entry points of plugin_runtime_args_t.
 *
 * The ABI gives these functions no context argument, so the host hands every plugin its
 * own set: one per plugin slot and level, generated below. Each expands the plugin's format
 * with vsnprintf into a bounded buffer and passes the finished text to the host's sink as
 * plain data. The text is never used as a format string again (an expanded "%n" or "%s"
 * from a plugin's data must stay inert; see VDE-2026-018).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#define OPLC_LOG_SLOTS 64
#define OPLC_LOG_TEXT 1024

typedef void (*oplc_log_sink_t)(unsigned slot, unsigned level, const char *text);
typedef void (*oplc_log_fn_t)(const char *fmt, ...);

/* Set once by the host before any plugin can log; read by plugin threads. */
static volatile oplc_log_sink_t sink;

void oplc_plugin_host_set_log_sink(oplc_log_sink_t s) { __atomic_store_n(&sink, s, __ATOMIC_RELEASE); }

static void emit(unsigned slot, unsigned level, const char *fmt, va_list ap) {
    oplc_log_sink_t s = __atomic_load_n(&sink, __ATOMIC_ACQUIRE);
    if (!s) return;
    if (!fmt) {
        s(slot, level, "(null log message)");
        return;
    }
    char text[OPLC_LOG_TEXT];
    int n = vsnprintf(text, sizeof text, fmt, ap);
    if (n < 0) {
        s(slot, level, "(log message could not be formatted)");
        return;
    }
    if ((size_t)n >= sizeof text) memcpy(text + sizeof text - 4, "...", 4);
    s(slot, level, text);
}

/* Levels follow shared_abi::msg::LogLevel: 0 debug, 1 info, 2 warning, 3 error. */
#define OPLC_DEFINE_SLOT(n)                                                                     \
    static void log_debug_##n(const char *fmt, ...) { va_list ap; va_start(ap, fmt); emit(n, 0, fmt, ap); va_end(ap); } \
    static void log_info_##n(const char *fmt, ...) { va_list ap; va_start(ap, fmt); emit(n, 1, fmt, ap); va_end(ap); }  \
    static void log_warn_##n(const char *fmt, ...) { va_list ap; va_start(ap, fmt); emit(n, 2, fmt, ap); va_end(ap); }  \
    static void log_error_##n(const char *fmt, ...) { va_list ap; va_start(ap, fmt); emit(n, 3, fmt, ap); va_end(ap); }

#define OPLC_ROW(n) {log_debug_##n, log_info_##n, log_warn_##n, log_error_##n},

#define OPLC_SLOTS(X)                                                                           \
    X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15)         \
    X(16) X(17) X(18) X(19) X(20) X(21) X(22) X(23) X(24) X(25) X(26) X(27) X(28) X(29) X(30)     \
    X(31) X(32) X(33) X(34) X(35) X(36) X(37) X(38) X(39) X(40) X(41) X(42) X(43) X(44) X(45)     \
    X(46) X(47) X(48) X(49) X(50) X(51) X(52) X(53) X(54) X(55) X(56) X(57) X(58) X(59) X(60)     \
    X(61) X(62) X(63)

OPLC_SLOTS(OPLC_DEFINE_SLOT)

static const oplc_log_fn_t table[OPLC_LOG_SLOTS][4] = {OPLC_SLOTS(OPLC_ROW)};

/* The entry point for (slot, level), or NULL when either is out of range. */
oplc_log_fn_t oplc_plugin_host_log_fn(unsigned slot, unsigned level) {
    if (slot >= OPLC_LOG_SLOTS || level > 3) return NULL;
    return table[slot][level];
}

/* The number of slots compiled in, so the host can check it agrees. */
unsigned oplc_plugin_host_log_slots(void) { return OPLC_LOG_SLOTS; }
