/*
 * oplc_strucpp_md5.cpp: the program's MD5 for the STruC++ adapter (strucpp_adapter.cpp),
 * which the Editor's debugger compares with its own: PROGRAM_MD5 of the bundle's defines.h.
 * A unit of its own because it changes with every upload, while the adapter changes only
 * with the program's declarations and can then come from the build cache.
 */
#if defined(__has_include)
#if __has_include("defines.h")
#include "defines.h"
#endif
#endif

__attribute__((visibility("hidden"))) const char *oplc_strucpp_program_md5();

const char *oplc_strucpp_program_md5()
{
#ifdef PROGRAM_MD5
    return PROGRAM_MD5;
#else
    return nullptr;
#endif
}
