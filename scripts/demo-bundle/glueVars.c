/*
 * OpenPLC Rust runtime demo bundle: hand-written in the shape of the glueVars.c that xml2st
 * generates from LOCATED_VARIABLES.h (same symbols, our own text).
 *
 * Every located variable gets storage (its name with two more leading underscores) and a
 * pointer named exactly as in LOCATED_VARIABLES.h; the POUs reach the variable through that
 * pointer, so a runtime may re-point it at its own image.
 */
#include "iec_std_lib.h"

UINT ___MW0;
UINT *__MW0 = &___MW0;
BOOL ___IX0_0;
BOOL *__IX0_0 = &___IX0_0;
BOOL ___QX0_0;
BOOL *__QX0_0 = &___QX0_0;
UINT ___IW0;
UINT *__IW0 = &___IW0;
UINT ___QW0;
UINT *__QW0 = &___QW0;

/* Program time, advanced by updateTime() once per scan. */
TIME __CURRENT_TIME;
BOOL __DEBUG;
extern unsigned long long common_ticktime__;

#define BUFFER_SIZE 1024

/* The runtime's pointer tables (upstream OpenPLC v4), received by setBufferPointers(). */
static IEC_BOOL *(*bool_input_ptr)[8];
static IEC_BOOL *(*bool_output_ptr)[8];
static IEC_BYTE **byte_input_ptr;
static IEC_BYTE **byte_output_ptr;
static IEC_UINT **int_input_ptr;
static IEC_UINT **int_output_ptr;
static IEC_UDINT **dint_input_ptr;
static IEC_UDINT **dint_output_ptr;
static IEC_ULINT **lint_input_ptr;
static IEC_ULINT **lint_output_ptr;
static IEC_UINT **int_memory_ptr;
static IEC_UDINT **dint_memory_ptr;
static IEC_ULINT **lint_memory_ptr;

void setBufferPointers(IEC_BOOL *input_bool[BUFFER_SIZE][8], IEC_BOOL *output_bool[BUFFER_SIZE][8],
                       IEC_BYTE *input_byte[BUFFER_SIZE], IEC_BYTE *output_byte[BUFFER_SIZE],
                       IEC_UINT *input_int[BUFFER_SIZE], IEC_UINT *output_int[BUFFER_SIZE],
                       IEC_UDINT *input_dint[BUFFER_SIZE], IEC_UDINT *output_dint[BUFFER_SIZE],
                       IEC_ULINT *input_lint[BUFFER_SIZE], IEC_ULINT *output_lint[BUFFER_SIZE],
                       IEC_UINT *int_memory[BUFFER_SIZE], IEC_UDINT *dint_memory[BUFFER_SIZE],
                       IEC_ULINT *lint_memory[BUFFER_SIZE])
{
    bool_input_ptr = input_bool;
    bool_output_ptr = output_bool;
    byte_input_ptr = input_byte;
    byte_output_ptr = output_byte;
    int_input_ptr = input_int;
    int_output_ptr = output_int;
    dint_input_ptr = input_dint;
    dint_output_ptr = output_dint;
    lint_input_ptr = input_lint;
    lint_output_ptr = output_lint;
    int_memory_ptr = int_memory;
    dint_memory_ptr = dint_memory;
    lint_memory_ptr = lint_memory;
}

/* Publishes each located variable's address in the runtime's tables. */
void glueVars(void)
{
    int_memory_ptr[0] = (IEC_UINT *)__MW0;
    bool_input_ptr[0][0] = (IEC_BOOL *)__IX0_0;
    bool_output_ptr[0][0] = (IEC_BOOL *)__QX0_0;
    int_input_ptr[0] = (IEC_UINT *)__IW0;
    int_output_ptr[0] = (IEC_UINT *)__QW0;
}

/* One scan's worth of program time. */
void updateTime(void)
{
    __CURRENT_TIME.tv_sec += (long int)(common_ticktime__ / 1000000000ULL);
    __CURRENT_TIME.tv_nsec += (long int)(common_ticktime__ % 1000000000ULL);
    if (__CURRENT_TIME.tv_nsec >= 1000000000L) {
        __CURRENT_TIME.tv_nsec -= 1000000000L;
        __CURRENT_TIME.tv_sec += 1;
    }
}
