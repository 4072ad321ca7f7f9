/*
 * oplc_strucpp_state.hpp: the adapter's tables (debug variables, tasks, located variables, RETAIN
 * variables) and the state they share, filled once at load by oplc_strucpp_tables.hpp.
 * Part of strucpp_adapter.cpp, which includes it once, after the parts it uses (types,
 * state, located, force, retain, tables, tasks); not a translation unit of its own.
 */
#pragma once

namespace {

struct Var {
    void *leaf;    /* the variable, as the table resolved it at load */
    void *addr;    /* the current value: the raw scalar, or the shadow */
    uint32_t size; /* bytes on the wire */
    uint16_t elem;
    uint8_t arr;
    uint8_t tag;
    bool shadowed;   /* addr is a copy refreshed after each scan and force */
    bool direct;     /* the table's pointer is the variable's wrapper itself */
    int32_t located; /* index into locs, -1 */
};

struct Task {
    strucpp::TaskInstance *task;
    uint64_t divisor; /* runs when tick % divisor == 0 */
};

struct Loc {
    void *slot;         /* the image element, NULL when the location has none */
    void *storage;      /* the variable's raw storage (the descriptor's pointer) */
    uint64_t published; /* what the last copy-out left in the slot */
    int32_t var;        /* the debug variable, -1 when the table has none */
    uint16_t index;
    uint16_t size; /* bytes of the variable */
    uint8_t bit;
    uint8_t area;
    uint8_t width;
    uint8_t in_image;
};

Var *vars;
uint32_t var_total;
uint32_t *shadow_vars; /* indices of the shadowed variables */
uint32_t shadow_total;
unsigned char *shadow_pool;
Task *tasks;
uint32_t task_total;
uint64_t period_ns = DEFAULT_PERIOD_NS;
Loc locs[LOCATED_SLOTS];
uint32_t *retain_vars; /* the debug variables of the RETAIN descriptors */
uint32_t retain_total;
int64_t clock_ns;
/* No tick has run since init: the first one sets the clock from its tick number. */
bool clock_unset;
bool tables_ok;

uint64_t gcd(uint64_t a, uint64_t b)
{
    while (b != 0) {
        uint64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

void refresh_shadow(const Var &v)
{
    if (dbg::handle_read(v.arr, v.elem, static_cast<uint8_t *>(v.addr)) == 0) {
        std::memset(v.addr, 0, v.size); /* not resolvable now (an unbound reference) */
    }
}

} // namespace
