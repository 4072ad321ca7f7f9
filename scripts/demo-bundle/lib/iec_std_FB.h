/*
 * iec_std_FB.h: standard function blocks.
 *
 * Part of the OpenPLC Rust runtime's demo bundle: an independently written stand-in for the
 * MatIEC header of the same name, holding only TON. The member names and their order are the
 * interface (VARIABLES.csv and debug.c list them in this order); the body is our own.
 */
#ifndef _IEC_STD_FB_H
#define _IEC_STD_FB_H

#include "accessor.h"

/* On-delay timer. */
typedef struct {
    /* Interface */
    __DECLARE_VAR(BOOL, EN)
    __DECLARE_VAR(BOOL, ENO)
    __DECLARE_VAR(BOOL, IN)
    __DECLARE_VAR(TIME, PT)
    __DECLARE_VAR(BOOL, Q)
    __DECLARE_VAR(TIME, ET)
    /* Private */
    __DECLARE_VAR(SINT, STATE)
    __DECLARE_VAR(BOOL, PREV_IN)
    __DECLARE_VAR(TIME, CURRENT_TIME)
    __DECLARE_VAR(TIME, START_TIME)
} TON;

static inline void TON_init__(TON *data__, BOOL retain)
{
    TIME zero = {0, 0};
    __INIT_VAR(data__->EN, __BOOL_LITERAL(TRUE), retain)
    __INIT_VAR(data__->ENO, __BOOL_LITERAL(TRUE), retain)
    __INIT_VAR(data__->IN, __BOOL_LITERAL(FALSE), retain)
    __INIT_VAR(data__->PT, zero, retain)
    __INIT_VAR(data__->Q, __BOOL_LITERAL(FALSE), retain)
    __INIT_VAR(data__->ET, zero, retain)
    __INIT_VAR(data__->STATE, 0, retain)
    __INIT_VAR(data__->PREV_IN, __BOOL_LITERAL(FALSE), retain)
    __INIT_VAR(data__->CURRENT_TIME, zero, retain)
    __INIT_VAR(data__->START_TIME, zero, retain)
}

/*
 * STATE 0: idle; a rising IN starts timing from the current program time (ET stays 0 on
 * that scan). STATE 1: timing; ET is the program time since the start, until it reaches PT,
 * then Q rises and ET holds PT (STATE 2). IN falling resets everything.
 */
static inline void TON_body__(TON *data__)
{
    TIME zero = {0, 0};
    BOOL in;

    if (!__GET_VAR(data__->EN, )) {
        __SET_VAR(data__->, ENO, , __BOOL_LITERAL(FALSE));
        return;
    }
    __SET_VAR(data__->, ENO, , __BOOL_LITERAL(TRUE));
    __SET_VAR(data__->, CURRENT_TIME, , __CURRENT_TIME);
    in = __GET_VAR(data__->IN, );

    if (!in) {
        __SET_VAR(data__->, STATE, , 0);
        __SET_VAR(data__->, Q, , __BOOL_LITERAL(FALSE));
        __SET_VAR(data__->, ET, , zero);
    } else if (__GET_VAR(data__->STATE, ) == 0 && !__GET_VAR(data__->PREV_IN, )) {
        __SET_VAR(data__->, STATE, , 1);
        __SET_VAR(data__->, Q, , __BOOL_LITERAL(FALSE));
        __SET_VAR(data__->, START_TIME, , __GET_VAR(data__->CURRENT_TIME, ));
        __SET_VAR(data__->, ET, , zero);
    } else if (__GET_VAR(data__->STATE, ) == 1) {
        TIME elapsed = __time_sub(__GET_VAR(data__->CURRENT_TIME, ), __GET_VAR(data__->START_TIME, ));
        if (__time_cmp(elapsed, __GET_VAR(data__->PT, )) >= 0) {
            __SET_VAR(data__->, STATE, , 2);
            __SET_VAR(data__->, Q, , __BOOL_LITERAL(TRUE));
            __SET_VAR(data__->, ET, , __GET_VAR(data__->PT, ));
        } else {
            __SET_VAR(data__->, ET, , elapsed);
        }
    }
    __SET_VAR(data__->, PREV_IN, , in);
}

#endif /* _IEC_STD_FB_H */
