/*
 * oplc_strucpp_tasks.hpp: the scan: every due task in IEC priority order on the calling thread,
 * the program clock, and a C++ exception turned into a guarded fault; and the task functions
 * rt-core uses to run each task on a thread of its own.
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

/* ---- tasks on threads of their own (rt-core's dispatcher; the task functions of the ABI) ----
 *
 * rt-core releases each task on its own thread. Each task copies in and out only the located
 * variables of its own programs (a program's located range, which a STRUCPP_THREADED build
 * reports), and rt-core calls those copies while the task is idle, so a task's variables are
 * only ever touched by one thread at a time. A located variable no task's program claims (a
 * located configuration global) is copied with every task. The program clock is per thread
 * in a STRUCPP_THREADED build: each task sets its own before it runs. */

int16_t loc_owner[LOCATED_SLOTS];

void find_owners()
{
    for (uint32_t k = 0; k < LOCATED_SLOTS; k++) {
        loc_owner[k] = -1;
    }
    for (uint32_t t = 0; t < task_total && t < INT16_MAX; t++) {
        strucpp::TaskInstance *task = tasks[t].task;
        for (size_t p = 0; task->programs != nullptr && p < task->program_count; p++) {
            strucpp::ProgramBase *program = task->programs[p];
            uint32_t off = 0;
            uint32_t cnt = 0;
            if (program == nullptr) {
                continue;
            }
            program->located_range(&off, &cnt);
            for (uint32_t k = off; k < off + cnt && k < LOCATED_COUNT; k++) {
                if (loc_owner[k] < 0) {
                    loc_owner[k] = static_cast<int16_t>(t);
                }
            }
        }
    }
}

bool owned_by(uint32_t k, uint32_t task)
{
    return loc_owner[k] < 0 || static_cast<uint32_t>(loc_owner[k]) == task;
}

uint32_t adapter_task_count()
{
    return tables_ok ? task_total : 0;
}

int32_t adapter_task_info(uint32_t i, oplc_task_info_t *out)
{
    if (out == nullptr || i >= task_total) {
        return -1;
    }
    const strucpp::TaskInstance *task = tasks[i].task;
    std::memset(out, 0, sizeof(*out));
    if (task->name != nullptr) {
        std::strncpy(out->name, task->name, OPLC_TASK_NAME_BYTES - 1);
    }
    out->interval_ns = tasks[i].divisor * period_ns;
    out->priority = task->priority;
    return 0;
}

/* Touches the thread's program clock: a thread-local of a dlopened library is allocated on
 * its first access, which must not be a task's first scan. */
int32_t adapter_task_thread_init()
{
    strucpp::__CURRENT_TIME_NS = 0;
    return 0;
}

int32_t adapter_task_inputs(uint32_t i)
{
    if (i >= task_total) {
        return -1;
    }
    for (uint32_t k = 0; k < LOCATED_COUNT; k++) {
        const Loc &l = locs[k];
        if (l.slot == nullptr || !owned_by(k, i)) {
            continue;
        }
        uint64_t v = oplc_slot_get(l.slot, l.width);
        if (l.area == OPLC_AREA_INPUT || v != l.published) {
            loc_store(l, v);
        }
    }
    return 0;
}

void adapter_task_run(uint32_t i, uint64_t tick)
{
    bool failed = false;

    if (i >= task_total) {
        return;
    }
    strucpp::__CURRENT_TIME_NS = static_cast<int64_t>(tick * period_ns);
    strucpp::TaskInstance *task = tasks[i].task;
    try {
        for (size_t p = 0; task->programs != nullptr && p < task->program_count; p++) {
            strucpp::ProgramBase *program = task->programs[p];
            if (program != nullptr) {
                program->sync_in();
                program->run();
                program->sync_out();
            }
        }
    } catch (...) {
        failed = true;
    }
    if (failed) {
        std::raise(SIGILL);
        std::abort();
    }
}

int32_t adapter_task_outputs(uint32_t i)
{
    if (i >= task_total) {
        return -1;
    }
    for (uint32_t k = 0; k < LOCATED_COUNT; k++) {
        Loc &l = locs[k];
        if (l.slot != nullptr && l.area != OPLC_AREA_INPUT && owned_by(k, i)) {
            loc_copy_out(l);
        }
    }
    for (uint32_t k = 0; k < shadow_total; k++) {
        refresh_shadow(vars[shadow_vars[k]]);
    }
    return 0;
}

} // namespace
