/*
 * heartbeat: igor's survivor example in C. Shows clock and rand records
 * feeding state that replay must reproduce, and log formatting without libc.
 *
 * State, 28 bytes LE: tick_count u64, birth_ns i64 (clock at the first tick),
 * last_ns i64 (clock at the latest tick), luck u32 (XOR of 4 random bytes per
 * tick). Logs "[heartbeat] tick N | age Ss | luck 0x........" every tick and
 * a milestone line every 10 ticks.
 */
#include "../sdk/igor.h"

#define STATE_SIZE 28

static u64 tick_count;
static i64 birth_ns;
static i64 last_ns;
static u32 luck;
static u8 state[STATE_SIZE];

IGOR_EXPORT_MALLOC()

IGOR_EXPORT(agent_init) void agent_init(void) {
    tick_count = 0;
    birth_ns = 0;
    last_ns = 0;
    luck = 0;
}

IGOR_EXPORT(agent_tick) i32 agent_tick(void) {
    i64 now = igor_clock_now();
    u8 r[4];
    char line[128];
    igor_fmt f;

    if (tick_count == 0) birth_ns = now;
    tick_count++;
    last_ns = now;
    if (igor_rand_bytes(r, sizeof r) == IGOR_OK) luck ^= igor_get_u32(r);

    i64 age_s = (now - birth_ns) / 1000000000;
    igor_fmt_init(&f, line, sizeof line);
    igor_fmt_str(&f, "[heartbeat] tick ");
    igor_fmt_u64(&f, tick_count);
    igor_fmt_str(&f, " | age ");
    igor_fmt_i64(&f, age_s);
    igor_fmt_str(&f, "s | luck 0x");
    igor_fmt_hex(&f, luck, 8);
    igor_fmt_log(&f);

    if (tick_count % 10 == 0) {
        igor_fmt_init(&f, line, sizeof line);
        igor_fmt_str(&f, "[heartbeat] MILESTONE #");
        igor_fmt_u64(&f, tick_count / 10);
        igor_fmt_str(&f, ": survived ");
        igor_fmt_u64(&f, tick_count);
        igor_fmt_str(&f, " ticks across ");
        igor_fmt_i64(&f, age_s);
        igor_fmt_str(&f, "s");
        igor_fmt_log(&f);
    }
    return 0;
}

IGOR_EXPORT(agent_checkpoint) i32 agent_checkpoint(void) {
    igor_put_u64(state, tick_count);
    igor_put_u64(state + 8, (u64)birth_ns);
    igor_put_u64(state + 16, (u64)last_ns);
    igor_put_u32(state + 24, luck);
    return STATE_SIZE;
}

IGOR_EXPORT(agent_checkpoint_ptr) i32 agent_checkpoint_ptr(void) {
    return (i32)(igor_size_t)state;
}

IGOR_EXPORT(agent_resume) void agent_resume(const u8 *ptr, u32 len) {
    if (!ptr || len < STATE_SIZE) return; /* empty or foreign state: start fresh */
    tick_count = igor_get_u64(ptr);
    birth_ns = (i64)igor_get_u64(ptr + 8);
    last_ns = (i64)igor_get_u64(ptr + 16);
    luck = igor_get_u32(ptr + 24);
}
