/*
 * oplc_strucpp_types.hpp: the constants every part shares and the scalar types behind the debug
 * table's tags (their raw values, the size of their forcing wrappers, their wire size).
 * Part of strucpp_adapter.cpp, which includes it once, after the parts it uses (types,
 * state, located, force, retain, tables, tasks); not a translation unit of its own.
 */
#pragma once

namespace {

namespace dbg = strucpp::debug;

/* Used when no task has an interval. */
constexpr uint64_t DEFAULT_PERIOD_NS = 20000000;
/* The largest wire value (WSTRING), and so the largest forced value. */
constexpr uint32_t MAX_VALUE_BYTES = 256;
constexpr uint32_t LOCATED_COUNT = strucpp::locatedVarsCount;
constexpr uint32_t LOCATED_SLOTS = LOCATED_COUNT != 0 ? LOCATED_COUNT : 1;

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

/* The wire size of a tag (also when the leaf cannot be resolved right now). */
uint32_t tag_size(uint8_t tag)
{
    return tag < dbg::TAG__COUNT ? dbg::type_ops[tag].size : 0;
}

} // namespace
