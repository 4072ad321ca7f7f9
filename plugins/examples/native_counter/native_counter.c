/* native_counter: counts the scans it sees into %IW0 and mirrors %QW0 into %IW1. */
#include "openplc_abi.h"

static plugin_runtime_args_t rt; /* a copy: upstream only promises the struct during init */
static uint16_t scans;

int init(void *args) {
    rt = *(plugin_runtime_args_t *)args;
    rt.log_info("native_counter ready (config: '%s')", rt.plugin_specific_config_file_path);
    return 0;
}

void cycle_end(void) { /* after each published scan, on the host's cycle thread */
    rt.image_lock();
    uint16_t q0 = *rt.int_output[0];
    rt.image_unlock();
    rt.journal_write_int(OPLC_JOURNAL_INT_INPUT, 0, ++scans);
    rt.journal_write_int(OPLC_JOURNAL_INT_INPUT, 1, q0);
}
