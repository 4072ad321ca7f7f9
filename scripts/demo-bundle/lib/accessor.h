/*
 * accessor.h: the macros generated POU code declares, initialises, reads and writes its
 * variables with.
 *
 * Part of the OpenPLC Rust runtime's demo bundle: a minimal, independently written stand-in
 * for the MatIEC header of the same name, covering the macros the demo uses. Forcing rules
 * (those of OpenPLC's MatIEC): a forced variable ignores the program's writes, and a forced
 * pointer variable reads as its forced copy.
 */
#ifndef __ACCESSOR_H
#define __ACCESSOR_H

#define __DECLARE_VAR(type, name) __IEC_##type##_t name;
#define __DECLARE_LOCATED(type, name) __IEC_##type##_p name;
#define __DECLARE_EXTERNAL(type, name) __IEC_##type##_p name;

#define __INIT_RETAIN(name, retained) name.flags |= (retained) ? __IEC_RETAIN_FLAG : 0;

#define __INIT_VAR(name, initial, retained) \
    name.value = initial;                   \
    __INIT_RETAIN(name, retained)

/* Located storage is defined elsewhere (glueVars.c) and reached through a global pointer. */
#define __INIT_LOCATED(type, location, name, retained) \
    {                                                  \
        extern type *location;                         \
        name.value = location;                         \
        __INIT_RETAIN(name, retained)                  \
    }

#define __INIT_LOCATED_VALUE(name, initial) *(name.value) = initial;

#define __GET_VAR(name, ...) (name.value __VA_ARGS__)

#define __GET_LOCATED(name, ...) \
    (((name.flags) & __IEC_FORCE_FLAG) ? (name.fvalue __VA_ARGS__) : ((*(name.value)) __VA_ARGS__))

#define __GET_EXTERNAL(name, ...) __GET_LOCATED(name, __VA_ARGS__)

#define __SET_VAR(prefix, name, suffix, new_value) \
    if (!((prefix name.flags) & __IEC_FORCE_FLAG)) prefix name.value suffix = new_value

#define __SET_LOCATED(prefix, name, suffix, new_value) \
    if (!((prefix name.flags) & __IEC_FORCE_FLAG)) (*(prefix name.value)) suffix = new_value

#endif /* __ACCESSOR_H */
