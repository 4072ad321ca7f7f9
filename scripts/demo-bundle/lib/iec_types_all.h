/*
 * iec_types_all.h: the IEC type names, the flag-carrying wrappers generated code declares its
 * variables with, and the type enumeration of the debugger table.
 *
 * Part of the OpenPLC Rust runtime's demo bundle: a minimal, independently written stand-in
 * for the MatIEC header of the same name (same public names and layouts).
 */
#ifndef IEC_TYPES_ALL_H
#define IEC_TYPES_ALL_H

#include "iec_types.h"

#ifndef TRUE
#define TRUE 1
#define FALSE 0
#endif

/* Bits of the flags byte every variable carries. */
#define __IEC_DEBUG_FLAG 0x01
#define __IEC_FORCE_FLAG 0x02
#define __IEC_RETAIN_FLAG 0x04
#define __IEC_OUTPUT_FLAG 0x08

/* Applies X to every elementary type name. */
#define __IEC_EACH_ELEMENTARY(X) \
    X(BOOL)                      \
    X(SINT)                      \
    X(INT)                       \
    X(DINT)                      \
    X(LINT)                      \
    X(USINT)                     \
    X(UINT)                      \
    X(UDINT)                     \
    X(ULINT)                     \
    X(BYTE)                      \
    X(WORD)                      \
    X(DWORD)                     \
    X(LWORD)                     \
    X(REAL)                      \
    X(LREAL)                     \
    X(TIME)                      \
    X(DATE)                      \
    X(TOD)                       \
    X(DT)                        \
    X(STRING)

/*
 * For each type T: the plain name T; __IEC_T_t, a variable that owns its value; and
 * __IEC_T_p, a variable that reaches its value through a pointer (located and external
 * variables) and keeps the forced value beside it.
 */
#define __IEC_WRAPPERS(T)        \
    typedef IEC_##T T;           \
    typedef struct {             \
        IEC_##T value;           \
        IEC_BYTE flags;          \
    } __IEC_##T##_t;             \
    typedef struct {             \
        IEC_##T *value;          \
        IEC_BYTE flags;          \
        IEC_##T fvalue;          \
    } __IEC_##T##_p;

__IEC_EACH_ELEMENTARY(__IEC_WRAPPERS)

/* Debugger table kinds: T_ENUM for plain variables, T_P_ENUM for pointer variables the
 * program reads (inputs, externals), T_O_ENUM for pointer variables it writes (outputs,
 * memory). */
#define __IEC_KIND_PLAIN(T) T##_ENUM,
#define __IEC_KIND_POINTER(T) T##_P_ENUM,
#define __IEC_KIND_OUTPUT(T) T##_O_ENUM,

typedef enum {
    __IEC_EACH_ELEMENTARY(__IEC_KIND_PLAIN)
    __IEC_EACH_ELEMENTARY(__IEC_KIND_POINTER)
    __IEC_EACH_ELEMENTARY(__IEC_KIND_OUTPUT)
    UNKNOWN_ENUM
} __IEC_types_enum;

#endif /* IEC_TYPES_ALL_H */
