/*
 * httpget: an agent whose every tick depends on an HTTP response, so replay
 * must feed the recorded response back (igor itself cannot replay HTTP).
 * The clock only stamps the log line.
 *
 * Each tick GETs http://127.0.0.1:18475/quote and folds the status (u32 LE)
 * and the body bytes into a running FNV-1a 64 checksum. A negative return
 * (host not allowed, timeout, response too large, ...) counts as an error;
 * the agent carries on.
 *
 * State, 32 bytes LE: ticks u64, successes u64, errors u64, checksum u64.
 */
#include "../sdk/igor.h"

#define URL "http://127.0.0.1:18475/quote"
#define MAX_BODY 4096 /* = the manifest's max_response_bytes */
#define STATE_SIZE 32
#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

static u64 ticks, successes, errors, checksum;
static u8 state[STATE_SIZE];
static u8 resp[4 + MAX_BODY];

static u64 fnv1a(u64 h, const u8 *p, u32 n) {
    while (n--) {
        h ^= *p++;
        h *= FNV_PRIME;
    }
    return h;
}

IGOR_EXPORT_MALLOC()

IGOR_EXPORT(agent_init) void agent_init(void) {
    ticks = successes = errors = 0;
    checksum = FNV_OFFSET;
}

IGOR_EXPORT(agent_tick) i32 agent_tick(void) {
    char line[96];
    igor_fmt f;
    i32 status = igor_http_get(URL, resp, sizeof resp);

    ticks++;
    igor_fmt_init(&f, line, sizeof line);
    igor_fmt_str(&f, "[httpget] tick ");
    igor_fmt_u64(&f, ticks);
    if (status > 0) {
        u8 st[4];
        u32 n = igor_http_body_len(resp);
        if (n > MAX_BODY) n = MAX_BODY; /* never trust a length from outside */
        igor_put_u32(st, (u32)status);
        checksum = fnv1a(checksum, st, 4);
        checksum = fnv1a(checksum, igor_http_body(resp), n);
        successes++;
        igor_fmt_str(&f, " status ");
        igor_fmt_u64(&f, (u64)status);
        igor_fmt_str(&f, " bytes ");
        igor_fmt_u64(&f, n);
        igor_fmt_str(&f, " sum 0x");
        igor_fmt_hex(&f, checksum, 16);
    } else {
        errors++;
        igor_fmt_str(&f, " error ");
        igor_fmt_i64(&f, status);
    }
    igor_fmt_str(&f, " at ");
    igor_fmt_i64(&f, igor_clock_now() / 1000000);
    igor_fmt_str(&f, "ms");
    igor_fmt_log(&f);
    return 0;
}

IGOR_EXPORT(agent_checkpoint) i32 agent_checkpoint(void) {
    igor_put_u64(state, ticks);
    igor_put_u64(state + 8, successes);
    igor_put_u64(state + 16, errors);
    igor_put_u64(state + 24, checksum);
    return STATE_SIZE;
}

IGOR_EXPORT(agent_checkpoint_ptr) i32 agent_checkpoint_ptr(void) {
    return (i32)(igor_size_t)state;
}

IGOR_EXPORT(agent_resume) void agent_resume(const u8 *ptr, u32 len) {
    if (!ptr || len < STATE_SIZE) return;
    ticks = igor_get_u64(ptr);
    successes = igor_get_u64(ptr + 8);
    errors = igor_get_u64(ptr + 16);
    checksum = igor_get_u64(ptr + 24);
}
