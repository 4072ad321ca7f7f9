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
 * With two or more tasks, rt-core runs each task on a thread of its own through the task
 * functions (oplc_strucpp_tasks.hpp; the builder then defines STRUCPP_THREADED). Otherwise
 * every task runs on the thread that calls run_tick (rt-core's scan thread), in IEC priority
 * order (0 first; declaration order among equals) when due: a task of interval I runs on
 * ticks that are multiples of I / base, base (the scan period) being the GCD of the
 * intervals; a task without an interval runs every tick, and with no interval at all the
 * period is 20 ms. The program time (what TIME() and the timers read) starts at 0 and
 * advances one period per tick; it is set on the calling thread before the tasks run, so it
 * is right with or without STRUCPP_THREADED (where it is thread-local).
 */
/* The program's declarations first, as every generated unit starts: the builder may then
 * stand the precompiled runtime headers in for what generated.hpp includes (pch.rs). The
 * debugger's exports are defined here and nowhere else: generated code never includes
 * debug_dispatch.hpp. */
#include "generated.hpp"

#define STRUCPP_V4_DEBUG_EXPORTS_DEFINE
#include "debug_dispatch.hpp"
#include "iec_located.hpp"
#include "iec_std_lib.hpp"

#if defined(__has_include)
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

/* The adapter's parts, one job each (see each header). They are headers of this one
 * translation unit rather than units of their own: the adapter is compiled with every
 * upload, and one unit compiles faster than seven. Quoted, they are found beside this file
 * before anything of the bundle's. */
#include "oplc_strucpp_types.hpp"
#include "oplc_strucpp_state.hpp"
#include "oplc_strucpp_located.hpp"
#include "oplc_strucpp_force.hpp"
#include "oplc_strucpp_retain.hpp"
#include "oplc_strucpp_tables.hpp"
#include "oplc_strucpp_tasks.hpp"

/* The program's MD5 (PROGRAM_MD5 of the bundle's defines.h), or null: defined in a unit of
 * its own (oplc_strucpp_md5.cpp), which changes with every upload while this one need not. */
__attribute__((visibility("hidden"))) const char *oplc_strucpp_program_md5();

namespace {

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
    find_owners();
    return 0;
}

int32_t adapter_init()
{
    clock_ns = 0;
    clock_unset = true;
    return tables_ok ? 0 : -2;
}

uint64_t adapter_tick_period_ns()
{
    return period_ns;
}

const char *adapter_program_md5()
{
    return oplc_strucpp_program_md5();
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
    adapter_task_count,
    adapter_task_info,
    adapter_task_thread_init,
    adapter_task_inputs,
    adapter_task_run,
    adapter_task_outputs,
};

} // namespace

extern "C" const oplc_program_abi_t *oplc_program_entry(void)
{
    return &adapter_abi;
}
