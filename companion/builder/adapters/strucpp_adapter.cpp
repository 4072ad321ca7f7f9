/*
 * strucpp_adapter.cpp: the runtime's program ABI (openplc_abi.h) on top of an OpenPLC Editor
 * >= 4.2 (STruC++) bundle. openplc-builder compiles it together with every *.cpp of the
 * bundle (C++17, -fno-gnu-unique), with the bundle root and its strucpp_runtime/include on
 * the include path, against the runtime headers the bundle ships. It is written against the
 * interface of those headers only (names, not layouts):
 *
 *   strucpp::ConfigurationInstance / ResourceInstance / TaskInstance / ProgramBase
 *   strucpp::LocatedVar, strucpp::locatedVars[], strucpp::locatedVarsCount
 *   strucpp::__CURRENT_TIME_NS (the scan-stable time TIME() and the timers read)
 *   strucpp::IECVar<T>::raw_ptr(), IECStringVar<254>, IECWStringVar<254>, the *_t types
 *   strucpp::ProgramBase::getRetainVars / getRetainCount, strucpp::RetainVarInfo
 *   (iec_retain.hpp: name, offset, size)
 *   strucpp::debug::read_entry / handle_* / type_ops[].size / debug_arrays / TAG_*
 *   (debug_dispatch.hpp, debug_table.hpp)
 *
 * The builder passes the configuration class as OPLC_STRUCPP_CONFIG (Configuration_<NAME>,
 * read from the bundle); the object must be the global g_config because the generated
 * debug table (generated_debug.cpp) takes its members' addresses by that name.
 *
 * Debug variables are the generated debug table's leaves, numbered flat through its arrays
 * in order: group_count/group_len are the table's arrays, so (array, element) is the flat
 * index the debugger computes. A scalar's address is the variable's own value (IECVar keeps
 * its raw value equal to its forced value while forced, and every write goes through it),
 * so reading it needs no copy. STRING and WSTRING are kept in the wire form (length byte +
 * fixed body, 127 / 253 bytes) in a shadow refreshed after every scan and every force; so is
 * a leaf the table resolves when it is read (its entry's pointer is not the variable, as for
 * a VAR_IN_OUT bound at run time in later STruC++ versions), whose address can change.
 *
 * Located variables live in the program (STruC++ allocates them; the descriptors point at
 * them): inputs are copied from the image before each scan; %Q and %M variables are copied
 * into the image after it, and taken back from the image only when its cell changed from
 * outside (an image write), so a forced variable stays forced and a value wider than its
 * cell is not truncated by its own echo. Copies go through the variable's typed accessors
 * (set / get), so forcing keeps its meaning.
 *
 * RETAIN variables: each program the tasks run lists its RETAIN variables as (name, byte
 * offset inside the program object, size of the forcing wrapper). A descriptor is the debug
 * leaf whose table entry points at that wrapper (and whose wrapper has that size); its bytes
 * are the leaf's (var_size at var_addr), and restoring writes them back through the leaf's
 * typed setter, so the program sees the value (STRING/WSTRING: the variable itself, then its
 * shadow is refreshed). A RETAIN variable that is no debug leaf (a function block instance,
 * an array) cannot be expressed in the ABI and is not kept.
 *
 * Every task runs on the thread that calls run_tick (rt-core's scan thread), in IEC priority
 * order (0 first; declaration order among equals) when due: a task of interval I runs on
 * ticks that are multiples of I / base, base (the scan period) being the GCD of the
 * intervals; a task without an interval runs every tick, and with no interval at all the
 * period is 20 ms. The program time (what TIME() and the timers read) starts at 0 and
 * advances one period per tick; it is set on the calling thread before the tasks run, so it
 * is right with or without STRUCPP_THREADED (where it is thread-local).
 */
#define STRUCPP_V4_DEBUG_EXPORTS_DEFINE
#include "debug_dispatch.hpp"
#include "iec_located.hpp"
#include "iec_std_lib.hpp"

#include "generated.hpp"

#if defined(__has_include)
#if __has_include("defines.h")
#include "defines.h"
#endif
#if __has_include("iec_retain.hpp")
#include "iec_retain.hpp"
#define OPLC_STRUCPP_RETAIN 1
#endif
#endif

#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

#include "openplc_abi.h"
#include "oplc_image_slot.h"

#ifndef OPLC_STRUCPP_CONFIG
#error "OPLC_STRUCPP_CONFIG must name the configuration class (Configuration_<NAME>)"
#endif

/* The configuration: its constructor wires the programs, tasks and located descriptors. */
strucpp::OPLC_STRUCPP_CONFIG g_config;

namespace {

namespace dbg = strucpp::debug;

/* Used when no task has an interval. */
constexpr uint64_t DEFAULT_PERIOD_NS = 20000000;
/* The largest wire value (WSTRING), and so the largest forced value. */
constexpr uint32_t MAX_VALUE_BYTES = 256;
constexpr uint32_t LOCATED_COUNT = strucpp::locatedVarsCount;
constexpr uint32_t LOCATED_SLOTS = LOCATED_COUNT != 0 ? LOCATED_COUNT : 1;

/* ---- the scalar types behind the debug tags ---- */

template <typename T>
void *raw_of(void *leaf)
{
    return static_cast<strucpp::IECVar<T> *>(leaf)->raw_ptr();
}

using RawFn = void *(*)(void *);

/* The raw value of a scalar leaf; NULL for STRING, WSTRING and unknown tags. */
RawFn raw_fn(uint8_t tag)
{
    switch (tag) {
    case dbg::TAG_BOOL:
        return &raw_of<strucpp::BOOL_t>;
    case dbg::TAG_SINT:
        return &raw_of<strucpp::SINT_t>;
    case dbg::TAG_USINT:
        return &raw_of<strucpp::USINT_t>;
    case dbg::TAG_INT:
        return &raw_of<strucpp::INT_t>;
    case dbg::TAG_UINT:
        return &raw_of<strucpp::UINT_t>;
    case dbg::TAG_DINT:
        return &raw_of<strucpp::DINT_t>;
    case dbg::TAG_UDINT:
        return &raw_of<strucpp::UDINT_t>;
    case dbg::TAG_LINT:
        return &raw_of<strucpp::LINT_t>;
    case dbg::TAG_ULINT:
        return &raw_of<strucpp::ULINT_t>;
    case dbg::TAG_REAL:
        return &raw_of<strucpp::REAL_t>;
    case dbg::TAG_LREAL:
        return &raw_of<strucpp::LREAL_t>;
    case dbg::TAG_BYTE:
        return &raw_of<strucpp::BYTE_t>;
    case dbg::TAG_WORD:
        return &raw_of<strucpp::WORD_t>;
    case dbg::TAG_DWORD:
        return &raw_of<strucpp::DWORD_t>;
    case dbg::TAG_LWORD:
        return &raw_of<strucpp::LWORD_t>;
    case dbg::TAG_TIME:
        return &raw_of<strucpp::TIME_t>;
    case dbg::TAG_DATE:
        return &raw_of<strucpp::DATE_t>;
    case dbg::TAG_TOD:
        return &raw_of<strucpp::TOD_t>;
    case dbg::TAG_DT:
        return &raw_of<strucpp::DT_t>;
    default:
        return nullptr;
    }
}

/* The size of the forcing wrapper a leaf of this tag points at (what a RETAIN descriptor
 * gives); 0 for unknown tags. */
size_t wrapper_size(uint8_t tag)
{
    switch (tag) {
    case dbg::TAG_BOOL:
        return sizeof(strucpp::IECVar<strucpp::BOOL_t>);
    case dbg::TAG_SINT:
        return sizeof(strucpp::IECVar<strucpp::SINT_t>);
    case dbg::TAG_USINT:
        return sizeof(strucpp::IECVar<strucpp::USINT_t>);
    case dbg::TAG_INT:
        return sizeof(strucpp::IECVar<strucpp::INT_t>);
    case dbg::TAG_UINT:
        return sizeof(strucpp::IECVar<strucpp::UINT_t>);
    case dbg::TAG_DINT:
        return sizeof(strucpp::IECVar<strucpp::DINT_t>);
    case dbg::TAG_UDINT:
        return sizeof(strucpp::IECVar<strucpp::UDINT_t>);
    case dbg::TAG_LINT:
        return sizeof(strucpp::IECVar<strucpp::LINT_t>);
    case dbg::TAG_ULINT:
        return sizeof(strucpp::IECVar<strucpp::ULINT_t>);
    case dbg::TAG_REAL:
        return sizeof(strucpp::IECVar<strucpp::REAL_t>);
    case dbg::TAG_LREAL:
        return sizeof(strucpp::IECVar<strucpp::LREAL_t>);
    case dbg::TAG_BYTE:
        return sizeof(strucpp::IECVar<strucpp::BYTE_t>);
    case dbg::TAG_WORD:
        return sizeof(strucpp::IECVar<strucpp::WORD_t>);
    case dbg::TAG_DWORD:
        return sizeof(strucpp::IECVar<strucpp::DWORD_t>);
    case dbg::TAG_LWORD:
        return sizeof(strucpp::IECVar<strucpp::LWORD_t>);
    case dbg::TAG_TIME:
        return sizeof(strucpp::IECVar<strucpp::TIME_t>);
    case dbg::TAG_DATE:
        return sizeof(strucpp::IECVar<strucpp::DATE_t>);
    case dbg::TAG_TOD:
        return sizeof(strucpp::IECVar<strucpp::TOD_t>);
    case dbg::TAG_DT:
        return sizeof(strucpp::IECVar<strucpp::DT_t>);
    case dbg::TAG_STRING:
        return sizeof(strucpp::IECStringVar<254>);
    case dbg::TAG_WSTRING:
        return sizeof(strucpp::IECWStringVar<254>);
    default:
        return 0;
    }
}

bool is_text(uint8_t tag)
{
    return tag == dbg::TAG_STRING || tag == dbg::TAG_WSTRING;
}

/* ---- debug variables ---- */

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

/* The wire size of a tag (also when the leaf cannot be resolved right now). */
uint32_t tag_size(uint8_t tag)
{
    return tag < dbg::TAG__COUNT ? dbg::type_ops[tag].size : 0;
}

#ifdef OPLC_STRUCPP_RETAIN
/* The debug variable whose wrapper is at `wrapper` and `size` bytes long; -1 when none. */
int32_t leaf_at(const void *wrapper, size_t size)
{
    for (uint32_t i = 0; i < var_total; i++) {
        const Var &v = vars[i];
        if (v.direct && v.size != 0 && v.leaf == wrapper && wrapper_size(v.tag) == size) {
            return static_cast<int32_t>(i);
        }
    }
    return -1;
}

/* Whether program p was met in an earlier task or earlier in this one. */
bool seen_before(uint32_t task, size_t index, const strucpp::ProgramBase *p)
{
    for (uint32_t t = 0; t <= task; t++) {
        const strucpp::TaskInstance *other = tasks[t].task;
        size_t end = t == task ? index : other->program_count;
        for (size_t k = 0; other->programs != nullptr && k < end; k++) {
            if (other->programs[k] == p) {
                return true;
            }
        }
    }
    return false;
}

/* The RETAIN descriptors of every program the tasks run, as debug variables. */
bool build_retain()
{
    size_t descriptors = 0;
    for (uint32_t t = 0; t < task_total; t++) {
        const strucpp::TaskInstance *task = tasks[t].task;
        for (size_t k = 0; task->programs != nullptr && k < task->program_count; k++) {
            const strucpp::ProgramBase *p = task->programs[k];
            if (p != nullptr && p->getRetainVars() != nullptr && !seen_before(t, k, p)) {
                descriptors += p->getRetainCount();
            }
        }
    }
    retain_vars = new (std::nothrow) uint32_t[descriptors != 0 ? descriptors : 1];
    if (retain_vars == nullptr) {
        return false;
    }
    for (uint32_t t = 0; t < task_total; t++) {
        const strucpp::TaskInstance *task = tasks[t].task;
        for (size_t k = 0; task->programs != nullptr && k < task->program_count; k++) {
            const strucpp::ProgramBase *p = task->programs[k];
            const strucpp::RetainVarInfo *info = p != nullptr ? p->getRetainVars() : nullptr;
            if (info == nullptr || seen_before(t, k, p)) {
                continue;
            }
            /* The offsets are from the start of the program's own class. */
            const unsigned char *base = static_cast<const unsigned char *>(dynamic_cast<const void *>(p));
            for (size_t d = 0; d < p->getRetainCount(); d++) {
                int32_t var = leaf_at(base + info[d].offset, info[d].size);
                bool duplicate = false;
                for (uint32_t r = 0; r < retain_total; r++) {
                    duplicate = duplicate || retain_vars[r] == static_cast<uint32_t>(var);
                }
                if (var >= 0 && !duplicate) {
                    retain_vars[retain_total++] = static_cast<uint32_t>(var);
                }
            }
        }
    }
    return true;
}
#else
/* The bundle's runtime has no RETAIN descriptors. */
bool build_retain()
{
    return true;
}
#endif

/* The debug variables, the shadows and the task schedule. Runs once, when the library is
 * loaded (after g_config is built: same translation unit, defined earlier), off the scan
 * thread; nothing later allocates. */
bool build_tables()
{
    uint32_t arrays = dbg::handle_array_count();
    uint32_t shadow_bytes = 0;

    var_total = 0;
    for (uint32_t a = 0; a < arrays; a++) {
        var_total += dbg::handle_elem_count(static_cast<uint8_t>(a));
    }
    vars = new (std::nothrow) Var[var_total != 0 ? var_total : 1];
    shadow_vars = new (std::nothrow) uint32_t[var_total != 0 ? var_total : 1];
    if (vars == nullptr || shadow_vars == nullptr) {
        return false;
    }
    uint32_t i = 0;
    for (uint32_t a = 0; a < arrays; a++) {
        uint32_t n = dbg::handle_elem_count(static_cast<uint8_t>(a));
        for (uint32_t e = 0; e < n; e++, i++) {
            dbg::Entry entry = dbg::read_entry(static_cast<uint8_t>(a), static_cast<uint16_t>(e));
            /* What the table holds, before any resolution read_entry does. */
            bool resolved_later = entry.ptr == nullptr || entry.ptr != dbg::debug_arrays[a][e].ptr;
            Var &v = vars[i];
            v.leaf = entry.ptr;
            v.arr = static_cast<uint8_t>(a);
            v.elem = static_cast<uint16_t>(e);
            v.tag = entry.tag;
            v.size = tag_size(v.tag);
            v.shadowed = false;
            v.direct = !resolved_later;
            v.located = -1;
            v.addr = nullptr;
            RawFn raw = raw_fn(v.tag);
            if (raw != nullptr && !resolved_later) {
                v.addr = raw(v.leaf);
            } else if ((raw != nullptr || is_text(v.tag)) && v.size != 0 && v.size <= MAX_VALUE_BYTES) {
                v.shadowed = true;
                shadow_vars[shadow_total++] = i;
                shadow_bytes += v.size;
            } else {
                v.size = 0; /* nothing the adapter can show */
            }
        }
    }
    shadow_pool = new (std::nothrow) unsigned char[shadow_bytes != 0 ? shadow_bytes : 1]();
    if (shadow_pool == nullptr) {
        return false;
    }
    uint32_t offset = 0;
    for (uint32_t k = 0; k < shadow_total; k++) {
        Var &v = vars[shadow_vars[k]];
        v.addr = shadow_pool + offset;
        offset += v.size;
        refresh_shadow(v);
    }

    strucpp::ResourceInstance *resources = g_config.get_resources();
    size_t resource_count = resources != nullptr ? g_config.get_resource_count() : 0;
    uint64_t base = 0;
    for (size_t r = 0; r < resource_count; r++) {
        for (size_t t = 0; resources[r].tasks != nullptr && t < resources[r].task_count; t++) {
            int64_t interval = resources[r].tasks[t].interval_ns;
            if (interval > 0) {
                base = gcd(base, static_cast<uint64_t>(interval));
            }
            task_total++;
        }
    }
    period_ns = base != 0 ? base : DEFAULT_PERIOD_NS;
    tasks = new (std::nothrow) Task[task_total != 0 ? task_total : 1];
    if (tasks == nullptr) {
        return false;
    }
    uint32_t placed = 0;
    for (size_t r = 0; r < resource_count; r++) {
        for (size_t t = 0; resources[r].tasks != nullptr && t < resources[r].task_count; t++) {
            strucpp::TaskInstance *task = &resources[r].tasks[t];
            int64_t interval = task->interval_ns;
            /* Insertion by priority keeps declaration order among equals. */
            uint32_t at = placed;
            while (at > 0 && tasks[at - 1].task->priority > task->priority) {
                tasks[at] = tasks[at - 1];
                at--;
            }
            tasks[at].task = task;
            tasks[at].divisor = interval > 0 ? static_cast<uint64_t>(interval) / period_ns : 1;
            placed++;
        }
    }
    return build_retain();
}

struct Tables {
    Tables() { tables_ok = build_tables(); }
    ~Tables()
    {
        delete[] vars;
        delete[] shadow_vars;
        delete[] shadow_pool;
        delete[] tasks;
        delete[] retain_vars;
    }
};

Tables tables;

/* ---- located variables ---- */

/* A value of `size` native bytes <-> an unsigned integer (zero-extended, or truncated). */
uint64_t bytes_get(const unsigned char *bytes, uint16_t size)
{
    uint8_t u8;
    uint16_t u16;
    uint32_t u32;
    uint64_t u64;

    switch (size) {
    case 2:
        std::memcpy(&u16, bytes, 2);
        return u16;
    case 4:
        std::memcpy(&u32, bytes, 4);
        return u32;
    case 8:
        std::memcpy(&u64, bytes, 8);
        return u64;
    default:
        std::memcpy(&u8, bytes, 1);
        return u8;
    }
}

void bytes_put(unsigned char *bytes, uint16_t size, uint64_t v)
{
    uint8_t u8 = static_cast<uint8_t>(v);
    uint16_t u16 = static_cast<uint16_t>(v);
    uint32_t u32 = static_cast<uint32_t>(v);

    switch (size) {
    case 2:
        std::memcpy(bytes, &u16, 2);
        break;
    case 4:
        std::memcpy(bytes, &u32, 4);
        break;
    case 8:
        std::memcpy(bytes, &v, 8);
        break;
    default:
        std::memcpy(bytes, &u8, 1);
        break;
    }
}

/* Into the variable, as a program write would (ignored while the variable is forced). */
void loc_store(const Loc &l, uint64_t v)
{
    unsigned char buf[8] = {0};

    if (l.width == OPLC_WIDTH_BIT) {
        v = v != 0;
    }
    bytes_put(buf, l.size, v);
    if (l.var >= 0) {
        const Var &var = vars[l.var];
        dbg::handle_write(var.arr, var.elem, buf, static_cast<uint16_t>(var.size));
    } else {
        std::memcpy(l.storage, buf, l.size);
    }
}

/* The variable's current (forced) value. */
uint64_t loc_load(const Loc &l)
{
    unsigned char buf[8] = {0};

    if (l.var >= 0) {
        const Var &var = vars[l.var];
        dbg::handle_read(var.arr, var.elem, buf);
    } else {
        std::memcpy(buf, l.storage, l.size);
    }
    return bytes_get(buf, l.size);
}

void loc_copy_out(Loc &l)
{
    oplc_slot_put(l.slot, l.width, loc_load(l));
    l.published = oplc_slot_get(l.slot, l.width);
}

void copy_in()
{
    for (uint32_t k = 0; k < LOCATED_COUNT; k++) {
        const Loc &l = locs[k];
        if (l.slot == nullptr) {
            continue;
        }
        uint64_t v = oplc_slot_get(l.slot, l.width);
        if (l.area == OPLC_AREA_INPUT || v != l.published) {
            loc_store(l, v);
        }
    }
}

void copy_out()
{
    for (uint32_t k = 0; k < LOCATED_COUNT; k++) {
        Loc &l = locs[k];
        if (l.slot != nullptr && l.area != OPLC_AREA_INPUT) {
            loc_copy_out(l);
        }
    }
}

/* ---- the ABI ---- */

int32_t adapter_bind_image(oplc_image_t *image)
{
    if (image == nullptr) {
        return -1;
    }
    if (!tables_ok) {
        return -2;
    }
    for (uint32_t k = 0; k < LOCATED_COUNT; k++) {
        const strucpp::LocatedVar &d = strucpp::locatedVars[k];
        Loc &l = locs[k];
        l.storage = d.pointer;
        l.area = static_cast<uint8_t>(d.area);
        l.width = static_cast<uint8_t>(d.size);
        l.index = d.byte_index;
        l.bit = d.bit_index;
        l.var = -1;
        l.size = static_cast<uint16_t>(oplc_width_bytes(l.width));
        for (uint32_t i = 0; l.storage != nullptr && i < var_total; i++) {
            Var &v = vars[i];
            if (!v.shadowed && v.size != 0 && (v.addr == l.storage || v.leaf == l.storage)) {
                l.var = static_cast<int32_t>(i);
                l.size = static_cast<uint16_t>(v.size);
                v.located = static_cast<int32_t>(k);
                break;
            }
        }
        l.slot = l.storage != nullptr && l.size <= 8 ? oplc_image_slot(image, l.area, l.width, l.index, l.bit) : nullptr;
        l.in_image = l.slot != nullptr;
        l.published = l.slot != nullptr ? oplc_slot_get(l.slot, l.width) : 0;
    }
    return 0;
}

int32_t adapter_init()
{
    clock_ns = 0;
    return tables_ok ? 0 : -2;
}

void run_tasks(uint64_t tick)
{
    for (uint32_t t = 0; t < task_total; t++) {
        strucpp::TaskInstance *task = tasks[t].task;
        if (tick % tasks[t].divisor != 0 || task->programs == nullptr) {
            continue;
        }
        for (size_t p = 0; p < task->program_count; p++) {
            strucpp::ProgramBase *program = task->programs[p];
            if (program != nullptr) {
                program->sync_in();
                program->run();
                program->sync_out();
            }
        }
    }
}

/* An IEC run-time error (an array index out of bounds, a NULL reference) is a C++ exception
 * in STruC++'s code; it must not unwind into rt-core, which is not C++. Once the exception is
 * caught and gone, it becomes SIGILL on this thread, which rt-core's guard turns into a
 * program fault (PLC in ERROR, outputs at zero) like any other crash of the program. */
void adapter_run_tick(uint64_t tick)
{
    bool failed = false;

    copy_in();
    strucpp::__CURRENT_TIME_NS = clock_ns;
    try {
        run_tasks(tick);
    } catch (...) {
        failed = true;
    }
    if (failed) {
        std::raise(SIGILL);
        std::abort(); /* only if nothing guards the call */
    }
    clock_ns += static_cast<int64_t>(period_ns);
    copy_out();
    for (uint32_t k = 0; k < shadow_total; k++) {
        refresh_shadow(vars[shadow_vars[k]]);
    }
}

uint64_t adapter_tick_period_ns()
{
    return period_ns;
}

const char *adapter_program_md5()
{
#ifdef PROGRAM_MD5
    return PROGRAM_MD5;
#else
    return nullptr;
#endif
}

uint32_t adapter_var_count()
{
    return var_total;
}

uint32_t adapter_var_size(uint32_t index)
{
    return index < var_total ? vars[index].size : 0;
}

/* TIME, DATE, TOD and DT are signed 64-bit nanoseconds: plain scalars, which is also how the
 * Editor >= 4.2 reads them. */
uint32_t adapter_var_kind(uint32_t index)
{
    if (index < var_total && is_text(vars[index].tag)) {
        return OPLC_VAR_STRING;
    }
    return OPLC_VAR_SCALAR;
}

void *adapter_var_addr(uint32_t index)
{
    return index < var_total && vars[index].size != 0 ? vars[index].addr : nullptr;
}

/* After a write into the program (a force, a RETAIN restore): the debugger's copy of a
 * STRING, or the image cell of a located output or memory variable, shows it at once. */
void show_written(const Var &v)
{
    if (v.shadowed) {
        refresh_shadow(v);
    } else if (v.located >= 0) {
        Loc &l = locs[v.located];
        if (l.slot != nullptr && l.area != OPLC_AREA_INPUT) {
            loc_copy_out(l);
        }
    }
}

/* A short value is zero-padded to the variable's size (STRING arrives as length + bytes,
 * unpadded), a long one cut. A forced located output reaches its image cell at once; a
 * released located input shows the image's value again at once. */
int32_t adapter_var_force(uint32_t index, const void *value, uint32_t len)
{
    unsigned char buf[MAX_VALUE_BYTES];

    if (index >= var_total || (value == nullptr && len != 0)) {
        return -1;
    }
    const Var &v = vars[index];
    if (v.size == 0 || v.size > sizeof buf) {
        return -2;
    }
    std::memset(buf, 0, sizeof buf);
    if (len != 0) {
        std::memcpy(buf, value, len < v.size ? len : v.size);
    }
    if (dbg::handle_set(v.arr, v.elem, true, buf, static_cast<uint16_t>(v.size)) != dbg::STATUS_OK) {
        return -2;
    }
    show_written(v);
    return 0;
}

int32_t adapter_var_unforce(uint32_t index)
{
    if (index >= var_total) {
        return -1;
    }
    const Var &v = vars[index];
    if (v.size == 0 || dbg::handle_set(v.arr, v.elem, false, nullptr, 0) != dbg::STATUS_OK) {
        return -2;
    }
    if (v.shadowed) {
        refresh_shadow(v);
    } else if (v.located >= 0) {
        const Loc &l = locs[v.located];
        if (l.slot != nullptr && l.area == OPLC_AREA_INPUT) {
            loc_store(l, oplc_slot_get(l.slot, l.width));
        }
    }
    return 0;
}

uint32_t adapter_group_count()
{
    return dbg::handle_array_count();
}

uint32_t adapter_group_len(uint32_t group)
{
    return group <= UINT8_MAX ? dbg::handle_elem_count(static_cast<uint8_t>(group)) : 0;
}

uint32_t adapter_located_count()
{
    return LOCATED_COUNT;
}

/* in_image 1: the variable is bound to that image cell and copied around every scan (so
 * rt-core publishes the cell); 0: the location has no cell in the image. */
int32_t adapter_located_at(uint32_t i, oplc_located_t *out)
{
    if (out == nullptr || i >= LOCATED_COUNT) {
        return -1;
    }
    const strucpp::LocatedVar &d = strucpp::locatedVars[i];
    const Loc &l = locs[i];
    out->area = static_cast<uint8_t>(d.area);
    out->width = static_cast<uint8_t>(d.size);
    out->index = d.byte_index;
    out->bit = d.bit_index;
    out->in_image = l.in_image;
    out->size = l.size != 0 ? l.size : static_cast<uint16_t>(oplc_width_bytes(out->width));
    return 0;
}

uint32_t adapter_retain_count()
{
    return retain_total;
}

uint32_t adapter_retain_var(uint32_t i)
{
    return i < retain_total ? retain_vars[i] : UINT32_MAX;
}

/* Restores RETAIN variable i (after init, before the first scan, nothing forced) from the
 * var_size bytes saved from its var_addr, through the leaf's typed setter as a program write;
 * a located %Q/%M variable reaches its image cell at once. */
int32_t adapter_retain_set(uint32_t i, const void *value, uint32_t len)
{
    if (i >= retain_total || value == nullptr) {
        return -1;
    }
    const Var &v = vars[retain_vars[i]];
    if (v.size == 0 || len != v.size) {
        return -1;
    }
    if (dbg::handle_write(v.arr, v.elem, static_cast<const uint8_t *>(value), static_cast<uint16_t>(v.size)) !=
        dbg::STATUS_OK) {
        return -2;
    }
    show_written(v);
    return 0;
}

/* Writes a debug variable once, through the leaf's typed setter as a program write (not a
 * force: a forced variable keeps its forced value); a short value is zero-padded, as for
 * var_force. A located %Q/%M variable reaches its image cell at once. */
int32_t adapter_var_write(uint32_t index, const void *value, uint32_t len)
{
    unsigned char buf[MAX_VALUE_BYTES];

    if (index >= var_total || (value == nullptr && len != 0)) {
        return -1;
    }
    const Var &v = vars[index];
    if (v.size == 0 || v.size > sizeof buf) {
        return -2;
    }
    std::memset(buf, 0, sizeof buf);
    if (len != 0) {
        std::memcpy(buf, value, len < v.size ? len : v.size);
    }
    if (dbg::handle_write(v.arr, v.elem, buf, static_cast<uint16_t>(v.size)) != dbg::STATUS_OK) {
        return -2;
    }
    show_written(v);
    return 0;
}

const oplc_program_abi_t adapter_abi = {
    OPLC_PROGRAM_ABI_VERSION,
    static_cast<uint32_t>(sizeof(oplc_program_abi_t)),
    "strucpp",
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
    adapter_group_count,
    adapter_group_len,
    adapter_located_count,
    adapter_located_at,
    adapter_retain_count,
    adapter_retain_var,
    adapter_retain_set,
    adapter_var_write,
};

} // namespace

extern "C" const oplc_program_abi_t *oplc_program_entry(void)
{
    return &adapter_abi;
}
