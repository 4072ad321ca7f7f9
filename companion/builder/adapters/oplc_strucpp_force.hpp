/*
 * oplc_strucpp_force.hpp: forcing and one-off writes: a debugger force or release, or a write,
 * made through the debug
 * table's setter and shown at once in the debugger's copy and the image.
 * Part of strucpp_adapter.cpp, which includes it once, after the parts it uses (types,
 * state, located, force, retain, tables, tasks); not a translation unit of its own.
 */
#pragma once

namespace {

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

} // namespace
