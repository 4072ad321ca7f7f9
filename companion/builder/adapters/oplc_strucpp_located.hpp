/*
 * oplc_strucpp_located.hpp: located variables: copied between rt-core's image and the program
 * around every scan, through the variables' typed accessors so forcing keeps its meaning.
 * Part of strucpp_adapter.cpp, which includes it once, after the parts it uses (types,
 * state, located, force, retain, tables, tasks); not a translation unit of its own.
 */
#pragma once

namespace {

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

} // namespace
