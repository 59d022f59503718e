/*
 * hostile-loop: agent_tick never returns. The host must cut it at the tick
 * deadline (epoch interruption / fuel), count the tick as failed and keep
 * the node healthy. The instance is unusable afterwards; the last good
 * checkpoint (taken before the tick) is the one that counts.
 *
 * State, 8 bytes LE: ticks started u64.
 */
#include "../sdk/igor.h"

static u64 started;
static u8 state[8];

IGOR_EXPORT_MALLOC()

IGOR_EXPORT(agent_init) void agent_init(void) { started = 0; }

IGOR_EXPORT(agent_tick) i32 agent_tick(void) {
    /* volatile so the loop really runs (burning fuel) instead of being
     * folded into a bare `loop br` the optimiser could reason about. */
    volatile u32 spin = 0;
    started++;
    igor_log_str("[hostile-loop] spinning forever");
    for (;;) spin++;
}

IGOR_EXPORT(agent_checkpoint) i32 agent_checkpoint(void) {
    igor_put_u64(state, started);
    return (i32)sizeof state;
}

IGOR_EXPORT(agent_checkpoint_ptr) i32 agent_checkpoint_ptr(void) {
    return (i32)(igor_size_t)state;
}

IGOR_EXPORT(agent_resume) void agent_resume(const u8 *ptr, u32 len) {
    if (ptr && len >= 8) started = igor_get_u64(ptr);
}
