/*
 * The bench's upstream: one thread, epoll, 127.0.0.1 only.
 *
 * A request with "Upgrade: websocket" gets a 101 with the correct
 * Sec-WebSocket-Accept, after which every byte is echoed back unchanged
 * (frames included: the load client checks what comes back against what it
 * sent).  Any other request gets a 13-byte 200; the connection is kept
 * unless the request asked for "Connection: close" or is HTTP/1.0.
 * A full output buffer stops reading that connection (backpressure), so
 * memory stays at one buffer per connection.
 *
 * Usage: echo_backend PORT   (0 picks one; the port is printed on stdout)
 */
#define _GNU_SOURCE
#include "wsproto.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#define BUF (64 * 1024)
#define MAXFD 65536

enum { HEAD, ECHO };

struct conn {
    int state;
    int close_after; /* close once `out` is flushed */
    size_t in_len;   /* HEAD: bytes of head read so far; ECHO: bytes in buf */
    size_t out_off, out_len;
    char *buf;
};

static struct conn *conns[MAXFD];
static int ep;

static const char OK[] =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nhello, world\n";
static const char OK_CLOSE[] =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nConnection: close\r\n\r\n"
    "hello, world\n";

static void watch(int fd, uint32_t events, int op)
{
    struct epoll_event ev = {.events = events, .data.fd = fd};
    if (epoll_ctl(ep, op, fd, &ev) < 0)
        die("epoll_ctl");
}

static void drop(int fd)
{
    struct conn *c = conns[fd];
    conns[fd] = NULL;
    free(c->buf);
    free(c);
    close(fd);
}

/* Write what is pending; 1 when all is out, 0 when the socket is full, -1 on error. */
static int flush(int fd, struct conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = write(fd, c->buf + c->out_off, c->out_len - c->out_off);
        if (n < 0) {
            if (errno == EAGAIN) return 0;
            return -1;
        }
        c->out_off += (size_t)n;
    }
    c->out_off = c->out_len = 0;
    return 1;
}

/*
 * Answer every complete head in buf[0..in_len).  Output is assembled at
 * the end of buf (after the unread input) so one buffer serves both.
 */
static int answer_heads(int fd, struct conn *c)
{
    char reply[512];
    while (c->state == HEAD) {
        char *end = memmem(c->buf, c->in_len, "\r\n\r\n", 4);
        if (!end) {
            if (c->in_len >= BUF / 2) return -1; /* head too large */
            return 0;
        }
        size_t hlen = (size_t)(end - c->buf) + 4, vlen, rlen;
        const char *upgrade = header_value(c->buf, hlen, "upgrade:", &vlen);
        const char *key;
        if (upgrade && vlen == 9 && strncasecmp(upgrade, "websocket", 9) == 0 &&
            (key = header_value(c->buf, hlen, "sec-websocket-key:", &vlen))) {
            char accept[29];
            ws_accept(key, vlen, accept);
            rlen = (size_t)snprintf(reply, sizeof reply,
                                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                    "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                                    accept);
            c->state = ECHO;
        } else {
            const char *conn = header_value(c->buf, hlen, "connection:", &vlen);
            int http10 = memmem(c->buf, hlen, "HTTP/1.0\r\n", 10) != NULL;
            c->close_after = http10 || (conn && memmem(conn, vlen, "close", 5));
            rlen = c->close_after ? sizeof OK_CLOSE - 1 : sizeof OK - 1;
            memcpy(reply, c->close_after ? OK_CLOSE : OK, rlen);
        }
        ssize_t n = write(fd, reply, rlen);
        if (n != (ssize_t)rlen) return -1; /* a fresh socket takes 200 bytes */
        memmove(c->buf, c->buf + hlen, c->in_len - hlen);
        c->in_len -= hlen;
        if (c->close_after) return -1;
    }
    /* Bytes after the 101 are the first to echo. */
    c->out_off = 0;
    c->out_len = c->in_len;
    c->in_len = 0;
    return 1;
}

static void on_readable(int fd, struct conn *c)
{
    if (c->state == HEAD) {
        ssize_t n = read(fd, c->buf + c->in_len, BUF / 2 - c->in_len);
        if (n <= 0) {
            if (n < 0 && errno == EAGAIN) return;
            drop(fd);
            return;
        }
        c->in_len += (size_t)n;
        if (answer_heads(fd, c) < 0) {
            drop(fd);
            return;
        }
        if (c->state == HEAD) return;
    } else {
        ssize_t n = read(fd, c->buf, BUF);
        if (n <= 0) {
            if (n < 0 && errno == EAGAIN) return;
            drop(fd);
            return;
        }
        c->out_off = 0;
        c->out_len = (size_t)n;
    }
    int r = flush(fd, c);
    if (r < 0) drop(fd);
    else if (r == 0) watch(fd, EPOLLOUT, EPOLL_CTL_MOD);
}

static void on_writable(int fd, struct conn *c)
{
    int r = flush(fd, c);
    if (r < 0) drop(fd);
    else if (r == 1) watch(fd, EPOLLIN | EPOLLRDHUP, EPOLL_CTL_MOD);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(ls, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(ls, 4096) < 0)
        die("bind/listen");
    socklen_t alen = sizeof addr;
    getsockname(ls, (struct sockaddr *)&addr, &alen);
    printf("%d\n", ntohs(addr.sin_port));
    fflush(stdout);

    ep = epoll_create1(0);
    watch(ls, EPOLLIN, EPOLL_CTL_ADD);
    struct epoll_event events[256];
    for (;;) {
        int n = epoll_wait(ep, events, 256, -1);
        if (n < 0 && errno != EINTR) die("epoll_wait");
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == ls) {
                for (int k = 0; k < 64; k++) {
                    int cfd = accept4(ls, NULL, NULL, SOCK_NONBLOCK);
                    if (cfd < 0) break;
                    if (cfd >= MAXFD) { close(cfd); continue; }
                    setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct conn *c = calloc(1, sizeof *c);
                    c->buf = malloc(BUF);
                    conns[cfd] = c;
                    watch(cfd, EPOLLIN | EPOLLRDHUP, EPOLL_CTL_ADD);
                }
                continue;
            }
            struct conn *c = conns[fd];
            if (!c) continue;
            if (events[i].events & EPOLLOUT) on_writable(fd, c);
            else on_readable(fd, c);
        }
    }
}
