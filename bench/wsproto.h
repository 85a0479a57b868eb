/*
 * What the bench's backend and load client share: SHA-1 and base64 for
 * Sec-WebSocket-Accept (RFC 6455 section 4.2.2), a monotonic clock, and
 * bounded socket helpers.  Header-only so each tool is one gcc call.
 */
#ifndef WSPROTO_H
#define WSPROTO_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

static inline uint32_t rol32(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

static void sha1_block(uint32_t h[5], const unsigned char *p)
{
    uint32_t w[80];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 80; i++)
        w[i] = rol32(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; i++) {
        uint32_t f, k;
        if (i < 20) { f = (b & c) | (~b & d); k = 0x5A827999; }
        else if (i < 40) { f = b ^ c ^ d; k = 0x6ED9EBA1; }
        else if (i < 60) { f = (b & c) | (b & d) | (c & d); k = 0x8F1BBCDC; }
        else { f = b ^ c ^ d; k = 0xCA62C1D6; }
        uint32_t t = rol32(a, 5) + f + e + k + w[i];
        e = d; d = c; c = rol32(b, 30); b = a; a = t;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e;
}

/* SHA-1 of a short message (the key plus the GUID is 60 bytes). */
static void sha1(const unsigned char *msg, size_t len, unsigned char out[20])
{
    uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    unsigned char block[64];
    size_t off = 0;
    for (; off + 64 <= len; off += 64)
        sha1_block(h, msg + off);
    size_t rest = len - off;
    memset(block, 0, 64);
    memcpy(block, msg + off, rest);
    block[rest] = 0x80;
    if (rest >= 56) {
        sha1_block(h, block);
        memset(block, 0, 64);
    }
    uint64_t bits = (uint64_t)len * 8;
    for (int i = 0; i < 8; i++)
        block[63 - i] = (unsigned char)(bits >> (8 * i));
    sha1_block(h, block);
    for (int i = 0; i < 5; i++) {
        out[4 * i] = h[i] >> 24; out[4 * i + 1] = h[i] >> 16;
        out[4 * i + 2] = h[i] >> 8; out[4 * i + 3] = h[i];
    }
}

static size_t base64(const unsigned char *in, size_t len, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len) v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len) v |= in[i + 2];
        out[o++] = tab[(v >> 18) & 63];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = i + 1 < len ? tab[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? tab[v & 63] : '=';
    }
    out[o] = 0;
    return o;
}

/* Sec-WebSocket-Accept for a key of klen bytes, NUL-terminated into out[29]. */
static void ws_accept(const char *key, size_t klen, char out[29])
{
    unsigned char buf[128], digest[20];
    if (klen > sizeof buf - sizeof WS_GUID)
        klen = sizeof buf - sizeof WS_GUID;
    memcpy(buf, key, klen);
    memcpy(buf + klen, WS_GUID, sizeof WS_GUID - 1);
    sha1(buf, klen + sizeof WS_GUID - 1, digest);
    base64(digest, 20, out);
}

/*
 * The value of header `name` (lower-case, with the colon) in a head that
 * ends with CRLFCRLF, trimmed; NULL when absent.  *vlen gets its length.
 */
static const char *header_value(const char *head, size_t hlen, const char *name, size_t *vlen)
{
    size_t nlen = strlen(name);
    const char *end = head + hlen;
    const char *line = memchr(head, '\n', hlen);
    while (line && line + 1 < end) {
        line++;
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        if (!eol) break;
        if ((size_t)(eol - line) > nlen && strncasecmp(line, name, nlen) == 0) {
            const char *v = line + nlen, *ve = eol;
            while (v < ve && (*v == ' ' || *v == '\t')) v++;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t')) ve--;
            *vlen = (size_t)(ve - v);
            return v;
        }
        line = eol;
    }
    return NULL;
}

static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
    fprintf(stderr, "%s: %s\n", what, errno ? strerror(errno) : "failed");
    exit(2);
}

#endif
