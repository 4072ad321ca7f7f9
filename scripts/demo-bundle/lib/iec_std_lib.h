/*
 * iec_std_lib.h: literals, time arithmetic and the standard function blocks that generated
 * code expects in scope.
 *
 * Part of the OpenPLC Rust runtime's demo bundle: a minimal, independently written stand-in
 * for the MatIEC header of the same name, covering what the demo program uses.
 */
#ifndef _IEC_STD_LIB_H
#define _IEC_STD_LIB_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "iec_types_all.h"

/* Program time (advanced by updateTime() once per scan) and the debug switch, both defined
 * in glueVars.c. */
extern TIME __CURRENT_TIME;
extern BOOL __DEBUG;

#define __BOOL_LITERAL(value) ((BOOL)(value))
#define __SINT_LITERAL(value) ((SINT)(value))
#define __INT_LITERAL(value) ((INT)(value))
#define __DINT_LITERAL(value) ((DINT)(value))
#define __LINT_LITERAL(value) ((LINT)(value))
#define __USINT_LITERAL(value) ((USINT)(value))
#define __UINT_LITERAL(value) ((UINT)(value))
#define __UDINT_LITERAL(value) ((UDINT)(value))
#define __ULINT_LITERAL(value) ((ULINT)(value))
#define __BYTE_LITERAL(value) ((BYTE)(value))
#define __WORD_LITERAL(value) ((WORD)(value))
#define __DWORD_LITERAL(value) ((DWORD)(value))
#define __LWORD_LITERAL(value) ((LWORD)(value))
#define __REAL_LITERAL(value) ((REAL)(value))
#define __LREAL_LITERAL(value) ((LREAL)(value))
#define __STRING_LITERAL(count, value) ((STRING){count, value})

#define __NS_PER_S 1000000000LL

/* Keeps tv_nsec in [0, 1 s) so that comparisons can look at tv_sec first. */
static inline IEC_TIMESPEC __timespec_from_ns_parts(long long sec, long long nsec)
{
    IEC_TIMESPEC t;
    sec += nsec / __NS_PER_S;
    nsec %= __NS_PER_S;
    if (nsec < 0) {
        nsec += __NS_PER_S;
        sec -= 1;
    }
    t.tv_sec = (long int)sec;
    t.tv_nsec = (long int)nsec;
    return t;
}

/* T#... literals arrive as (sign, milliseconds, seconds, minutes, hours, days). */
static inline IEC_TIMESPEC __time_to_timespec(int sign, double msec, double sec, double min, double hour,
                                              double day)
{
    double total_s = day * 86400.0 + hour * 3600.0 + min * 60.0 + sec + msec / 1000.0;
    long long whole = (long long)total_s;
    long long nsec = (long long)((total_s - (double)whole) * 1e9 + 0.5);
    if (sign < 0) {
        whole = -whole;
        nsec = -nsec;
    }
    return __timespec_from_ns_parts(whole, nsec);
}

static inline TIME __time_add(TIME a, TIME b)
{
    return __timespec_from_ns_parts((long long)a.tv_sec + b.tv_sec, (long long)a.tv_nsec + b.tv_nsec);
}

static inline TIME __time_sub(TIME a, TIME b)
{
    return __timespec_from_ns_parts((long long)a.tv_sec - b.tv_sec, (long long)a.tv_nsec - b.tv_nsec);
}

/* < 0, 0 or > 0 as a is earlier than, equal to or later than b. */
static inline int __time_cmp(TIME a, TIME b)
{
    if (a.tv_sec != b.tv_sec) {
        return a.tv_sec < b.tv_sec ? -1 : 1;
    }
    if (a.tv_nsec != b.tv_nsec) {
        return a.tv_nsec < b.tv_nsec ? -1 : 1;
    }
    return 0;
}

#include "iec_std_FB.h"

#endif /* _IEC_STD_LIB_H */
