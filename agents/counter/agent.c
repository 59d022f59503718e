/*
 * counter: the reference agent. State is one u64 (8 bytes LE). Each tick
 * touches clock, rand and log so that replay has one record of each kind to
 * feed back, yet the state depends only on the tick count: after 3 ticks, a
 * checkpoint and a resume in a fresh instance, the next tick yields 4.
 *
 * counter-plus2 includes this file with COUNTER_STEP 2 to get a module with a
 * different digest and otherwise identical behaviour.
 */
#include "../sdk/igor.h"

#ifndef COUNTER_STEP
#define COUNTER_STEP 1
#endif

static u64 counter;
static u8 state[8];

IGOR_EXPORT_MALLOC()

IGOR_EXPORT(agent_init) void agent_init(void) { counter = 0; }

IGOR_EXPORT(agent_tick) i32 agent_tick(void) {
    u8 luck[4];
    counter += COUNTER_STEP;
    (void)igor_clock_now();
    (void)igor_rand_bytes(luck, sizeof luck);
    igor_log_str("tick");
    return 0;
}

IGOR_EXPORT(agent_checkpoint) i32 agent_checkpoint(void) {
    igor_put_u64(state, counter);
    return (i32)sizeof state;
}

IGOR_EXPORT(agent_checkpoint_ptr) i32 agent_checkpoint_ptr(void) {
    return (i32)(igor_size_t)state;
}

IGOR_EXPORT(agent_resume) void agent_resume(const u8 *ptr, u32 len) {
    /* (0,0) means "no state": keep what agent_init set. */
    if (ptr && len >= 8) counter = igor_get_u64(ptr);
}
