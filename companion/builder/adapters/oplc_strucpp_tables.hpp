/*
 * oplc_strucpp_tables.hpp: building the tables once, when the library is loaded: the debug
 * variables and their shadows, the task schedule on the GCD grid, the RETAIN variables.
 * Part of strucpp_adapter.cpp, which includes it once, after the parts it uses (types,
 * state, located, force, retain, tables, tasks); not a translation unit of its own.
 */
#pragma once

namespace {

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

} // namespace
