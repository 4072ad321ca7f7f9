/* OpenPLC Rust runtime demo bundle: hand-written in the shape of MatIEC (iec2c) output. */

#include "POUS.h"

void MAIN_init__(MAIN *data__, BOOL retain) {
  __INIT_LOCATED(UINT,__MW0,data__->COUNTER,retain)
  __INIT_LOCATED_VALUE(data__->COUNTER,0)
  __INIT_LOCATED(BOOL,__IX0_0,data__->DIN0,retain)
  __INIT_LOCATED_VALUE(data__->DIN0,__BOOL_LITERAL(FALSE))
  __INIT_LOCATED(BOOL,__QX0_0,data__->DOUT0,retain)
  __INIT_LOCATED_VALUE(data__->DOUT0,__BOOL_LITERAL(FALSE))
  __INIT_LOCATED(UINT,__IW0,data__->AIN0,retain)
  __INIT_LOCATED_VALUE(data__->AIN0,0)
  __INIT_LOCATED(UINT,__QW0,data__->AOUT0,retain)
  __INIT_LOCATED_VALUE(data__->AOUT0,0)
  __INIT_VAR(data__->V_BOOL,__BOOL_LITERAL(FALSE),retain)
  __INIT_VAR(data__->V_SINT,0,retain)
  __INIT_VAR(data__->V_INT,0,retain)
  __INIT_VAR(data__->V_DINT,0,retain)
  __INIT_VAR(data__->V_LINT,0,retain)
  __INIT_VAR(data__->V_USINT,0,retain)
  __INIT_VAR(data__->V_UINT,0,retain)
  __INIT_VAR(data__->V_UDINT,0,retain)
  __INIT_VAR(data__->V_ULINT,0,retain)
  __INIT_VAR(data__->V_REAL,0,retain)
  __INIT_VAR(data__->V_LREAL,0,retain)
  __INIT_VAR(data__->V_BYTE,0,retain)
  __INIT_VAR(data__->V_WORD,0,retain)
  __INIT_VAR(data__->V_DWORD,0,retain)
  __INIT_VAR(data__->V_LWORD,0,retain)
  TON_init__(&data__->UPTIME,retain);
  __INIT_VAR(data__->ELAPSED,__time_to_timespec(1, 0, 0, 0, 0, 0),retain)
  __INIT_VAR(data__->PRESET,__time_to_timespec(1, 500, 0, 0, 0, 0),retain)
  __INIT_VAR(data__->TEXT,__STRING_LITERAL(7,"OpenPLC"),retain)
}

// Code part
void MAIN_body__(MAIN *data__) {
  // Initialise TEMP variables

  __SET_LOCATED(data__->,COUNTER,,(__GET_LOCATED(data__->COUNTER,) + 1));
  __SET_LOCATED(data__->,DOUT0,,__GET_LOCATED(data__->DIN0,));
  __SET_LOCATED(data__->,AOUT0,,(__GET_LOCATED(data__->AIN0,) * 2));
  __SET_VAR(data__->,V_BOOL,,!(__GET_VAR(data__->V_BOOL,)));
  __SET_VAR(data__->,V_SINT,,(__GET_VAR(data__->V_SINT,) + 1));
  __SET_VAR(data__->,V_INT,,(__GET_VAR(data__->V_INT,) - 1));
  __SET_VAR(data__->,V_DINT,,(__GET_VAR(data__->V_DINT,) + 1000));
  __SET_VAR(data__->,V_LINT,,(__GET_VAR(data__->V_LINT,) + 1000000000000));
  __SET_VAR(data__->,V_USINT,,(__GET_VAR(data__->V_USINT,) + 1));
  __SET_VAR(data__->,V_UINT,,(__GET_VAR(data__->V_UINT,) + 2));
  __SET_VAR(data__->,V_UDINT,,(__GET_VAR(data__->V_UDINT,) + 100000));
  __SET_VAR(data__->,V_ULINT,,(__GET_VAR(data__->V_ULINT,) + 5000000000));
  __SET_VAR(data__->,V_REAL,,(__GET_VAR(data__->V_REAL,) + 0.5));
  __SET_VAR(data__->,V_LREAL,,(__GET_VAR(data__->V_LREAL,) + 0.25));
  __SET_VAR(data__->,V_BYTE,,(__GET_VAR(data__->V_BYTE,) ^ 0xA5));
  __SET_VAR(data__->,V_WORD,,~(__GET_VAR(data__->V_WORD,)));
  __SET_VAR(data__->,V_DWORD,,(__GET_VAR(data__->V_DWORD,) ^ 0xDEADBEEF));
  __SET_VAR(data__->,V_LWORD,,(__GET_VAR(data__->V_LWORD,) ^ 0x0123456789ABCDEF));
  __SET_VAR(data__->UPTIME.,IN,,__BOOL_LITERAL(TRUE));
  __SET_VAR(data__->UPTIME.,PT,,__time_to_timespec(1, 0, 0, 0, 0, 1));
  TON_body__(&data__->UPTIME);
  __SET_VAR(data__->,ELAPSED,,__GET_VAR(data__->UPTIME.ET,));

  goto __end;

__end:
  return;
} // MAIN_body__() 





