/*
 * nondeterministic: a deliberately WRONG agent, for testing that replay
 * verification catches divergence.
 *
 * Why it is wrong: the next state must be a function of the checkpointed
 * state and the recorded host-call results only. This agent also reads
 * `hidden`, a global that lives in the instance's memory but is not part of
 * its checkpoint. In the live instance hidden counts every tick since
 * instantiation; in a fresh instance resumed from a checkpoint (a replay, or
 * a migration target) it starts again from 0. So live it looks fine (value
 * goes 1, 3, 6, 10, ...), but replaying tick N >= 2 from the checkpoint taken
 * before it adds 1 instead of N and the post-state hash differs. (Replaying
 * tick 1 from the empty state happens to agree: hidden is 1 either way.)
 *
 * State, 8 bytes LE: value u64.
 */
#include "../sdk/igor.h"

static u64 value;
static u64 hidden; /* BUG, on purpose: survives ticks, not checkpoints */
static u8 state[8];

IGOR_EXPORT_MALLOC()

IGOR_EXPORT(agent_init) void agent_init(void) { value = 0; }

IGOR_EXPORT(agent_tick) i32 agent_tick(void) {
    char line[96];
    igor_fmt f;

    hidden++;
    value += hidden;

    igor_fmt_init(&f, line, sizeof line);
    igor_fmt_str(&f, "[nondeterministic] value ");
    igor_fmt_u64(&f, value);
    igor_fmt_str(&f, " at ");
    igor_fmt_i64(&f, igor_clock_now() / 1000000);
    igor_fmt_str(&f, "ms");
    igor_fmt_log(&f);
    return 0;
}

IGOR_EXPORT(agent_checkpoint) i32 agent_checkpoint(void) {
    igor_put_u64(state, value); /* hidden is (wrongly) left out */
    return (i32)sizeof state;
}

IGOR_EXPORT(agent_checkpoint_ptr) i32 agent_checkpoint_ptr(void) {
    return (i32)(igor_size_t)state;
}

IGOR_EXPORT(agent_resume) void agent_resume(const u8 *ptr, u32 len) {
    if (ptr && len >= 8) value = igor_get_u64(ptr);
}
