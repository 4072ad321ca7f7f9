/*
 * oplc_strucpp_tasks.hpp: the scan: every due task in IEC priority order on the calling thread,
 * the program clock, and a C++ exception turned into a guarded fault.
 * Part of strucpp_adapter.cpp, which includes it once, after the parts it uses (types,
 * state, located, force, retain, tables, tasks); not a translation unit of its own.
 */
#pragma once

namespace {

void run_tasks(uint64_t tick)
{
    for (uint32_t t = 0; t < task_total; t++) {
        strucpp::TaskInstance *task = tasks[t].task;
        if (tick % tasks[t].divisor != 0 || task->programs == nullptr) {
            continue;
        }
        for (size_t p = 0; p < task->program_count; p++) {
            strucpp::ProgramBase *program = task->programs[p];
            if (program != nullptr) {
                program->sync_in();
                program->run();
                program->sync_out();
            }
        }
    }
}

/* An IEC run-time error (an array index out of bounds, a NULL reference) is a C++ exception
 * in STruC++'s code; it must not unwind into rt-core, which is not C++. Once the exception is
 * caught and gone, it becomes SIGILL on this thread, which rt-core's guard turns into a
 * program fault (PLC in ERROR, outputs at zero) like any other crash of the program. */
void adapter_run_tick(uint64_t tick)
{
    bool failed = false;

    copy_in();
    if (clock_unset) {
        /* An online change continues the tick count of the program it replaces: the
         * program time continues with it (tick 0 after a cold start, so 0 then). */
        clock_ns = static_cast<int64_t>(tick * period_ns);
        clock_unset = false;
    }
    strucpp::__CURRENT_TIME_NS = clock_ns;
    try {
        run_tasks(tick);
    } catch (...) {
        failed = true;
    }
    if (failed) {
        std::raise(SIGILL);
        std::abort(); /* only if nothing guards the call */
    }
    clock_ns += static_cast<int64_t>(period_ns);
    copy_out();
    for (uint32_t k = 0; k < shadow_total; k++) {
        refresh_shadow(vars[shadow_vars[k]]);
    }
}

} // namespace
