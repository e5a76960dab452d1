/* Shared by the C files of pilot_tui.detect._native (see engine.c for what the engine does and why): its data
 * structures, the few hot helpers every file inlines, and what each file offers the others. */
#ifndef PILOT_TUI_NATIVE_H
#define PILOT_TUI_NATIVE_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memrchr, memmem */
#endif
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <dlfcn.h>
#include <sys/random.h>
#include <math.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- PCRE2, opened at import (pcre2.c) ---------------------------------------------------------------------- */

#define P2_MULTILINE 0x00000400u
#define P2_ALT_CIRCUMFLEX 0x00200000u
#define P2_JIT_COMPLETE 0x00000001u
#define P2_ERROR_NOMATCH (-1)
#define P2_INFO_CAPTURECOUNT 4
#define P2_INFO_NAMECOUNT 17
#define P2_INFO_NAMEENTRYSIZE 18
#define P2_INFO_NAMETABLE 19
#define P2_UNSET (~(size_t)0)

typedef void *(*p2_compile_t)(const uint8_t *, size_t, uint32_t, int *, size_t *, void *);
typedef int (*p2_jit_compile_t)(void *, uint32_t);
typedef void *(*p2_md_create_t)(const void *, void *);
typedef int (*p2_match_t)(const void *, const uint8_t *, size_t, size_t, uint32_t, void *, void *);
typedef size_t *(*p2_ovector_t)(void *);
typedef void (*p2_free_t)(void *);
typedef int (*p2_info_t)(const void *, uint32_t, void *);
typedef int (*p2_errmsg_t)(int, uint8_t *, size_t);
typedef void *(*p2_mctx_create_t)(void *);
typedef void *(*p2_jstack_create_t)(size_t, size_t, void *);
typedef void (*p2_jstack_assign_t)(void *, void *, void *);

typedef struct {
    void *lib;
    p2_compile_t compile;
    p2_jit_compile_t jit_compile;
    p2_md_create_t md_create;
    p2_match_t match;
    p2_ovector_t ovector;
    p2_free_t code_free, md_free, mctx_free, jstack_free;
    p2_info_t info;
    p2_errmsg_t errmsg;
    p2_mctx_create_t mctx_create;
    p2_jstack_create_t jstack_create;
    p2_jstack_assign_t jstack_assign;
} Pcre2Lib;

extern Pcre2Lib P2;
extern const char *pcre2_problem; /* why the library is unusable, or NULL */
void load_pcre2(void);

/* ---- an insertion-ordered hash map: Python's OrderedDict as the windows use it (lru.c) ---------------------- */

typedef struct Node {
    struct Node *hnext, *prev, *next;
    uint64_t hash;
    char *key;
    Py_ssize_t klen;
} Node;

typedef struct {
    Node **tab;
    size_t mask, len;
    Node head; /* list sentinel: head.next is the oldest, head.prev the newest */
} Lru;

/* keys are short (addresses, user names): mix eight bytes per step */
static inline uint64_t hash_bytes(const char *p, Py_ssize_t n, uint64_t h) {
    const uint64_t k = 0x9E3779B97F4A7C15ULL;
    h = (h + (uint64_t)n) * k;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * k;
        h ^= h >> 32;
        p += 8;
        n -= 8;
    }
    if (n) {
        uint64_t w = 0;
        for (Py_ssize_t i = 0; i < n; i++)
            w |= (uint64_t)(uint8_t)p[i] << (8 * i);
        h = (h ^ w) * k;
    }
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ULL;
    return h ^ (h >> 32);
}

static inline Node *lru_find(const Lru *l, uint64_t h, const char *k, Py_ssize_t n) {
    for (Node *x = l->tab[h & l->mask]; x; x = x->hnext)
        if (x->hash == h && x->klen == n && memcmp(x->key, k, (size_t)n) == 0)
            return x;
    return NULL;
}

static inline void lru_touch(Lru *l, Node *x) {
    if (l->head.prev == x)
        return;
    x->prev->next = x->next;
    x->next->prev = x->prev;
    x->prev = l->head.prev;
    x->next = &l->head;
    l->head.prev->next = x;
    l->head.prev = x;
}

static inline Node *lru_oldest(const Lru *l) { return l->head.next == &l->head ? NULL : l->head.next; }

int lru_init(Lru *l, size_t cap);
int lru_add(Lru *l, Node *x);
void lru_unlink(Lru *l, Node *x);
void *node_new(size_t size, uint64_t h, const char *k, Py_ssize_t n);

/* ---- windows, rules, filters, the engine ------------------------------------------------------------------- */

typedef struct {
    char *p;
    Py_ssize_t n, cap;
} Buf;

int buf_set(Buf *b, const char *p, Py_ssize_t n);

typedef struct {
    int64_t sec, w;
} Bucket;

typedef struct {
    Node n; /* key = distinct value */
    int64_t sec;
} DValue;

typedef struct {
    Node n; /* key = 4-byte rule index + key text */
    Bucket *b;
    uint32_t bcap, bhead, blen;
    int64_t total;
    Lru *values; /* distinct-value rules only */
    double last, expires;
    int64_t fired_count;
    double fired_at;
    Buf *ev; /* ring of evidence lines */
    int evhead, evlen;
    Buf user; /* the last non-empty user (UTF-8); empty = None */
    PyObject *ip; /* the last source address (a str) or NULL */
} State;

typedef struct {
    double findtime, cooldown, span;
    int64_t maxretry;
    int distinct, by_ip;
    /* what an event of this rule carries (EventFactory's fast path); trusted: its constant fields validate */
    int trusted, nsev;
    PyObject *anomaly, *name, *window_s, *severity;
    int64_t *sev_at;
    PyObject **sev_level;
} Plan;

typedef struct {
    int bgroup, ip, user, repeat, count, login, info, nrules;
    int *plan, *distinct;
    int nneed, *need; /* the groups counting reads (ip, user, repeat, count, distinct values): all a hit keeps */
} Branch;

typedef struct {
    Py_ssize_t ls, le; /* line start and end (the newline or the chunk's end) */
    size_t ov;         /* offset of this hit's group offsets in the filter's pool: its branch's `need` groups */
    int br;            /* the branch (pattern) that matched */
} Hit;

typedef struct {
    void *code, *md;
    char *require;
    Py_ssize_t rlen;
    int rare; /* index of the literal's rarest byte */
    int ncap; /* capture groups + 1 */
    int nbranch;
    Branch *br;
} Filter;

/* One filter's judged lines in one chunk: hits in line order, their group offsets in `pool`. */
typedef struct {
    Hit *hits;
    size_t nhits, chits;
    Py_ssize_t *pool;
    size_t npool, cpool;
    int present; /* the filter's require literal is in the chunk */
} Lines;

typedef struct Addr {
    Node n; /* key = the ip group's text */
    int kind; /* 0 not an address, 1 allowlisted, 2 counted */
    PyObject *addr, *key; /* canonical address and window key (str) */
    const char *kb;
    Py_ssize_t kl;
    uint64_t kh; /* hash of the window key */
    int64_t pending; /* hits not yet added to ip_hits */
} Addr;

typedef struct {
    PyObject_HEAD
    int nfilters;
    Filter *f; /* read-only once built: prepare() reads it without the GIL */
    int nplans;
    Plan *plans;
    int nbranches;
    int64_t *branch_hits, *rule_hits;
    int64_t bad_ip, allowlisted, evicted, since_sweep;
    Lru states;
    int64_t max_keys;
    Lru addrs;
    Addr **pending;
    size_t npending, cpending;
    PyObject *resolve, *line_time, *minutes, *login, *logins, *ip_hits, *clock;
    int ref_year; /* the local year of the current call's reference time (0: unknown) */
    Py_ssize_t minute_cache_max;
    int ev_lines;
    Py_ssize_t ev_chars;
    int64_t max_distinct, sweep_every, max_repeat, max_ip_counts, addr_cache_max;
    double future_slack;
    char memo_key[12];
    int memo_valid;
    double memo_a, memo_b;
    void *mctx, *jstack;
    int busy; /* a prepare() is matching (match data and JIT stack are in use) */
    /* events built here: ThreatEvent, its field names, constants; cur_log is the log of the current call */
    PyObject *ev_type, *ev_fields, *schema, *sensor, *local_source, *empty, *cur_log;
    int64_t max_count;
    Py_ssize_t user_chars;
    uint8_t rand[4096];
    size_t rand_at;
    char *kbuf; /* scratch for window keys */
    Py_ssize_t kcap;
} Engine;

typedef struct {
    const char *p; /* NULL: the group did not take part */
    Py_ssize_t n;
} Slice;

static inline PyObject *str_of(const char *p, Py_ssize_t n) { return PyUnicode_DecodeUTF8(p, n, "replace"); }

enum { FOUND_OK = 1, FOUND_REFUSED = 0, FOUND_NOMEM = -1 };

/* A chunk matched by prepare(), waiting for count_found(): it keeps the chunk's buffer alive. */
typedef struct {
    PyObject_HEAD
    Engine *owner;
    Py_buffer view;
    int has_view;
    Py_ssize_t lines;
    int nfilters;
    Lines *lines_of; /* per filter */
} Found;

static inline int engine_ready(Engine *e) {
    if (!e->f) {
        PyErr_SetString(PyExc_RuntimeError, "Engine not initialised");
        return 0;
    }
    return 1;
}

/* clock.c: times as timeparse computes them */
PyObject *iso_utc(double ts);
int syslog_pair(const char *k, int year, double *a, double *b);
PyObject *py_syslog_pair(PyObject *m, PyObject *args);
PyObject *py_iso_utc(PyObject *m, PyObject *args);

/* count.c: Detector._count for one match */
const Branch *branch_of(const Filter *f, const Slice *g, int ng);
int count_one(Engine *e, const Branch *b, const Slice *g, int ng, const char *line, Py_ssize_t llen, int ascii,
              PyObject *line_obj, double ref, PyObject *fires);
int flush_ip_hits(Engine *e);
void addrs_clear(Engine *e);
Py_ssize_t utf8_prefix(const char *p, Py_ssize_t n, int ascii, Py_ssize_t chars);

/* windows.c: Tracker.hit and the events of fired windows */
int window_hit(Engine *e, int pi, const char *key, Py_ssize_t kn, uint64_t kh, double ts, int64_t weight,
               Slice value, const char *line, Py_ssize_t evn, Slice user, PyObject *ip, PyObject *fires);
void state_free(State *st, int ev_lines);

/* scan.c: whole chunks, matched without the GIL and counted with it */
extern PyTypeObject FoundType;
PyObject *Engine_prepare(Engine *e, PyObject *args);
PyObject *Engine_count_found(Engine *e, PyObject *args);
PyObject *Engine_scan(Engine *e, PyObject *args);
int rare_index(const char *needle, Py_ssize_t m); /* the rarest byte of a require literal */

#endif
