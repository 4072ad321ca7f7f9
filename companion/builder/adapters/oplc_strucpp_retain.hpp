/*
 * oplc_strucpp_retain.hpp: RETAIN variables: the programs' RETAIN descriptors as debug variables
 * (found at load) and the ABI's retain_count / retain_var / retain_set.
 * Part of strucpp_adapter.cpp, which includes it once, after the parts it uses (types,
 * state, located, force, retain, tables, tasks); not a translation unit of its own.
 */
#pragma once

namespace {

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

} // namespace
