/*
 * hostile-bigckpt: ticks normally but lies about its checkpoint: it claims
 * 0x7FFFFFF0 bytes (almost 2 GiB, far beyond its memory) starting at
 * address 16. The host must bound-check size and pointer against the
 * memory (and its own checkpoint size limit) and reject the checkpoint,
 * instead of trying to allocate or copy that much.
 */
#include "../sdk/igor.h"

static u64 ticks;

IGOR_EXPORT_MALLOC()

IGOR_EXPORT(agent_init) void agent_init(void) { ticks = 0; }

IGOR_EXPORT(agent_tick) i32 agent_tick(void) {
    ticks++;
    igor_log_str("[hostile-bigckpt] tick");
    return 0;
}

IGOR_EXPORT(agent_checkpoint) i32 agent_checkpoint(void) { return 0x7FFFFFF0; }

IGOR_EXPORT(agent_checkpoint_ptr) i32 agent_checkpoint_ptr(void) { return 16; }

IGOR_EXPORT(agent_resume) void agent_resume(const u8 *ptr, u32 len) {
    if (ptr && len >= 8) ticks = igor_get_u64(ptr);
}
