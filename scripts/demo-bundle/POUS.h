/* OpenPLC Rust runtime demo bundle: hand-written in the shape of MatIEC (iec2c) output. */

#ifndef __POUS_H
#define __POUS_H

#include "accessor.h"
#include "iec_std_lib.h"

// PROGRAM MAIN
// Data part
typedef struct {
  // PROGRAM Interface - IN, OUT, IN_OUT variables

  // PROGRAM private variables - TEMP, private and located variables
  __DECLARE_LOCATED(UINT,COUNTER)
  __DECLARE_LOCATED(BOOL,DIN0)
  __DECLARE_LOCATED(BOOL,DOUT0)
  __DECLARE_LOCATED(UINT,AIN0)
  __DECLARE_LOCATED(UINT,AOUT0)
  __DECLARE_VAR(BOOL,V_BOOL)
  __DECLARE_VAR(SINT,V_SINT)
  __DECLARE_VAR(INT,V_INT)
  __DECLARE_VAR(DINT,V_DINT)
  __DECLARE_VAR(LINT,V_LINT)
  __DECLARE_VAR(USINT,V_USINT)
  __DECLARE_VAR(UINT,V_UINT)
  __DECLARE_VAR(UDINT,V_UDINT)
  __DECLARE_VAR(ULINT,V_ULINT)
  __DECLARE_VAR(REAL,V_REAL)
  __DECLARE_VAR(LREAL,V_LREAL)
  __DECLARE_VAR(BYTE,V_BYTE)
  __DECLARE_VAR(WORD,V_WORD)
  __DECLARE_VAR(DWORD,V_DWORD)
  __DECLARE_VAR(LWORD,V_LWORD)
  TON UPTIME;
  __DECLARE_VAR(TIME,ELAPSED)
  __DECLARE_VAR(TIME,PRESET)
  __DECLARE_VAR(STRING,TEXT)

} MAIN;

void MAIN_init__(MAIN *data__, BOOL retain);
// Code part
void MAIN_body__(MAIN *data__);
#endif //__POUS_H
