/*
 * openplc_abi.h: the program ABI of the OpenPLC Rust runtime (rt-core).
 *
 * A program library exports exactly one symbol, oplc_program_entry, returning a pointer to
 * a static oplc_program_abi_t. rt-core resolves it with dlopen/dlsym off the real-time
 * thread, calls bind_image and init there, and from then on only calls run_tick and the
 * debug functions from its scan thread.
 *
 * This header is the C side of shared-abi/src/program.rs and shared-abi/src/image.rs; the
 * test shared-abi/tests/c_header.rs compiles it and compares every size and offset.
 */
#ifndef OPENPLC_ABI_H
#define OPENPLC_ABI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define OPLC_PROGRAM_ABI_VERSION 2u /* 2: tables with room for 65 536 elements */
#define OPLC_BUFFER_SIZE 65536 /* room per table; a program uses a prefix of each (its image sizes) */
#define OPLC_PROGRAM_ENTRY_SYMBOL "oplc_program_entry"

/* The input areas %IX %IB %IW %ID %IL, written by the companion, read by the program. */
typedef struct oplc_inputs {
    uint64_t lint_input[OPLC_BUFFER_SIZE];
    uint32_t dint_input[OPLC_BUFFER_SIZE];
    uint16_t int_input[OPLC_BUFFER_SIZE];
    uint8_t byte_input[OPLC_BUFFER_SIZE];
    uint8_t bool_input[OPLC_BUFFER_SIZE][8];
} oplc_inputs_t;

/* The output and memory areas %Q* and %M*, written by the program. */
typedef struct oplc_outputs {
    uint64_t lint_output[OPLC_BUFFER_SIZE];
    uint64_t lint_memory[OPLC_BUFFER_SIZE];
    uint32_t dint_output[OPLC_BUFFER_SIZE];
    uint32_t dint_memory[OPLC_BUFFER_SIZE];
    uint16_t int_output[OPLC_BUFFER_SIZE];
    uint16_t int_memory[OPLC_BUFFER_SIZE];
    uint8_t byte_output[OPLC_BUFFER_SIZE];
    uint8_t bool_output[OPLC_BUFFER_SIZE][8];
    uint8_t bool_memory[OPLC_BUFFER_SIZE][8];
} oplc_outputs_t;

/* The image a program's located variables live in (one per loaded program). */
typedef struct oplc_image {
    oplc_inputs_t in;
    oplc_outputs_t out;
} oplc_image_t;

/* Location areas and widths, as in IEC 61131-3 addresses (%IX0.0, %QW3, %MD7). */
enum { OPLC_AREA_INPUT = 0, OPLC_AREA_OUTPUT = 1, OPLC_AREA_MEMORY = 2 };
enum { OPLC_WIDTH_BIT = 0, OPLC_WIDTH_BYTE = 1, OPLC_WIDTH_WORD = 2, OPLC_WIDTH_DWORD = 3, OPLC_WIDTH_LWORD = 4 };

/* How a debug variable's bytes are laid out. */
enum {
    OPLC_VAR_SCALAR = 0,   /* little-endian scalar, BOOL … LREAL */
    OPLC_VAR_TIMESPEC = 1, /* MatIEC { long tv_sec; long tv_nsec; } (TIME, DATE, TOD, DT) */
    OPLC_VAR_STRING = 2,   /* length byte + body, never byte-swapped */
    OPLC_VAR_OPAQUE = 3
};

/* A located variable, for diagnostics. */
typedef struct oplc_located {
    uint8_t area;     /* OPLC_AREA_* */
    uint8_t width;    /* OPLC_WIDTH_* */
    uint16_t index;
    uint8_t bit;
    uint8_t in_image; /* 1: lives in the image; 0: kept in program storage and copied */
    uint16_t size;    /* sizeof the declared IEC type */
} oplc_located_t;

/* One IEC task as the program declares it. */
#define OPLC_TASK_NAME_BYTES 32
typedef struct oplc_task_info {
    char name[OPLC_TASK_NAME_BYTES]; /* NUL-terminated (truncated to fit) */
    uint64_t interval_ns;            /* 0: every base tick */
    int32_t priority;                /* as declared; IEC: 0 is the most urgent */
    uint32_t reserved;
} oplc_task_info_t;

typedef struct oplc_program_abi {
    uint32_t abi_version; /* OPLC_PROGRAM_ABI_VERSION */
    uint32_t struct_size; /* sizeof(oplc_program_abi_t) */
    const char *generator; /* "matiec", "strucpp", ... */
    /* Puts the located variables into *image; called once, before init. 0 or < 0. */
    int32_t (*bind_image)(oplc_image_t *image);
    /* Cold-start initialisation. 0 or < 0. */
    int32_t (*init)(void);
    /* One scan of the tasks due at tick, then the program clock advances one period. */
    void (*run_tick)(uint64_t tick);
    uint64_t (*tick_period_ns)(void);
    const char *(*program_md5)(void); /* may return NULL */
    uint32_t (*var_count)(void);
    uint32_t (*var_size)(uint32_t index);  /* 0 when out of range */
    uint32_t (*var_kind)(uint32_t index);  /* OPLC_VAR_* */
    /* Current (forced) value, NULL when out of range. The address may change only when the
     * variable is forced or released: rt-core keeps it until then. */
    void *(*var_addr)(uint32_t index);
    int32_t (*var_force)(uint32_t index, const void *value, uint32_t len); /* native order */
    int32_t (*var_unforce)(uint32_t index);
    uint32_t (*group_count)(void);         /* may be NULL: one group */
    uint32_t (*group_len)(uint32_t group); /* may be NULL with group_count */
    /* Every image cell the program writes must be listed (in_image = 1): rt-core publishes
     * only those output and memory cells each cycle. NULL: the whole image is published. */
    uint32_t (*located_count)(void);
    int32_t (*located_at)(uint32_t i, oplc_located_t *out); /* may be NULL with located_count */
    /* Appended after the first release (rt-core reads them only when struct_size covers
     * them). RETAIN variables: how many (NULL: none); the debug index of the i-th (its
     * bytes are var_size at var_addr; UINT32_MAX when out of range); and restoring the i-th
     * from bytes saved that way, after init and before the first scan (0 or < 0). */
    uint32_t (*retain_count)(void);
    uint32_t (*retain_var)(uint32_t i);
    int32_t (*retain_set)(uint32_t i, const void *value, uint32_t len);
    /* Appended after the RETAIN functions (read only when struct_size covers it; may be
     * NULL). Writes debug variable index once, as a program write and not a force, from len
     * native-order bytes (a short value zero-padded); a forced variable keeps its forced
     * value. 0 or < 0. */
    int32_t (*var_write)(uint32_t index, const void *value, uint32_t len);
    /* Appended after var_write (present when struct_size covers them). A program with two or
     * more tasks that has them gets one real-time thread per task; otherwise run_tick runs
     * every due task on the scan thread. May all be null. */
    uint32_t (*task_count)(void);
    int32_t (*task_info)(uint32_t task, oplc_task_info_t *out); /* 0, or -1 out of range */
    /* Once on each task thread before its first task_run (thread-local state). 0 or < 0. */
    int32_t (*task_thread_init)(void);
    /* Image inputs -> the task's located inputs; called while that task is not running. */
    int32_t (*task_inputs)(uint32_t task);
    /* The task's programs once, program clock at tick base periods. */
    void (*task_run)(uint32_t task, uint64_t tick);
    /* The task's located outputs and memory -> image; called while that task is not running. */
    int32_t (*task_outputs)(uint32_t task);
} oplc_program_abi_t;

/* The one symbol a program library exports. */
const oplc_program_abi_t *oplc_program_entry(void);

/* ------------------------------------------------------------------------------------------
 * Plugins: the OpenPLC v4 native plugin ABI (shared-abi/src/plugin.rs).
 *
 * A plugin is a shared library exporting int init(void *args), where args points to a
 * plugin_runtime_args_t, and optionally int start_loop(void), void stop_loop(void),
 * void cycle_start(void), void cycle_end(void), void cleanup(void),
 * int execute_command(const char *json, char *resp, size_t resp_size) and
 * int get_stats(char *out, size_t n). The field order is upstream's v4.1.4 one followed by
 * the three fields upstream appended later, so plugins built for upstream load unchanged.
 *
 * The buffer tables point at the companion's mirror of the process image. Read them
 * between image_lock() and image_unlock(): the lock refreshes the mirror from the latest
 * published scan, the unlock sends what the holder changed to rt-core. Write single points
 * with journal_write_* from any thread; rt-core applies them at the start of a following
 * scan (normally the next one).
 *
 * Image sizes: the tables are as long as the loaded program needs (image.conf, located
 * variables), up to OPLC_BUFFER_SIZE each. A plugin exporting
 * int set_image_sizes(const uint32_t *sizes, uint32_t count) is told each table's length
 * (OPLC_TABLE_* order, in elements; a BOOL element is a byte of 8 bits) before init(); a
 * non-zero return fails the plugin. While any loaded plugin lacks it, every table has the
 * length of the longest, which is also buffer_size.
 * ------------------------------------------------------------------------------------------ */
#include <stdbool.h>

/* The tables, in the order set_image_sizes receives them (upstream's image_table_id_t). */
enum {
    OPLC_TABLE_BOOL_INPUT = 0, OPLC_TABLE_BOOL_OUTPUT, OPLC_TABLE_BYTE_INPUT, OPLC_TABLE_BYTE_OUTPUT,
    OPLC_TABLE_INT_INPUT, OPLC_TABLE_INT_OUTPUT, OPLC_TABLE_DINT_INPUT, OPLC_TABLE_DINT_OUTPUT,
    OPLC_TABLE_LINT_INPUT, OPLC_TABLE_LINT_OUTPUT, OPLC_TABLE_INT_MEMORY, OPLC_TABLE_DINT_MEMORY,
    OPLC_TABLE_LINT_MEMORY, OPLC_TABLE_BOOL_MEMORY, OPLC_TABLE_COUNT
};

#define OPLC_PLUGIN_ARGS_CAPSULE "openplc_runtime_args"
#define OPLC_PLUGIN_CONFIG_PATH_BYTES 256

/* journal_write_* type codes. */
enum {
    OPLC_JOURNAL_BOOL_INPUT = 0, OPLC_JOURNAL_BOOL_OUTPUT = 1, OPLC_JOURNAL_BOOL_MEMORY = 2,
    OPLC_JOURNAL_BYTE_INPUT = 3, OPLC_JOURNAL_BYTE_OUTPUT = 4,
    OPLC_JOURNAL_INT_INPUT = 5, OPLC_JOURNAL_INT_OUTPUT = 6, OPLC_JOURNAL_INT_MEMORY = 7,
    OPLC_JOURNAL_DINT_INPUT = 8, OPLC_JOURNAL_DINT_OUTPUT = 9, OPLC_JOURNAL_DINT_MEMORY = 10,
    OPLC_JOURNAL_LINT_INPUT = 11, OPLC_JOURNAL_LINT_OUTPUT = 12, OPLC_JOURNAL_LINT_MEMORY = 13
};

/* get_plc_state() answers and set_switch_position() arguments. */
enum { OPLC_PLUGIN_PLC_STOPPED = 0, OPLC_PLUGIN_PLC_RUNNING = 1, OPLC_PLUGIN_PLC_ERROR = 2 };
enum { OPLC_PLUGIN_SWITCH_STOP = 0, OPLC_PLUGIN_SWITCH_RUN = 1 };

typedef struct plugin_runtime_args {
    /* Image tables: bool_input[a][b] points at %IXa.b, int_output[n] at %QWn, and so on. */
    uint8_t *(*bool_input)[8];
    uint8_t *(*bool_output)[8];
    uint8_t **byte_input;
    uint8_t **byte_output;
    uint16_t **int_input;
    uint16_t **int_output;
    uint32_t **dint_input;
    uint32_t **dint_output;
    uint64_t **lint_input;
    uint64_t **lint_output;
    uint16_t **int_memory;
    uint32_t **dint_memory;
    uint64_t **lint_memory;
    uint8_t *(*bool_memory)[8];

    /* Recursive; refreshes the tables on the outermost lock, publishes changes on the
     * outermost unlock. */
    void (*image_lock)(void);
    void (*image_unlock)(void);

    /* Debug variables as (array, element); status bytes 0x7E ok, 0x81 out of bounds or no
     * program, 0x82 busy. debug_read blocks until the next scan and returns bytes copied. */
    uint8_t (*debug_array_count)(void);
    uint16_t (*debug_elem_count)(uint8_t arr);
    uint16_t (*debug_size)(uint8_t arr, uint16_t elem);
    uint16_t (*debug_read)(uint8_t arr, uint16_t elem, uint8_t *dest);
    uint8_t (*debug_set)(uint8_t arr, uint16_t elem, bool forcing, const uint8_t *bytes, uint16_t len);
    uint8_t (*debug_write)(uint8_t arr, uint16_t elem, const uint8_t *bytes, uint16_t len);

    char plugin_specific_config_file_path[OPLC_PLUGIN_CONFIG_PATH_BYTES];
    int buffer_size;     /* OPLC_BUFFER_SIZE */
    int bits_per_buffer; /* 8 */

    /* printf-style; the text goes to the runtime log, prefixed with the plugin's name. */
    void (*log_info)(const char *fmt, ...);
    void (*log_debug)(const char *fmt, ...);
    void (*log_warn)(const char *fmt, ...);
    void (*log_error)(const char *fmt, ...);

    /* 0 when queued, -1 for a bad type code, index, bit or a type of another width. */
    int (*journal_write_bool)(int type, int index, int bit, int value);
    int (*journal_write_byte)(int type, int index, int value);
    int (*journal_write_int)(int type, int index, int value);
    int (*journal_write_dint)(int type, int index, unsigned int value);
    int (*journal_write_lint)(int type, int index, unsigned long long value);

    void (*request_plc_stop)(const char *reason); /* asynchronous */
    unsigned long long base_tick_ns;              /* the program's scan period, 0 if unknown */

    /* Appended after upstream v4.1.4. */
    void (*request_plc_start)(const char *reason); /* asynchronous; refused while the switch is STOP */
    void (*set_switch_position)(int position);     /* OPLC_PLUGIN_SWITCH_* */
    int (*get_plc_state)(void);                    /* OPLC_PLUGIN_PLC_* */
} plugin_runtime_args_t;

#ifdef __cplusplus
}
#endif

#endif /* OPENPLC_ABI_H */
