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

#define OPLC_PROGRAM_ABI_VERSION 1u
#define OPLC_BUFFER_SIZE 1024
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
    void *(*var_addr)(uint32_t index);     /* current (forced) value, NULL when out of range */
    int32_t (*var_force)(uint32_t index, const void *value, uint32_t len); /* native order */
    int32_t (*var_unforce)(uint32_t index);
    uint32_t (*group_count)(void);         /* may be NULL: one group */
    uint32_t (*group_len)(uint32_t group); /* may be NULL with group_count */
    /* Every image cell the program writes must be listed (in_image = 1): rt-core publishes
     * only those output and memory cells each cycle. NULL: the whole image is published. */
    uint32_t (*located_count)(void);
    int32_t (*located_at)(uint32_t i, oplc_located_t *out); /* may be NULL with located_count */
} oplc_program_abi_t;

/* The one symbol a program library exports. */
const oplc_program_abi_t *oplc_program_entry(void);

#ifdef __cplusplus
}
#endif

#endif /* OPENPLC_ABI_H */
