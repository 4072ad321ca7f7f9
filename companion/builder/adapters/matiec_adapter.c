/*
 * matiec_adapter.c: the runtime's program ABI (openplc_abi.h) on top of an OpenPLC Editor
 * <= 4.1.4 (MatIEC) bundle. openplc-builder compiles it together with the bundle's
 * Config0.c, Res0.c, debug.c and glueVars.c, with the bundle's lib/ on the include path.
 *
 * Located variables live in the runtime's image. MatIEC reaches each one through a global
 * pointer defined in glueVars.c (__IX0_0, __QW3, ...), which config_init__() copies into the
 * POU structs. bind_image() points those globals into the image before init, so the program
 * reads and writes the image itself: no copy in the scan, and debug.c's forcing (which
 * writes through the same pointer) reaches the image too. A variable whose type does not
 * fit its location (%IW0 : DINT) or whose location is outside the image keeps the program's
 * own storage and is copied around the scan instead.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "iec_types_all.h"
#include "openplc_abi.h"

/* Config0.c */
extern void config_init__(void);
extern void config_run__(unsigned long tick);
extern unsigned long long common_ticktime__;
extern unsigned long greatest_tick_count__;
/* glueVars.c */
extern void updateTime(void);
/* debug.c */
extern char plc_program_md5[];
extern uint16_t get_var_count(void);
extern size_t get_var_size(size_t idx);
extern void *get_var_addr(size_t idx);
extern void set_trace(size_t idx, bool forced, void *val);

/* The area and size letters of LOCATED_VARIABLES.h, for token pasting. */
enum { LOC_AREA_I = OPLC_AREA_INPUT, LOC_AREA_Q = OPLC_AREA_OUTPUT, LOC_AREA_M = OPLC_AREA_MEMORY };
enum {
    LOC_WIDTH_X = OPLC_WIDTH_BIT,
    LOC_WIDTH_B = OPLC_WIDTH_BYTE,
    LOC_WIDTH_W = OPLC_WIDTH_WORD,
    LOC_WIDTH_D = OPLC_WIDTH_DWORD,
    LOC_WIDTH_L = OPLC_WIDTH_LWORD
};

/* Lines read __LOCATED_VAR(TYPE, NAME, AREA, WIDTH, INDEX[, BIT]); the trailing zeros supply
 * a missing BIT and keep every variadic list non-empty. */
#define LOC_INDEX(index, ...) index
#define LOC_BIT(index, bit, ...) bit

typedef struct {
    /* Through functions rather than a void ** to the pointer, which would alias it. */
    void (*point)(void *storage);
    void *(*storage)(void);
    unsigned long index;
    unsigned long bit;
    uint16_t size;
    uint8_t area;
    uint8_t width;
} loc_def_t;

#define __LOCATED_VAR(type, name, area, width, ...)                    \
    extern type *name;                                                 \
    static void loc_point_##name(void *storage) { name = (type *)storage; } \
    static void *loc_storage_##name(void) { return (void *)name; }
#include "LOCATED_VARIABLES.h"
#undef __LOCATED_VAR

#define __LOCATED_VAR(type, name, area, width, ...)                                              \
    {loc_point_##name, loc_storage_##name, LOC_INDEX(__VA_ARGS__, 0), LOC_BIT(__VA_ARGS__, 0, 0), \
     (uint16_t)sizeof(type), LOC_AREA_##area, LOC_WIDTH_##width},
static const loc_def_t loc_defs[] = {
#include "LOCATED_VARIABLES.h"
    {NULL, NULL, 0, 0, 0, 0, 0} /* an array may not be empty */
};
#undef __LOCATED_VAR

static const size_t loc_count = sizeof loc_defs / sizeof loc_defs[0] - 1;

typedef struct {
    void *slot;         /* the image element, NULL when the location has none */
    uint64_t published; /* what the last copy-out left in the slot */
    uint8_t in_image;
} loc_state_t;

static loc_state_t loc_state[sizeof loc_defs / sizeof loc_defs[0]];
/* The copied variables, so that a scan only visits those. */
static uint32_t loc_copied[sizeof loc_defs / sizeof loc_defs[0]];
static size_t loc_copied_count;

static size_t width_bytes(uint8_t width)
{
    switch (width) {
    case LOC_WIDTH_W:
        return 2;
    case LOC_WIDTH_D:
        return 4;
    case LOC_WIDTH_L:
        return 8;
    default:
        return 1;
    }
}

static void *image_slot(oplc_image_t *img, const loc_def_t *d)
{
    size_t i = d->index;

    if (i >= OPLC_BUFFER_SIZE) {
        return NULL;
    }
    if (d->width == LOC_WIDTH_X) {
        if (d->bit >= 8) {
            return NULL;
        }
        switch (d->area) {
        case LOC_AREA_I:
            return &img->in.bool_input[i][d->bit];
        case LOC_AREA_Q:
            return &img->out.bool_output[i][d->bit];
        default:
            return &img->out.bool_memory[i][d->bit];
        }
    }
    switch (d->area) {
    case LOC_AREA_I:
        switch (d->width) {
        case LOC_WIDTH_B:
            return &img->in.byte_input[i];
        case LOC_WIDTH_W:
            return &img->in.int_input[i];
        case LOC_WIDTH_D:
            return &img->in.dint_input[i];
        default:
            return &img->in.lint_input[i];
        }
    case LOC_AREA_Q:
        switch (d->width) {
        case LOC_WIDTH_B:
            return &img->out.byte_output[i];
        case LOC_WIDTH_W:
            return &img->out.int_output[i];
        case LOC_WIDTH_D:
            return &img->out.dint_output[i];
        default:
            return &img->out.lint_output[i];
        }
    default:
        switch (d->width) {
        case LOC_WIDTH_W:
            return &img->out.int_memory[i];
        case LOC_WIDTH_D:
            return &img->out.dint_memory[i];
        case LOC_WIDTH_L:
            return &img->out.lint_memory[i];
        default:
            return NULL; /* OpenPLC has no %MB */
        }
    }
}

static uint64_t slot_get(const void *slot, uint8_t width)
{
    switch (width_bytes(width)) {
    case 2:
        return *(const uint16_t *)slot;
    case 4:
        return *(const uint32_t *)slot;
    case 8:
        return *(const uint64_t *)slot;
    default:
        return *(const uint8_t *)slot;
    }
}

static void slot_put(void *slot, uint8_t width, uint64_t v)
{
    switch (width_bytes(width)) {
    case 2:
        *(uint16_t *)slot = (uint16_t)v;
        break;
    case 4:
        *(uint32_t *)slot = (uint32_t)v;
        break;
    case 8:
        *(uint64_t *)slot = v;
        break;
    default:
        *(uint8_t *)slot = (uint8_t)v;
        break;
    }
}

/* The program's storage holds an IEC type (REAL, DINT, ...): memcpy through an unsigned
 * integer of its size keeps the value's bits without aliasing it. */
static uint64_t storage_get(const void *storage, uint16_t size)
{
    uint8_t u8;
    uint16_t u16;
    uint32_t u32;
    uint64_t u64;

    switch (size) {
    case 1:
        memcpy(&u8, storage, 1);
        return u8;
    case 2:
        memcpy(&u16, storage, 2);
        return u16;
    case 4:
        memcpy(&u32, storage, 4);
        return u32;
    default:
        memcpy(&u64, storage, 8);
        return u64;
    }
}

static void storage_put(void *storage, uint16_t size, uint64_t v)
{
    uint8_t u8 = (uint8_t)v;
    uint16_t u16 = (uint16_t)v;
    uint32_t u32 = (uint32_t)v;

    switch (size) {
    case 1:
        memcpy(storage, &u8, 1);
        break;
    case 2:
        memcpy(storage, &u16, 2);
        break;
    case 4:
        memcpy(storage, &u32, 4);
        break;
    default:
        memcpy(storage, &v, 8);
        break;
    }
}

static bool copyable_size(uint16_t size)
{
    return size == 1 || size == 2 || size == 4 || size == 8;
}

static int32_t adapter_bind_image(oplc_image_t *image)
{
    size_t i;

    if (image == NULL) {
        return -1;
    }
    loc_copied_count = 0;
    for (i = 0; i < loc_count; i++) {
        const loc_def_t *d = &loc_defs[i];
        loc_state_t *s = &loc_state[i];

        s->slot = image_slot(image, d);
        s->in_image = s->slot != NULL && d->size == width_bytes(d->width);
        if (s->in_image) {
            d->point(s->slot);
        } else if (s->slot != NULL && copyable_size(d->size)) {
            s->published = slot_get(s->slot, d->width);
            loc_copied[loc_copied_count++] = (uint32_t)i;
        }
    }
    return 0;
}

/*
 * Inputs are taken from the image before every scan. An output or memory location is taken
 * only when its slot no longer holds what the last scan published there (the runtime applied
 * an external write), so the program's wider value is not truncated by its own echo.
 */
static void copy_in(void)
{
    size_t k;

    for (k = 0; k < loc_copied_count; k++) {
        const loc_def_t *d = &loc_defs[loc_copied[k]];
        loc_state_t *s = &loc_state[loc_copied[k]];
        uint64_t v = slot_get(s->slot, d->width);

        if (d->area == LOC_AREA_I || v != s->published) {
            storage_put(d->storage(), d->size, v);
        }
    }
}

static void copy_out(void)
{
    size_t k;

    for (k = 0; k < loc_copied_count; k++) {
        const loc_def_t *d = &loc_defs[loc_copied[k]];
        loc_state_t *s = &loc_state[loc_copied[k]];

        if (d->area != LOC_AREA_I) {
            slot_put(s->slot, d->width, storage_get(d->storage(), d->size));
            s->published = slot_get(s->slot, d->width);
        }
    }
}

static int32_t adapter_init(void)
{
    config_init__();
    return 0;
}

/* Every task runs inside config_run__, gated by tick; program time advances once per call. */
static void adapter_run_tick(uint64_t tick)
{
    if (greatest_tick_count__ != 0) {
        tick %= greatest_tick_count__;
    }
    copy_in();
    config_run__((unsigned long)tick);
    updateTime();
    copy_out();
}

static uint64_t adapter_tick_period_ns(void)
{
    return common_ticktime__;
}

static const char *adapter_program_md5(void)
{
    return plc_program_md5;
}

static uint32_t adapter_var_count(void)
{
    return get_var_count();
}

static uint32_t adapter_var_size(uint32_t index)
{
    if (index >= get_var_count()) {
        return 0;
    }
    return (uint32_t)get_var_size(index);
}

/*
 * debug.c keeps its type table static, so a variable's size is all that can be seen of its
 * type. That suffices: only TIME, DATE, TOD and DT are IEC_TIMESPEC (16 bytes on LP64; on a
 * 32-bit target they are 8 bytes like LINT and cannot be told apart) and only STRING is
 * IEC_STRING (127 bytes).
 */
static uint32_t adapter_var_kind(uint32_t index)
{
    uint32_t size = adapter_var_size(index);

    if (size == sizeof(IEC_STRING)) {
        return OPLC_VAR_STRING;
    }
    if (size == sizeof(IEC_TIMESPEC) && sizeof(IEC_TIMESPEC) != 8) {
        return OPLC_VAR_TIMESPEC;
    }
    return OPLC_VAR_SCALAR;
}

/* get_var_addr() itself does not check the index. */
static void *adapter_var_addr(uint32_t index)
{
    if (index >= get_var_count()) {
        return NULL;
    }
    return get_var_addr(index);
}

/* Larger than any elementary type (STRING is the largest). */
#define FORCE_BUFFER_SIZE 256

/*
 * set_trace() copies get_var_size() bytes from the buffer (and may byte-swap them in place),
 * so it always gets a zero-padded buffer of that size. Values are in native order: the
 * runtime never sets debug.c's endianness to "reverse".
 */
static int32_t adapter_var_force(uint32_t index, const void *value, uint32_t len)
{
    unsigned char buf[FORCE_BUFFER_SIZE];
    size_t size;

    if (index >= get_var_count() || (value == NULL && len != 0)) {
        return -1;
    }
    size = get_var_size(index);
    if (size == 0 || size > sizeof buf) {
        return -2;
    }
    memset(buf, 0, sizeof buf);
    if (len != 0) {
        memcpy(buf, value, len < size ? len : size);
    }
    set_trace(index, true, buf);
    return 0;
}

static int32_t adapter_var_unforce(uint32_t index)
{
    unsigned char buf[FORCE_BUFFER_SIZE];

    if (index >= get_var_count()) {
        return -1;
    }
    memset(buf, 0, sizeof buf);
    set_trace(index, false, buf);
    return 0;
}

static uint32_t adapter_located_count(void)
{
    return (uint32_t)loc_count;
}

static int32_t adapter_located_at(uint32_t i, oplc_located_t *out)
{
    const loc_def_t *d;

    if (out == NULL || i >= loc_count) {
        return -1;
    }
    d = &loc_defs[i];
    out->area = d->area;
    out->width = d->width;
    out->index = (uint16_t)(d->index > UINT16_MAX ? UINT16_MAX : d->index);
    out->bit = (uint8_t)(d->bit > UINT8_MAX ? UINT8_MAX : d->bit);
    out->in_image = loc_state[i].in_image;
    out->size = d->size;
    return 0;
}

static const oplc_program_abi_t adapter_abi = {
    OPLC_PROGRAM_ABI_VERSION,
    (uint32_t)sizeof(oplc_program_abi_t),
    "matiec",
    adapter_bind_image,
    adapter_init,
    adapter_run_tick,
    adapter_tick_period_ns,
    adapter_program_md5,
    adapter_var_count,
    adapter_var_size,
    adapter_var_kind,
    adapter_var_addr,
    adapter_var_force,
    adapter_var_unforce,
    NULL, /* group_count: one group */
    NULL, /* group_len */
    adapter_located_count,
    adapter_located_at,
};

const oplc_program_abi_t *oplc_program_entry(void)
{
    return &adapter_abi;
}
