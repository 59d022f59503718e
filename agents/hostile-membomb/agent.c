/*
 * hostile-membomb: agent_tick grows linear memory one 64 KiB page at a time
 * towards 1 GiB, touching every new page so the memory is really committed.
 * Its manifest asks for 16 MiB; the host's memory limiter must refuse the
 * growth (memory.grow returns -1), and then the agent writes one byte past
 * the end of its memory on purpose, so the tick ends in an out-of-bounds
 * trap rather than quietly carrying on. If a host has no limiter at all, the
 * same write happens at 1 GiB, so the tick traps either way.
 *
 * State, 8 bytes LE: ticks started u64.
 */
#include "../sdk/igor.h"

#define PAGE 65536u
#define TARGET_PAGES 16384u /* 1 GiB */

static u64 started;
static u8 state[8];

IGOR_EXPORT_MALLOC()

IGOR_EXPORT(agent_init) void agent_init(void) { started = 0; }

IGOR_EXPORT(agent_tick) i32 agent_tick(void) {
    char line[96];
    igor_fmt f;
    u32 pages;

    started++;
    igor_log_str("[hostile-membomb] growing towards 1 GiB");
    while ((pages = (u32)__builtin_wasm_memory_size(0)) < TARGET_PAGES) {
        if (__builtin_wasm_memory_grow(0, 1) == (igor_size_t)-1) break;
        *(volatile u8 *)(igor_size_t)(pages * PAGE) = 0xAB; /* touch the new page */
    }

    igor_fmt_init(&f, line, sizeof line);
    igor_fmt_str(&f, "[hostile-membomb] stopped at ");
    igor_fmt_u64(&f, pages);
    igor_fmt_str(&f, " pages, writing past the end");
    igor_fmt_log(&f);

    /* Deliberate out-of-bounds store: traps. */
    *(volatile u8 *)(igor_size_t)(pages * PAGE) = 0xAB;
    return 0; /* not reached */
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
