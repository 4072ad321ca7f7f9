/*
 * OpenPLC Rust runtime demo bundle: hand-written in the shape of the debug.c that xml2st
 * generates from VARIABLES.csv (same symbols, table layout and semantics; our own text).
 *
 * The position of an entry in debug_vars[] is the variable's debug index. The Editor reads
 * the table back from this file, so each entry keeps the form {&(C path), TYPE_ENUM}.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "iec_types_all.h"
#include "POUS.h"

#define SAME_ENDIANNESS 0
#define REVERSE_ENDIANNESS 1

char plc_program_md5[] = "e2895d32c3671083340f0ee26e3d1516";

uint8_t endianness;

extern MAIN RES0__INSTANCE0;

static const struct {
    void *ptr;
    __IEC_types_enum type;
} debug_vars[] = {
    {&(RES0__INSTANCE0.COUNTER), UINT_O_ENUM},
    {&(RES0__INSTANCE0.DIN0), BOOL_P_ENUM},
    {&(RES0__INSTANCE0.DOUT0), BOOL_O_ENUM},
    {&(RES0__INSTANCE0.AIN0), UINT_P_ENUM},
    {&(RES0__INSTANCE0.AOUT0), UINT_O_ENUM},
    {&(RES0__INSTANCE0.V_BOOL), BOOL_ENUM},
    {&(RES0__INSTANCE0.V_SINT), SINT_ENUM},
    {&(RES0__INSTANCE0.V_INT), INT_ENUM},
    {&(RES0__INSTANCE0.V_DINT), DINT_ENUM},
    {&(RES0__INSTANCE0.V_LINT), LINT_ENUM},
    {&(RES0__INSTANCE0.V_USINT), USINT_ENUM},
    {&(RES0__INSTANCE0.V_UINT), UINT_ENUM},
    {&(RES0__INSTANCE0.V_UDINT), UDINT_ENUM},
    {&(RES0__INSTANCE0.V_ULINT), ULINT_ENUM},
    {&(RES0__INSTANCE0.V_REAL), REAL_ENUM},
    {&(RES0__INSTANCE0.V_LREAL), LREAL_ENUM},
    {&(RES0__INSTANCE0.V_BYTE), BYTE_ENUM},
    {&(RES0__INSTANCE0.V_WORD), WORD_ENUM},
    {&(RES0__INSTANCE0.V_DWORD), DWORD_ENUM},
    {&(RES0__INSTANCE0.V_LWORD), LWORD_ENUM},
    {&(RES0__INSTANCE0.UPTIME.EN), BOOL_ENUM},
    {&(RES0__INSTANCE0.UPTIME.ENO), BOOL_ENUM},
    {&(RES0__INSTANCE0.UPTIME.IN), BOOL_ENUM},
    {&(RES0__INSTANCE0.UPTIME.PT), TIME_ENUM},
    {&(RES0__INSTANCE0.UPTIME.Q), BOOL_ENUM},
    {&(RES0__INSTANCE0.UPTIME.ET), TIME_ENUM},
    {&(RES0__INSTANCE0.UPTIME.STATE), SINT_ENUM},
    {&(RES0__INSTANCE0.UPTIME.PREV_IN), BOOL_ENUM},
    {&(RES0__INSTANCE0.UPTIME.CURRENT_TIME), TIME_ENUM},
    {&(RES0__INSTANCE0.UPTIME.START_TIME), TIME_ENUM},
    {&(RES0__INSTANCE0.ELAPSED), TIME_ENUM},
    {&(RES0__INSTANCE0.PRESET), TIME_ENUM},
    {&(RES0__INSTANCE0.TEXT), STRING_ENUM},
};

#define VAR_COUNT 33

/* The three ways a table entry holds its variable. */
enum dbg_form { DBG_PLAIN, DBG_INPUT, DBG_OUTPUT, DBG_NONE };

/* Where one entry's bytes live: the value the program uses, the forced copy (pointer
 * variables only) and the flags byte. */
struct dbg_view {
    enum dbg_form form;
    size_t size;
    void *value;
    void *fvalue;
    IEC_BYTE *flags;
};

#define DBG_VIEW_CASES(T)                                                              \
    case T##_ENUM: {                                                                   \
        __IEC_##T##_t *v = (__IEC_##T##_t *)ptr;                                       \
        view.form = DBG_PLAIN;                                                         \
        view.size = sizeof(T);                                                         \
        view.value = &v->value;                                                        \
        view.flags = &v->flags;                                                        \
        break;                                                                         \
    }                                                                                  \
    case T##_P_ENUM:                                                                   \
    case T##_O_ENUM: {                                                                 \
        __IEC_##T##_p *v = (__IEC_##T##_p *)ptr;                                       \
        view.form = debug_vars[idx].type == T##_P_ENUM ? DBG_INPUT : DBG_OUTPUT;       \
        view.size = sizeof(T);                                                         \
        view.value = v->value;                                                         \
        view.fvalue = &v->fvalue;                                                      \
        view.flags = &v->flags;                                                        \
        break;                                                                         \
    }

static struct dbg_view view_of(size_t idx)
{
    struct dbg_view view = {DBG_NONE, 0, NULL, NULL, NULL};
    void *ptr = debug_vars[idx].ptr;

    switch (debug_vars[idx].type) {
        __IEC_EACH_ELEMENTARY(DBG_VIEW_CASES)
    default:
        break;
    }
    return view;
}

static bool is_string(size_t idx)
{
    __IEC_types_enum t = debug_vars[idx].type;
    return t == STRING_ENUM || t == STRING_P_ENUM || t == STRING_O_ENUM;
}

uint16_t get_var_count(void)
{
    return VAR_COUNT;
}

size_t get_var_size(size_t idx)
{
    if (idx >= VAR_COUNT) {
        return 0;
    }
    return view_of(idx).size;
}

/* Like upstream, no range check here: callers check against get_var_count() first. */
void *get_var_addr(size_t idx)
{
    struct dbg_view v = view_of(idx);

    if (v.form == DBG_INPUT || v.form == DBG_OUTPUT) {
        return (*v.flags & __IEC_FORCE_FLAG) ? v.fvalue : v.value;
    }
    return v.value;
}

/* Copies a forced value into place. A STRING keeps its length within the body. */
static void put_value(void *dst, const void *src, size_t size, bool string)
{
    memcpy(dst, src, size);
    if (string) {
        IEC_STRING *s = (IEC_STRING *)dst;
        if (s->len > STR_MAX_LEN) {
            s->len = STR_MAX_LEN;
        }
    }
}

/*
 * Forcing a plain variable overwrites it and freezes it; forcing an output also writes the
 * value through to its storage, so after release the program continues from it; forcing an
 * input only sets the copy the program reads while the flag is up.
 */
void force_var(size_t idx, bool forced, void *val)
{
    struct dbg_view v = view_of(idx);

    if (v.form == DBG_NONE) {
        return;
    }
    if (!forced) {
        *v.flags &= (IEC_BYTE)~__IEC_FORCE_FLAG;
        return;
    }
    switch (v.form) {
    case DBG_PLAIN:
        put_value(v.value, val, v.size, is_string(idx));
        break;
    case DBG_OUTPUT:
        put_value(v.value, val, v.size, is_string(idx));
        put_value(v.fvalue, val, v.size, is_string(idx));
        break;
    case DBG_INPUT:
        put_value(v.fvalue, val, v.size, is_string(idx));
        break;
    default:
        break;
    }
    *v.flags |= __IEC_FORCE_FLAG;
}

void swap_bytes(void *ptr, size_t size)
{
    uint8_t *b = (uint8_t *)ptr;
    size_t lo = 0;
    size_t hi = size;

    while (hi > lo + 1) {
        uint8_t t = b[lo];
        hi--;
        b[lo] = b[hi];
        b[hi] = t;
        lo++;
    }
}

void trace_reset(void)
{
    size_t i;
    for (i = 0; i < VAR_COUNT; i++) {
        force_var(i, false, NULL);
    }
}

/* Values arrive in the debugger client's byte order; strings are bytes and never swapped. */
void set_trace(size_t idx, bool forced, void *val)
{
    if (idx >= VAR_COUNT) {
        return;
    }
    if (endianness == REVERSE_ENDIANNESS && !is_string(idx)) {
        swap_bytes(val, get_var_size(idx));
    }
    force_var(idx, forced, val);
}

void set_endianness(uint8_t value)
{
    if (value == SAME_ENDIANNESS || value == REVERSE_ENDIANNESS) {
        endianness = value;
    }
}
