/*
 * oplc_image_slot.h: where a located variable (%IX0.0, %QW3, %MD7, ...) lives in rt-core's
 * image, and reading or writing such a cell as an unsigned integer. Shared by the MatIEC
 * (C) and STruC++ (C++) adapters; openplc-builder writes it beside them for each build.
 */
#ifndef OPLC_IMAGE_SLOT_H
#define OPLC_IMAGE_SLOT_H

#include <stddef.h>
#include <stdint.h>
#include "openplc_abi.h"

/* Bytes of one image cell of `width` (OPLC_WIDTH_*). */
static inline size_t oplc_width_bytes(uint8_t width)
{
    switch (width) {
    case OPLC_WIDTH_WORD:
        return 2;
    case OPLC_WIDTH_DWORD:
        return 4;
    case OPLC_WIDTH_LWORD:
        return 8;
    default:
        return 1;
    }
}

/* The image cell of a located variable, or NULL when the address does not exist
 * (index past the tables, bit past 7, or %MB, which OpenPLC does not have). */
static inline void *oplc_image_slot(oplc_image_t *img, uint8_t area, uint8_t width, size_t i, uint8_t bit)
{
    if (i >= OPLC_BUFFER_SIZE) {
        return NULL;
    }
    if (width == OPLC_WIDTH_BIT) {
        if (bit >= 8) {
            return NULL;
        }
        switch (area) {
        case OPLC_AREA_INPUT:
            return &img->in.bool_input[i][bit];
        case OPLC_AREA_OUTPUT:
            return &img->out.bool_output[i][bit];
        default:
            return &img->out.bool_memory[i][bit];
        }
    }
    switch (area) {
    case OPLC_AREA_INPUT:
        switch (width) {
        case OPLC_WIDTH_BYTE:
            return &img->in.byte_input[i];
        case OPLC_WIDTH_WORD:
            return &img->in.int_input[i];
        case OPLC_WIDTH_DWORD:
            return &img->in.dint_input[i];
        default:
            return &img->in.lint_input[i];
        }
    case OPLC_AREA_OUTPUT:
        switch (width) {
        case OPLC_WIDTH_BYTE:
            return &img->out.byte_output[i];
        case OPLC_WIDTH_WORD:
            return &img->out.int_output[i];
        case OPLC_WIDTH_DWORD:
            return &img->out.dint_output[i];
        default:
            return &img->out.lint_output[i];
        }
    default:
        switch (width) {
        case OPLC_WIDTH_WORD:
            return &img->out.int_memory[i];
        case OPLC_WIDTH_DWORD:
            return &img->out.dint_memory[i];
        case OPLC_WIDTH_LWORD:
            return &img->out.lint_memory[i];
        default:
            return NULL;
        }
    }
}

/* An image cell as an unsigned integer, and back (truncated to the cell). */
static inline uint64_t oplc_slot_get(const void *slot, uint8_t width)
{
    switch (oplc_width_bytes(width)) {
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

static inline void oplc_slot_put(void *slot, uint8_t width, uint64_t v)
{
    switch (oplc_width_bytes(width)) {
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

#endif
