/*
 * The bench's load client: one thread, 127.0.0.1 only, every echoed byte
 * checked against what was sent, every wait bounded (a stall of
 * STALL_MS or a run past its deadline is a failure, exit status 1).
 * Each mode prints one JSON object on stdout.
 *
 *   wsload bulk      PORT MIB              one tunnel, MIB MiB in 64 KiB frames
 *   wsload pingpong  PORT CONNS SECONDS    32-byte frames, one in flight per tunnel
 *   wsload handshake PORT PARALLEL SECONDS connect + upgrade + close
 *   wsload idle      PORT TUNNELS PIDS     open, measure RSS of PIDS (a,b,..), echo on each
 *   wsload get       PORT CONNS SECONDS    keep-alive GETs of the backend's 13-byte page
 */
#define _GNU_SOURCE
#include "wsproto.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#define STALL_MS 10000
#define MAX_SECONDS 60
#define MAX_SAMPLES (16u << 20)

static struct sockaddr_in target;
static uint64_t key_counter;

static void fail(const char *what)
{
    fprintf(stderr, "wsload: %s\n", what);
    exit(1);
}

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* p-th percentile in microseconds of n samples in ns (sorts them). */
static double pct_us(uint64_t *s, size_t n, double p)
{
    if (n == 0) return 0;
    qsort(s, n, sizeof *s, cmp_u64);
    size_t i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
    return (double)s[i] / 1000.0;
}

static int tcp_socket(int nonblocking)
{
    int fd = socket(AF_INET, SOCK_STREAM | (nonblocking ? SOCK_NONBLOCK : 0), 0), one = 1;
    if (fd < 0) die("socket");
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (!nonblocking) {
        struct timeval tv = {.tv_sec = STALL_MS / 1000};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    }
    return fd;
}

/* An upgrade request with a fresh key; its expected accept goes to accept[29]. */
static size_t upgrade_request(char *out, size_t cap, char accept[29])
{
    unsigned char raw[16];
    uint64_t s = ++key_counter * 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < 16; i++) raw[i] = (unsigned char)xorshift(&s);
    char key[25];
    base64(raw, 16, key);
    ws_accept(key, 24, accept);
    return (size_t)snprintf(out, cap,
                            "GET /ws/ HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\n"
                            "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                            "Sec-WebSocket-Version: 13\r\n\r\n",
                            key);
}

/* 1 if head (ending CRLFCRLF) is a 101 carrying `accept`. */
static int good_101(const char *head, size_t len, const char accept[29])
{
    size_t vlen;
    if (len < 12 || memcmp(head, "HTTP/1.1 101", 12) != 0) return 0;
    const char *v = header_value(head, len, "sec-websocket-accept:", &vlen);
    return v && vlen == 28 && memcmp(v, accept, 28) == 0;
}

/* A blocking connect and upgrade; the socket is returned blocking. */
static int open_tunnel(void)
{
    char req[512], head[2048], accept[29];
    int fd = tcp_socket(0);
    if (connect(fd, (struct sockaddr *)&target, sizeof target) < 0) die("connect");
    size_t len = upgrade_request(req, sizeof req, accept);
    if (write(fd, req, len) != (ssize_t)len) die("write upgrade");
    size_t got = 0;
    /* Nothing follows the 101 until we send, so reading past the head cannot happen. */
    while (got < sizeof head - 1) {
        ssize_t n = read(fd, head + got, sizeof head - 1 - got);
        if (n <= 0) die("read 101");
        got += (size_t)n;
        if (memmem(head, got, "\r\n\r\n", 4)) break;
    }
    char *end = memmem(head, got, "\r\n\r\n", 4);
    if (!end || (size_t)(end + 4 - head) != got || !good_101(head, got, accept))
        fail("bad 101 answer");
    return fd;
}

/* A masked binary frame header for `len` payload bytes; returns its size. */
static size_t frame_header(unsigned char *h, uint64_t len, const unsigned char mask[4])
{
    size_t n = 2;
    h[0] = 0x82;
    if (len < 126) h[1] = 0x80 | (unsigned char)len;
    else if (len < 65536) { h[1] = 0x80 | 126; h[2] = len >> 8; h[3] = len & 255; n = 4; }
    else {
        h[1] = 0x80 | 127;
        for (int i = 0; i < 8; i++) h[2 + i] = (unsigned char)(len >> (56 - 8 * i));
        n = 10;
    }
    memcpy(h + n, mask, 4);
    return n + 4;
}

/* A whole masked frame of `len` pseudo-random payload bytes from `seed`. */
static size_t make_frame(unsigned char *out, size_t len, uint64_t seed)
{
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    unsigned char mask[4];
    for (int i = 0; i < 4; i++) mask[i] = (unsigned char)xorshift(&s);
    size_t h = frame_header(out, len, mask);
    for (size_t i = 0; i < len; i++) out[h + i] = (unsigned char)xorshift(&s) ^ mask[i & 3];
    return h + len;
}

static void set_nonblocking(int fd)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* -- bulk -------------------------------------------------------------------------- */

#define BULK_FRAME 65536
#define BULK_KINDS 7 /* distinct frames in rotation, so a misplaced one is seen */
#define BULK_WINDOW (8u << 20)

static void bulk(uint64_t mib)
{
    static unsigned char frames[BULK_KINDS][BULK_FRAME + 14], rbuf[256 * 1024];
    size_t fsize = 0;
    for (int k = 0; k < BULK_KINDS; k++) fsize = make_frame(frames[k], BULK_FRAME, (uint64_t)k + 1000);
    uint64_t total = (mib << 20) / BULK_FRAME * fsize, sent = 0, recvd = 0;
    int fd = open_tunnel();
    set_nonblocking(fd);
    uint64_t start = now_ns(), deadline = start + MAX_SECONDS * 1000000000ull;
    while (recvd < total) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (sent < total && sent - recvd < BULK_WINDOW) p.events |= POLLOUT;
        int r = poll(&p, 1, STALL_MS);
        if (r <= 0 || now_ns() > deadline) fail("bulk stalled");
        if (p.revents & POLLOUT) {
            const unsigned char *f = frames[(sent / fsize) % BULK_KINDS];
            size_t off = sent % fsize;
            ssize_t n = write(fd, f + off, fsize - off);
            if (n < 0 && errno != EAGAIN) die("bulk write");
            if (n > 0) sent += (uint64_t)n;
        }
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n = read(fd, rbuf, sizeof rbuf);
            if (n == 0) fail("bulk: tunnel closed early");
            if (n < 0 && errno != EAGAIN) die("bulk read");
            for (ssize_t i = 0; i < n;) {
                const unsigned char *f = frames[(recvd / fsize) % BULK_KINDS];
                size_t off = recvd % fsize, chunk = fsize - off;
                if (chunk > (size_t)(n - i)) chunk = (size_t)(n - i);
                if (recvd + chunk > sent || memcmp(rbuf + i, f + off, chunk) != 0)
                    fail("bulk: echoed bytes differ from those sent");
                recvd += chunk;
                i += (ssize_t)chunk;
            }
        }
    }
    double secs = (double)(now_ns() - start) / 1e9;
    close(fd);
    printf("{\"bytes\": %llu, \"ops\": %llu, \"seconds\": %.3f, \"MB/s\": %.1f}\n", (unsigned long long)total,
           (unsigned long long)(total / fsize), secs,
           (double)total / secs / 1e6);
}

/* -- ping-pong --------------------------------------------------------------------- */

#define PP_PAYLOAD 32
#define PP_FRAME (PP_PAYLOAD + 6)

struct pp {
    int fd;
    uint64_t seq, sent_at;
    size_t got;
    unsigned char out[PP_FRAME], in[PP_FRAME];
};

static void pp_send(struct pp *c, uint32_t id)
{
    make_frame(c->out, PP_PAYLOAD, ((uint64_t)id << 32) | ++c->seq);
    c->got = 0;
    c->sent_at = now_ns();
    if (write(c->fd, c->out, PP_FRAME) != PP_FRAME) die("ping write");
}

static void pingpong(int nconns, double seconds)
{
    struct pp *cs = calloc((size_t)nconns, sizeof *cs);
    uint64_t *rtt = malloc(MAX_SAMPLES * sizeof *rtt);
    size_t n = 0, all = 0;
    int ep = epoll_create1(0);
    for (int i = 0; i < nconns; i++) {
        cs[i].fd = open_tunnel();
        set_nonblocking(cs[i].fd);
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
    }
    uint64_t start = now_ns(), warm = start + 300000000ull,
             end = warm + (uint64_t)(seconds * 1e9), measured_from = 0;
    for (int i = 0; i < nconns; i++) pp_send(&cs[i], (uint32_t)i);
    size_t done = 0;
    struct epoll_event evs[256];
    while (done < (size_t)nconns) {
        int k = epoll_wait(ep, evs, 256, STALL_MS);
        if (k <= 0) fail("ping-pong stalled");
        uint64_t t = now_ns();
        if (!measured_from && t >= warm) measured_from = t;
        for (int e = 0; e < k; e++) {
            struct pp *c = &cs[evs[e].data.u32];
            ssize_t r = read(c->fd, c->in + c->got, PP_FRAME - c->got);
            if (r == 0) fail("ping-pong: tunnel closed");
            if (r < 0) { if (errno == EAGAIN) continue; die("ping read"); }
            c->got += (size_t)r;
            if (c->got < PP_FRAME) continue;
            if (memcmp(c->in, c->out, PP_FRAME) != 0) fail("ping-pong: echo differs from frame sent");
            all++;
            if (measured_from && c->sent_at >= measured_from && n < MAX_SAMPLES) rtt[n++] = t - c->sent_at;
            if (t < end) pp_send(c, evs[e].data.u32);
            else { done++; epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL); }
        }
    }
    double secs = (double)(end - measured_from) / 1e9;
    for (int i = 0; i < nconns; i++) close(cs[i].fd);
    printf("{\"tunnels\": %d, \"msgs\": %zu, \"ops\": %zu, \"msgs/s\": %.0f, \"rtt_p50_us\": %.1f, "
           "\"rtt_p99_us\": %.1f}\n",
           nconns, n, all, (double)n / secs, pct_us(rtt, n, 50), pct_us(rtt, n, 99));
}

/* -- handshakes -------------------------------------------------------------------- */

struct hs {
    int fd;
    uint64_t started;
    size_t got, req_len;
    char accept[29], req[512], head[2048];
};

static void hs_start(struct hs *h, int ep, uint32_t id)
{
    h->fd = tcp_socket(1);
    h->got = 0;
    h->req_len = upgrade_request(h->req, sizeof h->req, h->accept);
    h->started = now_ns();
    if (connect(h->fd, (struct sockaddr *)&target, sizeof target) < 0 && errno != EINPROGRESS)
        die("connect");
    struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = id};
    epoll_ctl(ep, EPOLL_CTL_ADD, h->fd, &ev);
}

static void handshakes(int parallel, double seconds)
{
    struct hs *hs = calloc((size_t)parallel, sizeof *hs);
    uint64_t *t101 = malloc(MAX_SAMPLES * sizeof *t101);
    size_t n = 0;
    int ep = epoll_create1(0), active = parallel;
    uint64_t start = now_ns(), end = start + (uint64_t)(seconds * 1e9);
    for (int i = 0; i < parallel; i++) hs_start(&hs[i], ep, (uint32_t)i);
    struct epoll_event evs[64];
    while (active > 0) {
        int k = epoll_wait(ep, evs, 64, STALL_MS);
        if (k <= 0) fail("handshakes stalled");
        for (int e = 0; e < k; e++) {
            struct hs *h = &hs[evs[e].data.u32];
            if (evs[e].events & EPOLLOUT) {
                int err = 0;
                socklen_t l = sizeof err;
                getsockopt(h->fd, SOL_SOCKET, SO_ERROR, &err, &l);
                if (err) { errno = err; die("handshake connect"); }
                if (write(h->fd, h->req, h->req_len) != (ssize_t)h->req_len) die("handshake write");
                struct epoll_event ev = {.events = EPOLLIN, .data.u32 = evs[e].data.u32};
                epoll_ctl(ep, EPOLL_CTL_MOD, h->fd, &ev);
                continue;
            }
            ssize_t r = read(h->fd, h->head + h->got, sizeof h->head - 1 - h->got);
            if (r <= 0) { if (r < 0 && errno == EAGAIN) continue; fail("handshake: closed before 101"); }
            h->got += (size_t)r;
            char *hend = memmem(h->head, h->got, "\r\n\r\n", 4);
            if (!hend) {
                if (h->got >= sizeof h->head - 1) fail("handshake: head too large");
                continue;
            }
            uint64_t t = now_ns();
            if ((size_t)(hend + 4 - h->head) != h->got || !good_101(h->head, h->got, h->accept))
                fail("handshake: bad 101 answer");
            if (n < MAX_SAMPLES) t101[n++] = t - h->started;
            close(h->fd); /* also removes it from the epoll set */
            if (t < end) hs_start(h, ep, evs[e].data.u32);
            else active--;
        }
    }
    double secs = (double)(now_ns() - start) / 1e9;
    printf("{\"handshakes\": %zu, \"ops\": %zu, \"per_s\": %.0f, \"t101_p50_us\": %.1f, \"t101_p99_us\": %.1f}\n", n, n,
           (double)n / secs, pct_us(t101, n, 50), pct_us(t101, n, 99));
}

/* -- idle tunnels ------------------------------------------------------------------ */

static long rss_kb(const char *pids)
{
    long total = 0;
    char copy[256], path[64], line[256];
    snprintf(copy, sizeof copy, "%s", pids);
    for (char *p = strtok(copy, ","); p; p = strtok(NULL, ",")) {
        snprintf(path, sizeof path, "/proc/%s/status", p);
        FILE *f = fopen(path, "r");
        if (!f) die(path);
        while (fgets(line, sizeof line, f))
            if (strncmp(line, "VmRSS:", 6) == 0) total += atol(line + 6);
        fclose(f);
    }
    return total;
}

static void echo_each(int *fds, int count)
{
    static unsigned char out[PP_FRAME], in[PP_FRAME];
    for (int i = 0; i < count; i++) {
        make_frame(out, PP_PAYLOAD, (uint64_t)i);
        if (write(fds[i], out, PP_FRAME) != PP_FRAME) die("idle write");
    }
    for (int i = 0; i < count; i++) {
        make_frame(out, PP_PAYLOAD, (uint64_t)i);
        size_t got = 0;
        while (got < PP_FRAME) {
            ssize_t r = read(fds[i], in + got, PP_FRAME - got);
            if (r <= 0) die("idle: echo");
            got += (size_t)r;
        }
        if (memcmp(in, out, PP_FRAME) != 0) fail("idle: echo differs from frame sent");
    }
}

static void idle(int count, const char *pids)
{
    int *fds = malloc((size_t)count * sizeof *fds);
    long before = rss_kb(pids);
    uint64_t start = now_ns();
    for (int i = 0; i < count; i++) {
        fds[i] = open_tunnel();
        if (now_ns() - start > MAX_SECONDS * 1000000000ull) fail("idle: opening tunnels took too long");
    }
    struct timespec settle = {.tv_nsec = 200000000};
    nanosleep(&settle, NULL); /* let the proxy finish its side of the last ones */
    long opened = rss_kb(pids);
    echo_each(fds, count);
    long echoed = rss_kb(pids);
    for (int i = 0; i < count; i++) close(fds[i]);
    printf("{\"tunnels\": %d, \"rss_before_kb\": %ld, \"rss_idle_kb\": %ld, \"rss_after_echo_kb\": %ld, "
           "\"bytes_per_tunnel\": %.0f, \"bytes_per_tunnel_after_echo\": %.0f, \"all_echoed\": true}\n",
           count, before, opened, echoed, (double)(opened - before) * 1024 / count,
           (double)(echoed - before) * 1024 / count);
}

/* -- plain GET (when wrk is not installed) ----------------------------------------- */

static const char GET_REQ[] = "GET / HTTP/1.1\r\nHost: bench\r\n\r\n";
static const char GET_BODY[] = "hello, world\n";

struct gc {
    int fd;
    uint64_t sent_at;
    size_t got;
    char in[1024];
};

static void get_send(struct gc *c, int ep, uint32_t id, int fresh)
{
    if (fresh) {
        c->fd = tcp_socket(0);
        if (connect(c->fd, (struct sockaddr *)&target, sizeof target) < 0) die("connect");
        set_nonblocking(c->fd);
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = id};
        epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
    }
    c->got = 0;
    c->sent_at = now_ns();
    if (write(c->fd, GET_REQ, sizeof GET_REQ - 1) != sizeof GET_REQ - 1) die("get write");
}

static void get_load(int nconns, double seconds)
{
    struct gc *cs = calloc((size_t)nconns, sizeof *cs);
    uint64_t *lat = malloc(MAX_SAMPLES * sizeof *lat);
    size_t n = 0;
    int ep = epoll_create1(0), active = nconns;
    uint64_t start = now_ns(), end = start + (uint64_t)(seconds * 1e9);
    for (int i = 0; i < nconns; i++) get_send(&cs[i], ep, (uint32_t)i, 1);
    struct epoll_event evs[256];
    while (active > 0) {
        int k = epoll_wait(ep, evs, 256, STALL_MS);
        if (k <= 0) fail("GET stalled");
        for (int e = 0; e < k; e++) {
            struct gc *c = &cs[evs[e].data.u32];
            ssize_t r = read(c->fd, c->in + c->got, sizeof c->in - 1 - c->got);
            if (r <= 0) { if (r < 0 && errno == EAGAIN) continue; fail("GET: connection closed early"); }
            c->got += (size_t)r;
            char *hend = memmem(c->in, c->got, "\r\n\r\n", 4);
            size_t vlen, body = sizeof GET_BODY - 1;
            if (!hend || c->got < (size_t)(hend + 4 - c->in) + body) continue;
            size_t hlen = (size_t)(hend + 4 - c->in);
            if (memcmp(c->in, "HTTP/1.1 200", 12) != 0 || c->got != hlen + body ||
                memcmp(hend + 4, GET_BODY, body) != 0)
                fail("GET: unexpected answer");
            uint64_t t = now_ns();
            if (n < MAX_SAMPLES) lat[n++] = t - c->sent_at;
            const char *conn = header_value(c->in, hlen, "connection:", &vlen);
            int closing = conn && memmem(conn, vlen, "close", 5);
            if (closing) close(c->fd);
            if (t < end) get_send(c, ep, evs[e].data.u32, closing);
            else { if (!closing) close(c->fd); active--; }
        }
    }
    double secs = (double)(now_ns() - start) / 1e9;
    printf("{\"requests\": %zu, \"ops\": %zu, \"req/s\": %.0f, \"p50_us\": %.1f, \"p99_us\": %.1f}\n", n, n,
           (double)n / secs, pct_us(lat, n, 50), pct_us(lat, n, 99));
}

int main(int argc, char **argv)
{
    if (argc != 5 && !(argc == 4 && strcmp(argv[1], "bulk") == 0)) {
        fprintf(stderr, "usage: see the comment at the top of wsload.c\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    alarm(MAX_SECONDS + 30); /* a last bound on the whole run */
    target.sin_family = AF_INET;
    target.sin_port = htons((uint16_t)atoi(argv[2]));
    target.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const char *mode = argv[1];
    if (strcmp(mode, "bulk") == 0) bulk((uint64_t)atoll(argv[3]));
    else if (strcmp(mode, "pingpong") == 0) pingpong(atoi(argv[3]), atof(argv[4]));
    else if (strcmp(mode, "handshake") == 0) handshakes(atoi(argv[3]), atof(argv[4]));
    else if (strcmp(mode, "idle") == 0) idle(atoi(argv[3]), argv[4]);
    else if (strcmp(mode, "get") == 0) get_load(atoi(argv[3]), atof(argv[4]));
    else { fprintf(stderr, "wsload: unknown mode %s\n", mode); return 2; }
    return 0;
}
