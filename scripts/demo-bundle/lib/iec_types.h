/*
 * iec_types.h: the IEC 61131-3 elementary types, as C types.
 *
 * Part of the OpenPLC Rust runtime's demo bundle: a minimal, independently written stand-in
 * for the MatIEC header of the same name. The names and memory layouts are the interface
 * MatIEC-generated C relies on, so they are the same; nothing else is.
 */
#ifndef IEC_TYPES_H
#define IEC_TYPES_H

#include <stdint.h>

typedef uint8_t IEC_BOOL;

typedef int8_t IEC_SINT;
typedef int16_t IEC_INT;
typedef int32_t IEC_DINT;
typedef int64_t IEC_LINT;

typedef uint8_t IEC_USINT;
typedef uint16_t IEC_UINT;
typedef uint32_t IEC_UDINT;
typedef uint64_t IEC_ULINT;

typedef uint8_t IEC_BYTE;
typedef uint16_t IEC_WORD;
typedef uint32_t IEC_DWORD;
typedef uint64_t IEC_LWORD;

typedef float IEC_REAL;
typedef double IEC_LREAL;

/* Durations and points in time. Two C longs, so 16 bytes on LP64 targets: debuggers that
 * expect 8 bytes must convert. */
typedef struct {
    long int tv_sec;
    long int tv_nsec;
} IEC_TIMESPEC;

typedef IEC_TIMESPEC IEC_TIME;
typedef IEC_TIMESPEC IEC_DATE;
typedef IEC_TIMESPEC IEC_DT;
typedef IEC_TIMESPEC IEC_TOD;

/* A STRING is a length byte followed by a fixed body: 127 bytes by default. */
#ifndef STR_MAX_LEN
#define STR_MAX_LEN 126
#endif

#ifndef STR_LEN_TYPE
#define STR_LEN_TYPE uint8_t
#endif

typedef STR_LEN_TYPE __strlen_t;

typedef struct {
    __strlen_t len;
    uint8_t body[STR_MAX_LEN];
} IEC_STRING;

#endif /* IEC_TYPES_H */
