/*
 * hostile-undeclared: its manifest declares only "log", but it imports and
 * calls clock_now and http_request. Capabilities are granted at link time,
 * so the host must refuse to instantiate it (naming the missing imports)
 * rather than link stubs that fail later at call time.
 *
 * State, 8 bytes LE: ticks u64.
 */
#include "../sdk/igor.h"

static u64 ticks;
static u8 state[8];
static u8 resp[4 + 256];

IGOR_EXPORT_MALLOC()

IGOR_EXPORT(agent_init) void agent_init(void) { ticks = 0; }

IGOR_EXPORT(agent_tick) i32 agent_tick(void) {
    char line[96];
    igor_fmt f;
    i64 now = igor_clock_now();              /* needs "clock": undeclared */
    i32 status = igor_http_get("http://127.0.0.1:18475/quote", resp,
                               sizeof resp); /* needs "http": undeclared */

    ticks++;
    igor_fmt_init(&f, line, sizeof line);
    igor_fmt_str(&f, "[hostile-undeclared] status ");
    igor_fmt_i64(&f, status);
    igor_fmt_str(&f, " at ");
    igor_fmt_i64(&f, now);
    igor_fmt_log(&f);
    return 0;
}

IGOR_EXPORT(agent_checkpoint) i32 agent_checkpoint(void) {
    igor_put_u64(state, ticks);
    return (i32)sizeof state;
}

IGOR_EXPORT(agent_checkpoint_ptr) i32 agent_checkpoint_ptr(void) {
    return (i32)(igor_size_t)state;
}

IGOR_EXPORT(agent_resume) void agent_resume(const u8 *ptr, u32 len) {
    if (ptr && len >= 8) ticks = igor_get_u64(ptr);
}
