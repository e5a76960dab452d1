/* pilot_tui.detect._native — the scan engine's hot path in C: PCRE2 matching, per-match work, sliding windows.
 *
 * Why it exists: `pilot-tui scan` must run at >= 100x fail2ban-regex on an attack-heavy auth.log, and Python pays
 * about 3 us per matching line (cut the line, resolve address and time, count it in a window) however the regex is
 * run. This module does exactly what pilot_tui/detect/engine.py (`Detector._count`), window.py (`Tracker.hit`) and
 * chunkscan.py (`_Scan.lines`) do, in the same order, on ASCII chunks:
 *
 *   * each filter's combined regex (the very pattern Python compiled, prefixed with (*LF)) runs over the whole chunk
 *     with PCRE2 (JIT when the library has it); each line is judged by its leftmost match, a match running past its
 *     line is re-done on the line alone, and a filter's `require` literal is checked per line;
 *   * the filters' match streams are merged by (line start, filter index) — the order `feed` visits them;
 *   * each match is counted as Detector._count counts it, windows included.
 *
 * Everything rare or subtle stays in Python and is called back: address parsing and the allowlist (`resolve`, cached
 * here per text — a pure function), syslog minutes not yet in LineClock.minutes and every other time format
 * (`line_time`), remembering logins (`login`), int() of a non-digit repeat/count group. Events are not built here:
 * a fired window is returned as a tuple and Python builds the event.
 *
 * A chunk this engine cannot judge exactly as Python's `re` would is refused (scan returns None, nothing counted)
 * and Python scans it, handing each match to `count` so that all state stays here: non-ASCII bytes, CR, the bytes
 * 0x1c-0x1f (Python's \s matches them, PCRE2's does not), or a PCRE2 error (match limit, JIT stack) in any filter.
 * Patterns PCRE2 would read differently are refused in Python before an Engine is built (see native.py).
 *
 * libpcre2-8 is opened with dlopen, so building needs no PCRE2 headers and a machine without the library simply
 * uses the Python path. The few declarations below match pcre2.h (10.x, 8-bit code units).
 */
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

/* ---- PCRE2, opened at import ------------------------------------------------------------------------------ */

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

static struct {
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
} P2;

static const char *pcre2_problem = NULL;

static void load_pcre2(void) {
    static const char *names[] = {"libpcre2-8.so.0", "libpcre2-8.so", "libpcre2-8.0.dylib", "libpcre2-8.dylib", NULL};
    for (int i = 0; names[i] && !P2.lib; i++)
        P2.lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!P2.lib) {
        pcre2_problem = "libpcre2-8 not found";
        return;
    }
#define SYM(field, name, type)                              \
    P2.field = (type)dlsym(P2.lib, name);                   \
    if (!P2.field) {                                        \
        pcre2_problem = "libpcre2-8 lacks " name;           \
        return;                                             \
    }
    SYM(compile, "pcre2_compile_8", p2_compile_t)
    SYM(jit_compile, "pcre2_jit_compile_8", p2_jit_compile_t)
    SYM(md_create, "pcre2_match_data_create_from_pattern_8", p2_md_create_t)
    SYM(match, "pcre2_match_8", p2_match_t)
    SYM(ovector, "pcre2_get_ovector_pointer_8", p2_ovector_t)
    SYM(code_free, "pcre2_code_free_8", p2_free_t)
    SYM(md_free, "pcre2_match_data_free_8", p2_free_t)
    SYM(mctx_free, "pcre2_match_context_free_8", p2_free_t)
    SYM(jstack_free, "pcre2_jit_stack_free_8", p2_free_t)
    SYM(info, "pcre2_pattern_info_8", p2_info_t)
    SYM(errmsg, "pcre2_get_error_message_8", p2_errmsg_t)
    SYM(mctx_create, "pcre2_match_context_create_8", p2_mctx_create_t)
    SYM(jstack_create, "pcre2_jit_stack_create_8", p2_jstack_create_t)
    SYM(jstack_assign, "pcre2_jit_stack_assign_8", p2_jstack_assign_t)
#undef SYM
}

/* ---- an insertion-ordered hash map (Python's OrderedDict, as the windows use it) ---------------------------- */

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
static uint64_t hash_bytes(const char *p, Py_ssize_t n, uint64_t h) {
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

static int lru_init(Lru *l, size_t cap) {
    l->tab = (Node **)calloc(cap, sizeof(Node *));
    if (!l->tab)
        return -1;
    l->mask = cap - 1;
    l->len = 0;
    l->head.prev = l->head.next = &l->head;
    return 0;
}

static Node *lru_find(const Lru *l, uint64_t h, const char *k, Py_ssize_t n) {
    for (Node *x = l->tab[h & l->mask]; x; x = x->hnext)
        if (x->hash == h && x->klen == n && memcmp(x->key, k, (size_t)n) == 0)
            return x;
    return NULL;
}

static int lru_add(Lru *l, Node *x) {
    if (l->len + 1 > (l->mask + 1) / 4 * 3) {
        size_t cap = (l->mask + 1) * 2;
        Node **tab = (Node **)calloc(cap, sizeof(Node *));
        if (!tab)
            return -1;
        for (Node *y = l->head.next; y != &l->head; y = y->next) {
            y->hnext = tab[y->hash & (cap - 1)];
            tab[y->hash & (cap - 1)] = y;
        }
        free(l->tab);
        l->tab = tab;
        l->mask = cap - 1;
    }
    x->hnext = l->tab[x->hash & l->mask];
    l->tab[x->hash & l->mask] = x;
    x->prev = l->head.prev;
    x->next = &l->head;
    l->head.prev->next = x;
    l->head.prev = x;
    l->len++;
    return 0;
}

static void lru_unlink(Lru *l, Node *x) {
    Node **pp = &l->tab[x->hash & l->mask];
    while (*pp != x)
        pp = &(*pp)->hnext;
    *pp = x->hnext;
    x->prev->next = x->next;
    x->next->prev = x->prev;
    l->len--;
}

static void lru_touch(Lru *l, Node *x) {
    if (l->head.prev == x)
        return;
    x->prev->next = x->next;
    x->next->prev = x->prev;
    x->prev = l->head.prev;
    x->next = &l->head;
    l->head.prev->next = x;
    l->head.prev = x;
}

static Node *lru_oldest(const Lru *l) { return l->head.next == &l->head ? NULL : l->head.next; }

/* a node and its key in one allocation */
static void *node_new(size_t size, uint64_t h, const char *k, Py_ssize_t n) {
    Node *x = (Node *)calloc(1, size + (size_t)n + 1);
    if (!x)
        return NULL;
    x->hash = h;
    x->key = (char *)x + size;
    memcpy(x->key, k, (size_t)n);
    x->klen = n;
    return x;
}

/* ---- windows ------------------------------------------------------------------------------------------------ */

typedef struct {
    char *p;
    Py_ssize_t n, cap;
} Buf;

static int buf_set(Buf *b, const char *p, Py_ssize_t n) {
    if (n > b->cap) {
        Py_ssize_t cap = n < 64 ? 64 : n;
        char *q = (char *)realloc(b->p, (size_t)cap);
        if (!q)
            return -1;
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p, p, (size_t)n);
    b->n = n;
    return 0;
}

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

static void values_free(Lru *v) {
    if (!v)
        return;
    Node *x = v->head.next;
    while (x != &v->head) {
        Node *nx = x->next;
        free(x);
        x = nx;
    }
    free(v->tab);
    free(v);
}

static void state_free(State *st, int ev_lines) {
    free(st->b);
    values_free(st->values);
    if (st->ev) {
        for (int i = 0; i < ev_lines; i++)
            free(st->ev[i].p);
        free(st->ev);
    }
    free(st->user.p);
    Py_XDECREF(st->ip);
    free(st);
}

/* ---- the engine --------------------------------------------------------------------------------------------- */

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

static PyObject *str_of(const char *p, Py_ssize_t n) { return PyUnicode_DecodeUTF8(p, n, "replace"); }

/* ip_hits[addr] += pending, for addresses in the order of their first pending hit (see engine.py: MAX_IP_COUNTS) */
static int flush_ip_hits(Engine *e) {
    int rc = 0;
    for (size_t i = 0; i < e->npending; i++) {
        Addr *a = e->pending[i];
        if (rc == 0 && e->ip_hits != Py_None) {
            PyObject *old = PyDict_GetItemWithError(e->ip_hits, a->addr);
            PyObject *val = NULL;
            if (old) {
                long long n = PyLong_AsLongLong(old);
                if (n == -1 && PyErr_Occurred())
                    rc = -1;
                else
                    val = PyLong_FromLongLong(n + a->pending);
            } else if (PyErr_Occurred()) {
                rc = -1;
            } else if (PyDict_GET_SIZE(e->ip_hits) < e->max_ip_counts) {
                val = PyLong_FromLongLong(a->pending);
            }
            if (val) {
                if (PyDict_SetItem(e->ip_hits, a->addr, val) < 0)
                    rc = -1;
                Py_DECREF(val);
            } else if (PyErr_Occurred()) {
                rc = -1;
            }
        }
        a->pending = 0;
    }
    e->npending = 0;
    return rc;
}

static void addrs_clear(Engine *e) {
    Node *x = e->addrs.head.next;
    while (x != &e->addrs.head) {
        Node *nx = x->next;
        Addr *a = (Addr *)x;
        Py_XDECREF(a->addr);
        Py_XDECREF(a->key);
        free(a);
        x = nx;
    }
    memset(e->addrs.tab, 0, (e->addrs.mask + 1) * sizeof(Node *));
    e->addrs.len = 0;
    e->addrs.head.prev = e->addrs.head.next = &e->addrs.head;
}

/* The cached resolution of an ip group's text (AddressBook.resolve on a miss); NULL with an exception on error. */
static Addr *addr_of(Engine *e, const char *p, Py_ssize_t n) {
    uint64_t h = hash_bytes(p, n, 0);
    Addr *a = (Addr *)lru_find(&e->addrs, h, p, n);
    if (a)
        return a;
    if ((int64_t)e->addrs.len >= e->addr_cache_max) {
        if (flush_ip_hits(e) < 0)
            return NULL;
        addrs_clear(e);
    }
    PyObject *text = str_of(p, n);
    if (!text)
        return NULL;
    PyObject *res = PyObject_CallOneArg(e->resolve, text);
    Py_DECREF(text);
    if (!res)
        return NULL;
    a = (Addr *)node_new(sizeof(Addr), h, p, n);
    if (!a) {
        Py_DECREF(res);
        PyErr_NoMemory();
        return NULL;
    }
    if (res == Py_None) {
        a->kind = 0;
    } else if (res == Py_False) {
        a->kind = 1;
    } else if (PyTuple_Check(res) && PyTuple_GET_SIZE(res) == 2 && PyUnicode_Check(PyTuple_GET_ITEM(res, 0)) &&
               PyUnicode_Check(PyTuple_GET_ITEM(res, 1))) {
        a->kind = 2;
        a->addr = Py_NewRef(PyTuple_GET_ITEM(res, 0));
        a->key = Py_NewRef(PyTuple_GET_ITEM(res, 1));
        a->kb = PyUnicode_AsUTF8AndSize(a->key, &a->kl);
        if (a->kb)
            a->kh = hash_bytes(a->kb, a->kl, 0);
        if (!a->kb) {
            Py_DECREF(res);
            Py_DECREF(a->addr);
            Py_DECREF(a->key);
            free(a);
            return NULL;
        }
    } else {
        Py_DECREF(res);
        free(a);
        PyErr_SetString(PyExc_TypeError, "resolve() must return (address, key), False or None");
        return NULL;
    }
    Py_DECREF(res);
    if (lru_add(&e->addrs, &a->n) < 0) {
        Py_XDECREF(a->addr);
        Py_XDECREF(a->key);
        free(a);
        PyErr_NoMemory();
        return NULL;
    }
    return a;
}

/* int(text) for a repeat/count group: ASCII digits here (saturating), anything else through Python's int() */
static int group_int(const Slice *s, int64_t *out) {
    int digits = s->n <= 18;
    for (Py_ssize_t i = 0; i < s->n && digits; i++)
        digits = s->p[i] >= '0' && s->p[i] <= '9';
    if (digits) {
        int64_t v = 0;
        for (Py_ssize_t i = 0; i < s->n; i++)
            v = v * 10 + (s->p[i] - '0');
        *out = v;
        return 0;
    }
    PyObject *text = str_of(s->p, s->n);
    if (!text)
        return -1;
    PyObject *num = PyNumber_Long(text);
    Py_DECREF(text);
    if (!num)
        return -1;
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(num, &overflow);
    Py_DECREF(num);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (overflow)
        v = overflow > 0 ? ((int64_t)1 << 40) : -((int64_t)1 << 40);
    *out = v;
    return 0;
}

static int64_t clamp40(int64_t v) {
    const int64_t lim = (int64_t)1 << 40;
    return v > lim ? lim : v < -lim ? -lim : v;
}

/* Python's line[:chars] of a UTF-8 line, in bytes */
static Py_ssize_t utf8_prefix(const char *p, Py_ssize_t n, int ascii, Py_ssize_t chars) {
    if (ascii)
        return n < chars ? n : chars;
    Py_ssize_t i = 0, seen = 0;
    while (i < n) {
        if (((uint8_t)p[i] & 0xC0) != 0x80) {
            if (seen == chars)
                break;
            seen++;
        }
        i++;
    }
    return i;
}

/* ---- syslog minutes: what timeparse._syslog_pair computes, for the canonical "Mon DD HH:MM" shape ------------
 * datetime(y, mo, d, h, mi).timestamp() for a naive datetime is CPython's local_to_seconds() (fold 0) minus the
 * epoch; this is that code (Modules/_datetimemodule.c), on the same localtime_r, so the floats are the same. */

static const int days_before_month_tab[] = {0, 0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334};
static const int days_in_month_tab[] = {0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
#define EPOCH_SECONDS (719163LL * 24 * 60 * 60)

static int is_leap(int y) { return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0); }

static int days_in_month(int y, int m) { return m == 2 && is_leap(y) ? 29 : days_in_month_tab[m]; }

static long long utc_to_seconds(int y, int mo, int d, int h, int mi, int s) {
    long long py = y - 1;
    long long ordinal = py * 365 + py / 4 - py / 100 + py / 400 + days_before_month_tab[mo] + (mo > 2 && is_leap(y)) + d;
    return ((ordinal * 24 + h) * 60 + mi) * 60 + s;
}

/* 0 and *out, or -1 where CPython would raise (Python is then asked instead) */
static int local_of(long long u, long long *out) {
    struct tm tm;
    time_t t = (time_t)(u - EPOCH_SECONDS);
    if ((long long)t != u - EPOCH_SECONDS || !localtime_r(&t, &tm))
        return -1;
    int y = tm.tm_year + 1900;
    if (y < 1 || y > 9999)
        return -1;
    *out = utc_to_seconds(y, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    return 0;
}

static int local_to_seconds(int y, int mo, int d, int h, int mi, long long *out) {
    long long t = utc_to_seconds(y, mo, d, h, mi, 0), lt, a, b, u1, u2, t1, t2;
    if (local_of(t, &lt) < 0)
        return -1;
    a = lt - t;
    u1 = t - a;
    if (local_of(u1, &t1) < 0)
        return -1;
    if (t1 == t) {
        u2 = u1 - 24 * 3600;
        if (local_of(u2, &lt) < 0)
            return -1;
        b = lt - u2;
        if (a == b) {
            *out = u1;
            return 0;
        }
    } else {
        b = t1 - u1;
    }
    u2 = t - b;
    if (local_of(u2, &t2) < 0)
        return -1;
    *out = t2 == t ? u2 : t1 == t ? u1 : (u1 > u2 ? u1 : u2);
    return 0;
}

/* One year of _syslog_pair: 1 and *ts, 0 where datetime() raises ValueError, -1 where Python must decide. */
static int minute_in(int y, int mo, int d, int h, int mi, double *ts) {
    long long sec;
    int shift = 0;
    if (y < 1 || y > 9999 || h > 23 || mi > 59)
        return 0;
    if (d < 1 || d > days_in_month(y, mo)) { /* Feb 29 in a common year: the day before, plus a day */
        d -= 1;
        shift = 86400;
        if (d < 1 || d > days_in_month(y, mo))
            return 0;
    }
    if (local_to_seconds(y, mo, d, h, mi, &sec) < 0)
        return -1;
    *ts = (double)(sec - EPOCH_SECONDS) + shift;
    return 1;
}

static const char *month_names = "JanFebMarAprMayJunJulAugSepOctNovDec";

static int is_digit(char c) { return c >= '0' && c <= '9'; }

/* _syslog_pair(key + ":00", year) for a 12-byte key: 1 and the pair, 0 for None, -1 where Python must decide. */
static int syslog_pair(const char *k, int year, double *a, double *b) {
    int mo = 0;
    for (int i = 0; i < 12 && !mo; i++)
        if (memcmp(k, month_names + 3 * i, 3) == 0)
            mo = i + 1;
    if (!mo || k[3] != ' ' || !(k[4] == ' ' || is_digit(k[4])) || !is_digit(k[5]) || k[6] != ' ' || !is_digit(k[7]) ||
        !is_digit(k[8]) || k[9] != ':' || !is_digit(k[10]) || !is_digit(k[11]))
        return -1;
    int d = (k[4] == ' ' ? 0 : k[4] - '0') * 10 + k[5] - '0', h = (k[7] - '0') * 10 + k[8] - '0',
        mi = (k[10] - '0') * 10 + k[11] - '0';
    int r = minute_in(year, mo, d, h, mi, a);
    if (r <= 0)
        return r;
    return minute_in(year - 1, mo, d, h, mi, b);
}

static PyObject *py_syslog_pair(PyObject *Py_UNUSED(m), PyObject *args) {
    const char *k;
    Py_ssize_t n;
    int year;
    double a, b;
    if (!PyArg_ParseTuple(args, "y#i:syslog_pair", &k, &n, &year))
        return NULL;
    if (n != 12) {
        PyErr_SetString(PyExc_ValueError, "a 12-byte key");
        return NULL;
    }
    int r = syslog_pair(k, year, &a, &b);
    if (r < 0)
        return PyUnicode_FromString("python");
    if (r == 0)
        Py_RETURN_NONE;
    return Py_BuildValue("(dd)", a, b);
}

/* A minute LineClock.minutes lacks: computed and stored here as LineClock._syslog_time would (same year, same
 * cache) when the clock's year is the reference's and the cache has room — 1 (memo set), 2 (stored None) —
 * else 0: Python's line_time() decides (it also clears the cache when the year changes). */
static int new_minute(Engine *e, const char *line, double ref) {
    if (e->ref_year <= 0 || PyDict_GET_SIZE(e->minutes) >= e->minute_cache_max)
        return 0;
    PyObject *yo = PyObject_GetAttrString(e->clock, "_year");
    if (!yo)
        return -1;
    long cy = PyLong_AsLong(yo);
    Py_DECREF(yo);
    if (cy == -1 && PyErr_Occurred())
        return -1;
    double a, b;
    int r = cy == e->ref_year ? syslog_pair(line, e->ref_year, &a, &b) : -1;
    if (r < 0)
        return 0;
    PyObject *key = PyUnicode_FromStringAndSize(line, 12);
    PyObject *val = r ? Py_BuildValue("(dd)", a, b) : Py_NewRef(Py_None);
    int rc = key && val ? PyDict_SetItem(e->minutes, key, val) : -1;
    Py_XDECREF(key);
    Py_XDECREF(val);
    if (rc < 0)
        return -1;
    if (!r)
        return 2;
    memcpy(e->memo_key, line, 12);
    e->memo_a = a;
    e->memo_b = b;
    e->memo_valid = 1;
    return 1;
}

/* The time of a line, as Detector._count finds it (LineClock.minutes first, line_time() otherwise). */
static int line_time(Engine *e, const char *line, Py_ssize_t n, int ascii, PyObject *line_obj, double ref,
                     double *ts) {
    if (n >= 15) {
        int plain = 1;
        if (!ascii)
            for (int i = 0; i < 15 && plain; i++)
                plain = !((uint8_t)line[i] & 0x80);
        if (plain) {
            int have = e->memo_valid && memcmp(e->memo_key, line, 12) == 0;
            if (!have) {
                PyObject *key = PyUnicode_FromStringAndSize(line, 12);
                if (!key)
                    return -1;
                PyObject *pair = PyDict_GetItemWithError(e->minutes, key);
                Py_DECREF(key);
                if (!pair && PyErr_Occurred())
                    return -1;
                if (pair && PyTuple_Check(pair) && PyTuple_GET_SIZE(pair) == 2 &&
                    PyFloat_Check(PyTuple_GET_ITEM(pair, 0)) && PyFloat_Check(PyTuple_GET_ITEM(pair, 1))) {
                    memcpy(e->memo_key, line, 12);
                    e->memo_a = PyFloat_AS_DOUBLE(PyTuple_GET_ITEM(pair, 0));
                    e->memo_b = PyFloat_AS_DOUBLE(PyTuple_GET_ITEM(pair, 1));
                    e->memo_valid = have = 1;
                } else if (!pair) {
                    int r = new_minute(e, line, ref);
                    if (r < 0)
                        return -1;
                    if (r == 2) { /* LineClock would find None for this minute: the line has no time */
                        *ts = ref;
                        return 0;
                    }
                    have = r;
                }
            }
            if (have && line[13] >= '0' && line[13] <= '9' && line[14] >= '0' && line[14] <= '9') {
                double sec = (line[13] - '0') * 10 + (line[14] - '0');
                *ts = e->memo_a + sec;
                if (*ts > ref + e->future_slack)
                    *ts = e->memo_b + sec;
                return 0;
            }
        }
    }
    PyObject *text = line_obj ? Py_NewRef(line_obj) : str_of(line, n);
    if (!text)
        return -1;
    PyObject *r = PyObject_CallFunction(e->line_time, "Od", text, ref);
    Py_DECREF(text);
    e->memo_valid = 0; /* line_time may have changed (or cleared) the minutes cache */
    if (!r)
        return -1;
    if (r == Py_None) {
        *ts = ref;
    } else {
        *ts = PyFloat_AsDouble(r);
        if (*ts == -1.0 && PyErr_Occurred()) {
            Py_DECREF(r);
            return -1;
        }
    }
    Py_DECREF(r);
    return 0;
}

/* timeparse.iso_utc(ts) for 1970-9999 (else None: Python formats it): days to a civil date as in proleptic
 * Gregorian (H. Hinnant's algorithm), the rest by arithmetic, milliseconds truncated as int() does. */
static PyObject *iso_utc(double ts) {
    if (!(ts >= 0.0 && ts < 253402300800.0))
        Py_RETURN_NONE;
    int64_t whole = (int64_t)floor(ts);
    int millis = (int)((ts - (double)whole) * 1000.0);
    int64_t z = whole / 86400 + 719468, rest = whole % 86400;
    int64_t era = z / 146097, doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
    int64_t d = doy - (153 * mp + 2) / 5 + 1, m = mp < 10 ? mp + 3 : mp - 9, y = yoe + era * 400 + (m <= 2);
    char out[32];
    snprintf(out, sizeof out, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", (int)y, (int)m, (int)d, (int)(rest / 3600),
             (int)(rest % 3600 / 60), (int)(rest % 60), millis);
    return PyUnicode_FromString(out);
}

static PyObject *py_iso_utc(PyObject *Py_UNUSED(m), PyObject *args) {
    double ts;
    if (!PyArg_ParseTuple(args, "d:iso_utc", &ts))
        return NULL;
    return iso_utc(ts);
}

static State *state_new(Engine *e, const Plan *plan, uint64_t h, const char *k, Py_ssize_t n) {
    State *st = (State *)node_new(sizeof(State), h, k, n);
    if (!st)
        return NULL;
    st->last = st->expires = st->fired_at = -HUGE_VAL;
    st->ev = (Buf *)calloc((size_t)e->ev_lines, sizeof(Buf));
    if (!st->ev) {
        free(st);
        return NULL;
    }
    if (plan->distinct) {
        st->values = (Lru *)calloc(1, sizeof(Lru));
        if (!st->values || lru_init(st->values, 8) < 0) {
            free(st->values);
            free(st->ev);
            free(st);
            return NULL;
        }
    }
    return st;
}

static void sweep(Engine *e, double now) {
    e->since_sweep = 0;
    Node *x;
    while ((x = lru_oldest(&e->states)) != NULL) {
        State *st = (State *)x;
        if (st->expires >= now)
            break;
        lru_unlink(&e->states, x);
        state_free(st, e->ev_lines);
    }
}

static int fire(Engine *e, int pi, int64_t count, int escalation, double ts, State *st, PyObject *fires);

/* Tracker.hit: count one line for (rule, key); report the event to `fires` when one is due (see fire()). */
static int window_hit(Engine *e, int pi, const char *key, Py_ssize_t kn, uint64_t kh, double ts, int64_t weight, Slice value,
                      const char *line, Py_ssize_t evn, Slice user, PyObject *ip, PyObject *fires) {
    const Plan *plan = &e->plans[pi];
    if (kn + 4 > e->kcap) {
        Py_ssize_t cap = (kn + 4) * 2;
        char *q = (char *)realloc(e->kbuf, (size_t)cap);
        if (!q) {
            PyErr_NoMemory();
            return -1;
        }
        e->kbuf = q;
        e->kcap = cap;
    }
    memcpy(e->kbuf, &pi, 4);
    memcpy(e->kbuf + 4, key, (size_t)kn);
    uint64_t h = (kh ^ ((uint64_t)pi + 1) * 0x9E3779B97F4A7C15ULL) * 0xBF58476D1CE4E5B9ULL; /* key hash + rule */
    h ^= h >> 31;
    State *st = (State *)lru_find(&e->states, h, e->kbuf, kn + 4);
    if (!st || st->expires < ts) {
        if (st) { /* window and cooldown both over: start afresh */
            lru_unlink(&e->states, &st->n);
            state_free(st, e->ev_lines);
        }
        st = state_new(e, plan, h, e->kbuf, kn + 4);
        if (!st || lru_add(&e->states, &st->n) < 0) {
            if (st)
                state_free(st, e->ev_lines);
            PyErr_NoMemory();
            return -1;
        }
        if ((int64_t)e->states.len > e->max_keys) {
            State *old = (State *)lru_oldest(&e->states);
            lru_unlink(&e->states, &old->n);
            state_free(old, e->ev_lines);
            e->evicted++;
        }
    } else {
        lru_touch(&e->states, &st->n);
    }
    double now = ts > st->last ? ts : st->last;
    st->last = now;
    st->expires = now + plan->span;
    double cutoff = now - plan->findtime;
    int64_t count;
    if (!plan->distinct) {
        int64_t sec = (int64_t)ts;
        if (st->blen && st->b[(st->bhead + st->blen - 1) % st->bcap].sec == sec) {
            st->b[(st->bhead + st->blen - 1) % st->bcap].w += weight;
        } else {
            if (st->blen == st->bcap) {
                uint32_t cap = st->bcap ? st->bcap * 2 : 4;
                Bucket *nb = (Bucket *)malloc(cap * sizeof(Bucket));
                if (!nb) {
                    PyErr_NoMemory();
                    return -1;
                }
                for (uint32_t i = 0; i < st->blen; i++)
                    nb[i] = st->b[(st->bhead + i) % st->bcap];
                free(st->b);
                st->b = nb;
                st->bcap = cap;
                st->bhead = 0;
            }
            st->b[(st->bhead + st->blen) % st->bcap] = (Bucket){sec, weight};
            st->blen++;
        }
        count = st->total + weight;
        while ((double)st->b[st->bhead].sec <= cutoff) {
            count -= st->b[st->bhead].w;
            st->bhead = (st->bhead + 1) % st->bcap;
            if (--st->blen == 0)
                break;
        }
        st->total = count;
    } else {
        const char *vp = value.p ? value.p : "";
        Py_ssize_t vn = value.p ? value.n : 0;
        Lru *vals = st->values;
        uint64_t vh = hash_bytes(vp, vn, 3);
        DValue *dv = (DValue *)lru_find(vals, vh, vp, vn);
        if (dv) {
            lru_touch(vals, &dv->n); /* del values[value]; values[value] = … */
        } else {
            dv = (DValue *)node_new(sizeof(DValue), vh, vp, vn);
            if (!dv || lru_add(vals, &dv->n) < 0) {
                free(dv);
                PyErr_NoMemory();
                return -1;
            }
        }
        dv->sec = (int64_t)ts;
        if ((int64_t)vals->len > e->max_distinct) {
            Node *old = lru_oldest(vals);
            lru_unlink(vals, old);
            free(old);
        }
        Node *first;
        while ((first = lru_oldest(vals)) != NULL) {
            if ((double)((DValue *)first)->sec > cutoff)
                break;
            lru_unlink(vals, first);
            free(first);
        }
        count = (int64_t)vals->len;
    }
    /* evidence: deque(maxlen=ev_lines).append(line[:ev_chars]) */
    int slot;
    if (st->evlen < e->ev_lines) {
        slot = (st->evhead + st->evlen) % e->ev_lines;
        st->evlen++;
    } else {
        slot = st->evhead;
        st->evhead = (st->evhead + 1) % e->ev_lines;
    }
    if (buf_set(&st->ev[slot], line, evn) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    if (user.p && user.n > 0 && (st->user.n != user.n || memcmp(st->user.p, user.p, (size_t)user.n) != 0))
        if (buf_set(&st->user, user.p, user.n) < 0) {
            PyErr_NoMemory();
            return -1;
        }
    if (ip && ip != Py_None && ip != st->ip) {
        Py_XSETREF(st->ip, Py_NewRef(ip));
    }
    if (++e->since_sweep >= e->sweep_every)
        sweep(e, now);
    if (count < plan->maxretry)
        return 0;
    int escalation;
    if (st->fired_count == 0 || now - st->fired_at >= plan->cooldown)
        escalation = 0;
    else if (count >= 2 * st->fired_count)
        escalation = 1;
    else
        return 0;
    st->fired_count = count;
    st->fired_at = now;
    return fire(e, pi, count, escalation, ts, st, fires);
}

/* A random UUID (version 4) in text form, as events.new_event_id makes it; -1 if the OS gives no randomness. */
static int new_uuid(Engine *e, char out[37]) {
    if (e->rand_at == 0 || e->rand_at + 16 > sizeof e->rand) {
        ssize_t got = getrandom(e->rand, sizeof e->rand, 0);
        if (got != (ssize_t)sizeof e->rand)
            return -1;
        e->rand_at = 0;
    }
    uint8_t b[16];
    memcpy(b, e->rand + e->rand_at, 16);
    e->rand_at += 16;
    b[6] = (uint8_t)((b[6] & 0x0F) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3F) | 0x80);
    static const char hex[] = "0123456789abcdef";
    int o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 15];
    }
    out[o] = 0;
    return 0;
}

/* The ThreatEvent EventFactory.build would return, made as its dataclass __init__ makes it (object.__new__, then
 * object.__setattr__ per field) — or None when the event is outside the envelope where that holds. */
static PyObject *event_of(Engine *e, const Plan *plan, int64_t count, PyObject *iso, PyObject *user, PyObject *ip,
                          PyObject *evidence) {
    char idb[37];
    if (!e->ev_type || !plan->trusted || count < 1 || count > e->max_count || iso == Py_None || new_uuid(e, idb) < 0)
        Py_RETURN_NONE;
    PyObject *severity = plan->severity;
    for (int i = 0; i < plan->nsev; i++)
        if (count >= plan->sev_at[i])
            severity = plan->sev_level[i];
    PyObject *id = PyUnicode_FromStringAndSize(idb, 36), *n = PyLong_FromLongLong(count);
    PyObject *obj = (id && n) ? PyBaseObject_Type.tp_new((PyTypeObject *)e->ev_type, e->empty, NULL) : NULL;
    if (obj) {
        PyObject *values[14] = {ip ? ip : e->local_source, plan->anomaly, severity, id, e->schema, e->sensor, Py_None,
                                iso, plan->name, n, plan->window_s, user, e->cur_log, evidence};
        for (int i = 0; i < 14; i++)
            if (PyObject_GenericSetAttr(obj, PyTuple_GET_ITEM(e->ev_fields, i), values[i]) < 0) {
                Py_CLEAR(obj);
                break;
            }
    }
    Py_XDECREF(id);
    Py_XDECREF(n);
    return obj;
}

/* Report a fired window: its event, or (outside the envelope) a tuple Python builds the event from:
 * (rule index, count, escalation, time, user, address, evidence, time as iso_utc or None). */
static int fire(Engine *e, int pi, int64_t count, int escalation, double ts, State *st, PyObject *fires) {
    PyObject *ev = PyTuple_New(st->evlen);
    if (!ev)
        return -1;
    for (int i = 0; i < st->evlen; i++) {
        Buf *b = &st->ev[(st->evhead + i) % e->ev_lines];
        PyObject *s = str_of(b->p ? b->p : "", b->n);
        if (!s) {
            Py_DECREF(ev);
            return -1;
        }
        PyTuple_SET_ITEM(ev, i, s);
    }
    PyObject *u = st->user.n ? str_of(st->user.p, utf8_prefix(st->user.p, st->user.n, 0, e->user_chars))
                             : Py_NewRef(Py_None);
    PyObject *iso = u ? iso_utc(ts) : NULL;
    PyObject *done = iso ? event_of(e, &e->plans[pi], count, iso, u, st->ip, ev) : NULL;
    if (done == Py_None) {
        Py_DECREF(done);
        done = Py_BuildValue("(iLOdOOOO)", pi, (long long)count, escalation ? Py_True : Py_False, ts, u,
                             st->ip ? st->ip : Py_None, ev, iso);
    }
    Py_DECREF(ev);
    Py_XDECREF(u);
    Py_XDECREF(iso);
    if (!done)
        return -1;
    int rc = PyList_Append(fires, done);
    Py_DECREF(done);
    return rc;
}

/* The branch (pattern) of a filter that matched: the one whose own group took part. */
static const Branch *branch_of(const Filter *f, const Slice *g, int ng) {
    for (int i = 0; i < f->nbranch; i++)
        if (f->br[i].bgroup < ng && g[f->br[i].bgroup].p)
            return &f->br[i];
    return NULL;
}

/* Detector._count for one matching line of pattern `b`: groups in `g` (index = group number, all `b` reads are
 * set), `line` in UTF-8. */
static int count_one(Engine *e, const Branch *b, const Slice *g, int ng, const char *line, Py_ssize_t llen,
                     int ascii, PyObject *line_obj, double ref, PyObject *fires) {
    e->branch_hits[b->info]++;
    Addr *addr = NULL;
    if (b->ip >= 0 && b->ip < ng && g[b->ip].p) {
        Addr *a = addr_of(e, g[b->ip].p, g[b->ip].n);
        if (!a)
            return -1;
        if (a->kind == 0) {
            e->bad_ip++;
        } else if (a->kind == 1) {
            e->allowlisted++;
            return 0;
        } else {
            addr = a;
        }
    }
    Slice user = {NULL, 0};
    if (b->user >= 0 && b->user < ng)
        user = g[b->user];
    int has_user = user.p && user.n > 0;
    if (b->login) {
        if (has_user && addr) {
            PyObject *u = str_of(user.p, user.n);
            if (!u)
                return -1;
            PyObject *r = PyObject_CallFunctionObjArgs(e->login, u, addr->addr, NULL);
            Py_DECREF(u);
            if (!r)
                return -1;
            Py_DECREF(r);
        }
        if (b->nrules == 0)
            return 0;
    }
    int64_t weight = 1, v;
    if (b->repeat >= 0 && b->repeat < ng && g[b->repeat].p && g[b->repeat].n) {
        if (group_int(&g[b->repeat], &v) < 0)
            return -1;
        weight = v < e->max_repeat ? v : e->max_repeat;
    }
    if (b->count >= 0 && b->count < ng && g[b->count].p && g[b->count].n) {
        if (group_int(&g[b->count], &v) < 0)
            return -1;
        weight = clamp40(weight) * clamp40(v);
        if (weight > e->max_repeat)
            weight = e->max_repeat;
    }
    if (weight <= 0)
        return 0;
    double ts;
    if (line_time(e, line, llen, ascii, line_obj, ref, &ts) < 0)
        return -1;
    if (addr && e->ip_hits != Py_None) {
        if (addr->pending++ == 0) {
            if (e->npending == e->cpending) {
                size_t cap = e->cpending ? e->cpending * 2 : 256;
                Addr **q = (Addr **)realloc(e->pending, cap * sizeof(Addr *));
                if (!q) {
                    PyErr_NoMemory();
                    return -1;
                }
                e->pending = q;
                e->cpending = cap;
            }
            e->pending[e->npending++] = addr;
        }
    }
    Py_ssize_t evn = utf8_prefix(line, llen, ascii, e->ev_chars);
    PyObject *user_obj = NULL; /* made only for a user-keyed rule without an address */
    uint64_t user_hash = 0;
    int user_hashed = 0;
    int rc = 0;
    for (int r = 0; r < b->nrules && rc == 0; r++) {
        int pi = b->plan[r];
        const char *key;
        Py_ssize_t kn;
        uint64_t kh;
        PyObject *source;
        if (e->plans[pi].by_ip) {
            if (!addr)
                continue;
            key = addr->kb;
            kn = addr->kl;
            kh = addr->kh;
            source = addr->addr;
        } else {
            if (!has_user)
                continue;
            key = user.p;
            kn = user.n;
            if (!user_hashed) {
                user_hash = hash_bytes(user.p, user.n, 0);
                user_hashed = 1;
            }
            kh = user_hash;
            if (addr) {
                source = addr->addr;
            } else {
                if (!user_obj && !(user_obj = str_of(user.p, user.n)))
                    return -1;
                source = PyDict_GetItemWithError(e->logins, user_obj);
                if (!source && PyErr_Occurred()) {
                    rc = -1;
                    break;
                }
            }
        }
        e->rule_hits[pi]++;
        int dg = b->distinct[r];
        Slice value = (dg >= 0 && dg < ng) ? g[dg] : (Slice){NULL, 0};
        rc = window_hit(e, pi, key, kn, kh, ts, weight, value, line, evn, user, source, fires);
    }
    Py_XDECREF(user_obj);
    return rc;
}

/* ---- scanning helpers ---------------------------------------------------------------------------------------- */

/* exact per-byte zero test: 0x80 in each byte of x that is zero */
static inline uint64_t zero_bytes(uint64_t x) {
    const uint64_t low7 = 0x7F7F7F7F7F7F7F7FULL;
    return ~(((x & low7) + low7) | x | low7);
}

/* Whether a chunk holds bytes only Python judges right (>= 0x80, CR, 0x1c-0x1f); counts its newlines too.
 * Eight bytes a step: this pass reads every byte of the file. */
static int classify(const uint8_t *u, Py_ssize_t n, Py_ssize_t *lines_out) {
    uint64_t bad = 0;
    Py_ssize_t lines = 0, i = 0;
#ifdef __SSE2__
    const __m128i cr = _mm_set1_epi8('\r'), lf = _mm_set1_epi8('\n'), fc = _mm_set1_epi8((char)0xFC),
                  fs = _mm_set1_epi8(0x1C), zero = _mm_setzero_si128();
    __m128i badv = zero;
    while (i + 16 <= n) {
        __m128i acc = zero; /* newline counts per byte lane: at most 255 steps before they are summed */
        for (int steps = 0; steps < 255 && i + 16 <= n; steps++, i += 16) {
            __m128i v = _mm_loadu_si128((const __m128i *)(u + i));
            badv = _mm_or_si128(badv, _mm_or_si128(v, _mm_or_si128(_mm_cmpeq_epi8(v, cr),
                                                                  _mm_cmpeq_epi8(_mm_and_si128(v, fc), fs))));
            acc = _mm_sub_epi8(acc, _mm_cmpeq_epi8(v, lf));
        }
        __m128i sums = _mm_sad_epu8(acc, zero);
        lines += (Py_ssize_t)(_mm_cvtsi128_si64(sums) + _mm_cvtsi128_si64(_mm_unpackhi_epi64(sums, sums)));
    }
    bad = (uint64_t)_mm_movemask_epi8(badv); /* high bit: a byte >= 0x80, or a CR / 0x1c-0x1f lane (all ones) */
#else
    const uint64_t ones = 0x0101010101010101ULL;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, u + i, 8);
        bad |= (w & (ones * 0x80)) | zero_bytes(w ^ (ones * '\r')) | zero_bytes((w & (ones * 0xFC)) ^ (ones * 0x1C));
        lines += (Py_ssize_t)((((zero_bytes(w ^ (ones * '\n')) >> 7) * ones) >> 56) & 0xFF);
    }
#endif
    for (; i < n; i++) {
        uint8_t c = u[i];
        bad |= (c & 0x80u) | (c == '\r') | ((uint8_t)(c - 0x1c) < 4);
        lines += c == '\n';
    }
    *lines_out = lines;
    return bad != 0;
}

/* memmem for a short needle in a short haystack (a line): no set-up cost */
static int has_literal(const char *hay, Py_ssize_t n, const char *needle, Py_ssize_t m) {
    if (m == 0)
        return 1;
    const char *end = hay + n - m;
    for (const char *p = hay; p <= end; p++) {
        p = (const char *)memchr(p, needle[0], (size_t)(end - p + 1));
        if (!p)
            return 0;
        if (memcmp(p + 1, needle + 1, (size_t)(m - 1)) == 0)
            return 1;
    }
    return 0;
}

/* How common a byte is in log text (lower = rarer): the chunk-wide search for a `require` literal scans for its
 * rarest byte with memchr, which is several times faster than glibc's memmem on text that lacks the literal. */
static int byte_rank(uint8_t c) {
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == ' ')
        return 3;
    if (strchr(".:-[]/()_,'\"", c) && c)
        return 2;
    return 1;
}

static int rare_index(const char *needle, Py_ssize_t m) {
    int best = 0;
    for (Py_ssize_t i = 1; i < m; i++)
        if (byte_rank((uint8_t)needle[i]) < byte_rank((uint8_t)needle[best]))
            best = (int)i;
    return best;
}

static int chunk_has(const char *s, Py_ssize_t n, const char *needle, Py_ssize_t m, int rare) {
    if (m == 0)
        return 1;
    const char *p = s + rare, *end = s + n - (m - rare); /* last place the rare byte can be */
    while (p <= end) {
        p = (const char *)memchr(p, needle[rare], (size_t)(end - p + 1));
        if (!p)
            return 0;
        if (memcmp(p - rare, needle, (size_t)m) == 0)
            return 1;
        p++;
    }
    return 0;
}

/* ---- Python API ----------------------------------------------------------------------------------------------- */

static void filter_clear(Filter *f) {
    if (f->md)
        P2.md_free(f->md);
    if (f->code)
        P2.code_free(f->code);
    for (int i = 0; i < f->nbranch; i++) {
        free(f->br[i].plan);
        free(f->br[i].distinct);
        free(f->br[i].need);
    }
    free(f->br);
    free(f->require);
}

static void Engine_dealloc(Engine *e) {
    for (int i = 0; i < e->nfilters; i++)
        filter_clear(&e->f[i]);
    free(e->f);
    for (int i = 0; e->plans && i < e->nplans; i++) {
        Plan *p = &e->plans[i];
        Py_XDECREF(p->anomaly);
        Py_XDECREF(p->name);
        Py_XDECREF(p->window_s);
        Py_XDECREF(p->severity);
        for (int j = 0; p->sev_level && j < p->nsev; j++)
            Py_XDECREF(p->sev_level[j]);
        free(p->sev_at);
        free(p->sev_level);
    }
    free(e->plans);
    free(e->branch_hits);
    free(e->rule_hits);
    if (e->states.tab) {
        Node *x = e->states.head.next;
        while (x != &e->states.head) {
            Node *nx = x->next;
            state_free((State *)x, e->ev_lines);
            x = nx;
        }
        free(e->states.tab);
    }
    if (e->addrs.tab) {
        addrs_clear(e);
        free(e->addrs.tab);
    }
    free(e->pending);
    free(e->kbuf);
    if (e->mctx)
        P2.mctx_free(e->mctx);
    if (e->jstack)
        P2.jstack_free(e->jstack);
    Py_XDECREF(e->resolve);
    Py_XDECREF(e->line_time);
    Py_XDECREF(e->minutes);
    Py_XDECREF(e->login);
    Py_XDECREF(e->logins);
    Py_XDECREF(e->ip_hits);
    Py_XDECREF(e->clock);
    Py_XDECREF(e->ev_type);
    Py_XDECREF(e->ev_fields);
    Py_XDECREF(e->schema);
    Py_XDECREF(e->sensor);
    Py_XDECREF(e->local_source);
    Py_XDECREF(e->empty);
    Py_TYPE(e)->tp_free((PyObject *)e);
}

/* Group numbers by name, from PCRE2's name table: the caller checks they are Python's. */
static PyObject *group_names(void *code) {
    uint32_t count = 0, size = 0;
    const uint8_t *table = NULL;
    P2.info(code, P2_INFO_NAMECOUNT, &count);
    P2.info(code, P2_INFO_NAMEENTRYSIZE, &size);
    P2.info(code, P2_INFO_NAMETABLE, &table);
    PyObject *d = PyDict_New();
    for (uint32_t i = 0; d && i < count; i++) {
        const uint8_t *ent = table + (size_t)i * size;
        PyObject *num = PyLong_FromLong((ent[0] << 8) | ent[1]);
        if (!num || PyDict_SetItemString(d, (const char *)ent + 2, num) < 0) {
            Py_XDECREF(num);
            Py_CLEAR(d);
            break;
        }
        Py_DECREF(num);
    }
    return d;
}

static int int_at(PyObject *seq, Py_ssize_t i, int *out) {
    long v = PyLong_AsLong(PyTuple_GET_ITEM(seq, i));
    if (v == -1 && PyErr_Occurred())
        return -1;
    *out = (int)v;
    return 0;
}

/* Engine(filters, plans, callbacks, limits) — see native.py for the shapes; raises ValueError for a pattern
 * PCRE2 rejects or numbers differently. */
static int Engine_init(Engine *e, PyObject *args, PyObject *kw) {
    PyObject *filters, *plans, *cb, *lim, *events = Py_None;
    static char *kwlist[] = {"filters", "plans", "callbacks", "limits", "events", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O!O!O!O!|O:Engine", kwlist, &PyList_Type, &filters, &PyList_Type,
                                     &plans, &PyTuple_Type, &cb, &PyTuple_Type, &lim, &events))
        return -1;
    if (pcre2_problem) {
        PyErr_SetString(PyExc_RuntimeError, pcre2_problem);
        return -1;
    }
    if (e->f) {
        PyErr_SetString(PyExc_RuntimeError, "Engine is initialised once");
        return -1;
    }
    long long lv[8];
    double slack;
    PyObject *c[7];
    long long cache_max;
    if (!PyArg_ParseTuple(cb, "OOOOOOO", &c[0], &c[1], &c[2], &c[3], &c[4], &c[5], &c[6]))
        return -1;
    e->clock = Py_NewRef(c[6]);
    e->resolve = Py_NewRef(c[0]);
    e->line_time = Py_NewRef(c[1]);
    e->minutes = Py_NewRef(c[2]);
    e->login = Py_NewRef(c[3]);
    e->logins = Py_NewRef(c[4]);
    e->ip_hits = Py_NewRef(c[5]);
    if (!PyDict_Check(e->minutes) || !PyDict_Check(e->logins) || (e->ip_hits != Py_None && !PyDict_Check(e->ip_hits))) {
        PyErr_SetString(PyExc_TypeError, "minutes, logins and ip_hits must be dicts");
        return -1;
    }
    if (!PyArg_ParseTuple(lim, "LLLLLLLdL", &lv[0], &lv[1], &lv[2], &lv[3], &lv[4], &lv[5], &lv[6], &slack,
                          &cache_max))
        return -1;
    e->minute_cache_max = (Py_ssize_t)cache_max;
    e->max_keys = lv[0];
    e->ev_lines = (int)lv[1];
    e->ev_chars = (Py_ssize_t)lv[2];
    e->max_distinct = lv[3];
    e->sweep_every = lv[4];
    e->max_repeat = lv[5];
    e->max_ip_counts = lv[6];
    e->future_slack = slack;
    e->addr_cache_max = 100000;
    if (e->ev_lines < 1 || e->sweep_every < 1 || e->max_keys < 1 || e->ev_chars < 0) {
        PyErr_SetString(PyExc_ValueError, "bad limits");
        return -1;
    }
    if (lru_init(&e->states, 1024) < 0 || lru_init(&e->addrs, 1024) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    e->nplans = (int)PyList_GET_SIZE(plans);
    e->plans = (Plan *)calloc((size_t)e->nplans + 1, sizeof(Plan));
    e->rule_hits = (int64_t *)calloc((size_t)e->nplans + 1, sizeof(int64_t));
    if (!e->plans || !e->rule_hits) {
        PyErr_NoMemory();
        return -1;
    }
    for (int i = 0; i < e->nplans; i++) {
        Plan *p = &e->plans[i];
        long long maxretry;
        PyObject *anomaly, *name, *window_s, *severity, *steps;
        if (!PyArg_ParseTuple(PyList_GET_ITEM(plans, i), "dddLpppUUOUO!", &p->findtime, &p->cooldown, &p->span,
                              &maxretry, &p->distinct, &p->by_ip, &p->trusted, &anomaly, &name, &window_s, &severity,
                              &PyTuple_Type, &steps))
            return -1;
        p->maxretry = maxretry;
        p->anomaly = Py_NewRef(anomaly);
        p->name = Py_NewRef(name);
        p->window_s = Py_NewRef(window_s);
        p->severity = Py_NewRef(severity);
        Py_ssize_t nsev = PyTuple_GET_SIZE(steps);
        p->sev_at = (int64_t *)calloc((size_t)nsev + 1, sizeof(int64_t));
        p->sev_level = (PyObject **)calloc((size_t)nsev + 1, sizeof(PyObject *));
        if (!p->sev_at || !p->sev_level) {
            PyErr_NoMemory();
            return -1;
        }
        for (Py_ssize_t j = 0; j < nsev; j++) {
            long long at;
            PyObject *level;
            if (!PyArg_ParseTuple(PyTuple_GET_ITEM(steps, j), "LU", &at, &level))
                return -1;
            p->sev_at[j] = at;
            p->sev_level[j] = Py_NewRef(level);
            p->nsev = (int)j + 1;
        }
    }
    e->empty = PyTuple_New(0);
    if (!e->empty)
        return -1;
    if (events != Py_None) {
        PyObject *type, *fields, *schema, *sensor, *local;
        long long max_count, user_chars;
        if (!PyArg_ParseTuple(events, "O!O!UOULL", &PyType_Type, &type, &PyTuple_Type, &fields, &schema, &sensor,
                              &local, &max_count, &user_chars))
            return -1;
        if (PyTuple_GET_SIZE(fields) != 14) {
            PyErr_SetString(PyExc_ValueError, "events: 14 field names expected");
            return -1;
        }
        e->ev_type = Py_NewRef(type);
        e->ev_fields = Py_NewRef(fields);
        e->schema = Py_NewRef(schema);
        e->sensor = Py_NewRef(sensor);
        e->local_source = Py_NewRef(local);
        e->max_count = max_count;
        e->user_chars = (Py_ssize_t)user_chars;
    }
    e->mctx = P2.mctx_create(NULL);
    e->jstack = P2.jstack_create(32 * 1024, 8 * 1024 * 1024, NULL);
    if (!e->mctx || !e->jstack) {
        PyErr_NoMemory();
        return -1;
    }
    P2.jstack_assign(e->mctx, NULL, e->jstack);
    int nf = (int)PyList_GET_SIZE(filters);
    e->f = (Filter *)calloc((size_t)nf + 1, sizeof(Filter));
    if (!e->f) {
        PyErr_NoMemory();
        return -1;
    }
    e->nfilters = nf;
    int nbranches = 0;
    for (int i = 0; i < nf; i++) {
        PyObject *item = PyList_GET_ITEM(filters, i), *pattern, *require, *names, *branches;
        int groups;
        if (!PyArg_ParseTuple(item, "O!OiO!O!", &PyBytes_Type, &pattern, &require, &groups, &PyDict_Type, &names,
                              &PyList_Type, &branches))
            return -1;
        Filter *f = &e->f[i];
        int err = 0;
        size_t erroff = 0;
        f->code = P2.compile((const uint8_t *)PyBytes_AS_STRING(pattern), (size_t)PyBytes_GET_SIZE(pattern),
                             P2_MULTILINE | P2_ALT_CIRCUMFLEX, &err, &erroff, NULL);
        if (!f->code) {
            uint8_t msg[256];
            P2.errmsg(err, msg, sizeof msg);
            PyErr_Format(PyExc_ValueError, "PCRE2 rejects filter %d at offset %zu: %s", i, erroff, (char *)msg);
            return -1;
        }
        P2.jit_compile(f->code, P2_JIT_COMPLETE); /* no JIT on this platform: the interpreter gives the same */
        uint32_t cap = 0;
        P2.info(f->code, P2_INFO_CAPTURECOUNT, &cap);
        PyObject *mine = group_names(f->code);
        if (!mine)
            return -1;
        int same = PyObject_RichCompareBool(mine, names, Py_EQ);
        Py_DECREF(mine);
        if (same < 0)
            return -1;
        if ((int)cap != groups || !same) {
            PyErr_Format(PyExc_ValueError, "PCRE2 numbers the groups of filter %d differently", i);
            return -1;
        }
        f->ncap = (int)cap + 1;
        f->md = P2.md_create(f->code, NULL);
        if (!f->md) {
            PyErr_NoMemory();
            return -1;
        }
        if (require != Py_None) {
            if (!PyBytes_Check(require)) {
                PyErr_SetString(PyExc_TypeError, "require must be bytes or None");
                return -1;
            }
            f->rlen = PyBytes_GET_SIZE(require);
            f->require = (char *)malloc((size_t)f->rlen + 1);
            if (!f->require) {
                PyErr_NoMemory();
                return -1;
            }
            memcpy(f->require, PyBytes_AS_STRING(require), (size_t)f->rlen);
            f->rare = rare_index(f->require, f->rlen);
        }
        int nb = (int)PyList_GET_SIZE(branches);
        f->br = (Branch *)calloc((size_t)nb + 1, sizeof(Branch));
        if (!f->br) {
            PyErr_NoMemory();
            return -1;
        }
        f->nbranch = nb;
        for (int j = 0; j < f->nbranch; j++) {
            PyObject *bt = PyList_GET_ITEM(branches, j);
            Branch *b = &f->br[j];
            if (!PyTuple_Check(bt) || PyTuple_GET_SIZE(bt) != 7 || !PyTuple_Check(PyTuple_GET_ITEM(bt, 6))) {
                PyErr_SetString(PyExc_TypeError, "branch: (bgroup, ip, user, repeat, count, login, rules)");
                return -1;
            }
            if (int_at(bt, 0, &b->bgroup) || int_at(bt, 1, &b->ip) || int_at(bt, 2, &b->user) ||
                int_at(bt, 3, &b->repeat) || int_at(bt, 4, &b->count) || int_at(bt, 5, &b->login))
                return -1;
            b->info = nbranches++;
            PyObject *rules = PyTuple_GET_ITEM(bt, 6);
            b->nrules = (int)PyTuple_GET_SIZE(rules);
            b->plan = (int *)calloc((size_t)b->nrules + 1, sizeof(int));
            b->distinct = (int *)calloc((size_t)b->nrules + 1, sizeof(int));
            if (!b->plan || !b->distinct) {
                PyErr_NoMemory();
                return -1;
            }
            for (int r = 0; r < b->nrules; r++) {
                PyObject *rt = PyTuple_GET_ITEM(rules, r);
                if (!PyTuple_Check(rt) || PyTuple_GET_SIZE(rt) != 2 || int_at(rt, 0, &b->plan[r]) ||
                    int_at(rt, 1, &b->distinct[r]))
                    return PyErr_Occurred() ? -1 : (PyErr_SetString(PyExc_TypeError, "rule: (plan, group)"), -1);
                if (b->plan[r] < 0 || b->plan[r] >= e->nplans) {
                    PyErr_SetString(PyExc_ValueError, "rule index out of range");
                    return -1;
                }
            }
            b->need = (int *)calloc((size_t)b->nrules + 5, sizeof(int));
            if (!b->need) {
                PyErr_NoMemory();
                return -1;
            }
            int cand[4] = {b->ip, b->user, b->repeat, b->count};
            for (int k = 0; k < 4 + b->nrules; k++) {
                int gi = k < 4 ? cand[k] : b->distinct[k - 4], dup = 0;
                for (int m = 0; m < b->nneed; m++)
                    dup |= b->need[m] == gi;
                if (gi < 0 || gi > (int)cap || dup)
                    continue;
                b->need[b->nneed++] = gi;
            }
        }
    }
    e->nbranches = nbranches;
    e->branch_hits = (int64_t *)calloc((size_t)nbranches + 1, sizeof(int64_t));
    if (!e->branch_hits) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static int push_hit(Lines *f, const Filter *flt, Py_ssize_t ls, Py_ssize_t le, const size_t *ov, int rc,
                    Py_ssize_t shift) {
    int br = -1;
    for (int i = 0; i < flt->nbranch && br < 0; i++)
        if (flt->br[i].bgroup < rc && ov[2 * flt->br[i].bgroup] != P2_UNSET)
            br = i;
    if (br < 0)
        return 0;
    const Branch *b = &flt->br[br];
    if (f->nhits == f->chits) {
        size_t cap = f->chits ? f->chits * 2 : 1024;
        Hit *q = (Hit *)realloc(f->hits, cap * sizeof(Hit));
        if (!q)
            return -1;
        f->hits = q;
        f->chits = cap;
    }
    size_t need = (size_t)b->nneed * 2;
    if (f->npool + need > f->cpool) {
        size_t cap = f->cpool ? f->cpool * 2 : 8192;
        while (cap < f->npool + need)
            cap *= 2;
        Py_ssize_t *q = (Py_ssize_t *)realloc(f->pool, cap * sizeof(Py_ssize_t));
        if (!q)
            return -1;
        f->pool = q;
        f->cpool = cap;
    }
    Hit *h = &f->hits[f->nhits++];
    h->ls = ls;
    h->le = le;
    h->ov = f->npool;
    h->br = br;
    for (int k = 0; k < b->nneed; k++) {
        int gi = b->need[k];
        int set = gi < rc && ov[2 * gi] != P2_UNSET;
        f->pool[f->npool++] = set ? (Py_ssize_t)ov[2 * gi] + shift : -1;
        f->pool[f->npool++] = set ? (Py_ssize_t)ov[2 * gi + 1] + shift : -1;
    }
    return 0;
}

enum { FOUND_OK = 1, FOUND_REFUSED = 0, FOUND_NOMEM = -1 };

/* Phase 1 for one filter: every judged line's match (see _Scan.lines). Runs without the GIL. */
static int find_lines(Engine *e, const Filter *f, Lines *out, const char *s, Py_ssize_t size) {
    const uint8_t *u = (const uint8_t *)s;
    size_t *ov = P2.ovector(f->md);
    Py_ssize_t pos = 0;
    while (pos <= size) {
        int rc = P2.match(f->code, u, (size_t)size, (size_t)pos, 0, f->md, e->mctx);
        if (rc == P2_ERROR_NOMATCH)
            return FOUND_OK;
        if (rc <= 0)
            return FOUND_REFUSED;
        Py_ssize_t p = (Py_ssize_t)ov[0];
        const char *nl = p > 0 ? (const char *)memrchr(s, '\n', (size_t)p) : NULL;
        Py_ssize_t ls = nl ? nl - s + 1 : 0;
        nl = (const char *)memchr(s + p, '\n', (size_t)(size - p));
        Py_ssize_t le = nl ? nl - s : size;
        Py_ssize_t shift = 0;
        if ((Py_ssize_t)ov[1] > le) { /* ran into the next line: judge this line alone */
            rc = P2.match(f->code, u + ls, (size_t)(le - ls), 0, 0, f->md, e->mctx);
            if (rc == P2_ERROR_NOMATCH) {
                pos = le + 1;
                continue;
            }
            if (rc <= 0)
                return FOUND_REFUSED;
            shift = ls;
        }
        /* require: the literal is usually inside the match itself (sshd's prefix names "sshd"), so look there first */
        Py_ssize_t ms = (Py_ssize_t)ov[0] + shift, me = (Py_ssize_t)ov[1] + shift;
        if (!f->require || has_literal(s + ms, me - ms, f->require, f->rlen) ||
            has_literal(s + ls, le - ls, f->require, f->rlen)) {
            if (push_hit(out, f, ls, le, ov, rc, shift) < 0)
                return FOUND_NOMEM;
        }
        pos = le + 1;
    }
    return FOUND_OK;
}

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

static void found_release(Found *fd) {
    if (fd->lines_of) {
        for (int i = 0; i < fd->nfilters; i++) {
            free(fd->lines_of[i].hits);
            free(fd->lines_of[i].pool);
        }
        free(fd->lines_of);
        fd->lines_of = NULL;
    }
    if (fd->has_view) {
        PyBuffer_Release(&fd->view);
        fd->has_view = 0;
    }
}

static void Found_dealloc(Found *fd) {
    found_release(fd);
    Py_XDECREF(fd->owner);
    Py_TYPE(fd)->tp_free((PyObject *)fd);
}

static PyTypeObject FoundType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "pilot_tui.detect._native.Found",
    .tp_basicsize = sizeof(Found),
    .tp_dealloc = (destructor)Found_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A chunk's matches from Engine.prepare(), for Engine.count_found().",
};

/* Classify the chunk and run every filter over it; no Python object is touched (the GIL is released). */
static int phase1(Engine *e, Found *fd) {
    const char *s = (const char *)fd->view.buf;
    Py_ssize_t size = fd->view.len;
    if (classify((const uint8_t *)s, size, &fd->lines))
        return FOUND_REFUSED;
    if (size && s[size - 1] != '\n')
        fd->lines++;
    for (int i = 0; i < e->nfilters; i++) {
        const Filter *f = &e->f[i];
        Lines *out = &fd->lines_of[i];
        if (f->require) { /* each distinct literal is looked for once per chunk */
            int present = -1;
            for (int j = 0; j < i && present < 0; j++)
                if (e->f[j].require && e->f[j].rlen == f->rlen &&
                    memcmp(e->f[j].require, f->require, (size_t)f->rlen) == 0)
                    present = fd->lines_of[j].present;
            out->present = present >= 0 ? present : chunk_has(s, size, f->require, f->rlen, f->rare);
            if (!out->present)
                continue;
        }
        int rc = find_lines(e, f, out, s, size);
        if (rc != FOUND_OK)
            return rc;
    }
    return FOUND_OK;
}

static int engine_ready(Engine *e) {
    if (!e->f) {
        PyErr_SetString(PyExc_RuntimeError, "Engine not initialised");
        return 0;
    }
    return 1;
}

/* prepare(buffer) -> Found, or None when Python must scan this chunk (see the top). Releases the GIL while it
 * reads the chunk and runs the filters' regexes, so the next chunk can be matched while this one is counted. */
static PyObject *Engine_prepare(Engine *e, PyObject *args) {
    if (!engine_ready(e))
        return NULL;
    Found *fd = PyObject_New(Found, &FoundType);
    if (!fd)
        return NULL;
    fd->owner = (Engine *)Py_NewRef(e);
    fd->has_view = 0;
    fd->lines = 0;
    fd->nfilters = e->nfilters;
    fd->lines_of = (Lines *)calloc((size_t)e->nfilters + 1, sizeof(Lines));
    if (!fd->lines_of) {
        Py_DECREF(fd);
        return PyErr_NoMemory();
    }
    if (!PyArg_ParseTuple(args, "y*:prepare", &fd->view)) {
        Py_DECREF(fd);
        return NULL;
    }
    fd->has_view = 1;
    if (e->busy) {
        Py_DECREF(fd);
        PyErr_SetString(PyExc_RuntimeError, "prepare() is already running on this Engine");
        return NULL;
    }
    e->busy = 1;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = phase1(e, fd);
    Py_END_ALLOW_THREADS
    e->busy = 0;
    if (rc == FOUND_OK)
        return (PyObject *)fd;
    Py_DECREF(fd);
    if (rc == FOUND_NOMEM)
        return PyErr_NoMemory();
    Py_RETURN_NONE;
}

/* count_found(found, ref) -> (lines, matched_lines, fires): phase 2 — the filters' judged lines merged by (line
 * start, filter index), each counted as Detector._count counts it. A Found is counted once. */
static PyObject *Engine_count_found(Engine *e, PyObject *args) {
    Found *fd;
    double ref;
    e->ref_year = 0;
    if (!engine_ready(e) ||
        !PyArg_ParseTuple(args, "O!dO|i:count_found", &FoundType, &fd, &ref, &e->cur_log, &e->ref_year))
        return NULL;
    if (fd->owner != e || !fd->lines_of) {
        PyErr_SetString(PyExc_ValueError, "this Found is another engine's or was counted already");
        return NULL;
    }
    const char *s = (const char *)fd->view.buf;
    PyObject *result = NULL, *fires = PyList_New(0);
    size_t *at = (size_t *)calloc((size_t)e->nfilters + 1, sizeof(size_t));
    int gcap = 1;
    for (int i = 0; i < e->nfilters; i++)
        if (e->f[i].ncap > gcap)
            gcap = e->f[i].ncap;
    Slice *g = (Slice *)calloc((size_t)gcap + 1, sizeof(Slice));
    if (!fires || !at || !g) {
        if (fires)
            PyErr_NoMemory();
        goto done;
    }
    e->memo_valid = 0;
    Py_ssize_t matched = 0, last_line = -1;
    for (;;) {
        int best = -1;
        Py_ssize_t best_ls = 0;
        for (int i = 0; i < e->nfilters; i++) {
            const Lines *l = &fd->lines_of[i];
            if (at[i] < l->nhits && (best < 0 || l->hits[at[i]].ls < best_ls)) {
                best = i;
                best_ls = l->hits[at[i]].ls;
            }
        }
        if (best < 0)
            break;
        const Lines *l = &fd->lines_of[best];
        const Hit *h = &l->hits[at[best]++];
        if (h->ls != last_line) {
            matched++;
            last_line = h->ls;
        }
        const Py_ssize_t *ov = l->pool + h->ov;
        const Branch *b = &e->f[best].br[h->br];
        for (int k = 0; k < b->nneed; k++)
            g[b->need[k]] = ov[2 * k] < 0 ? (Slice){NULL, 0} : (Slice){s + ov[2 * k], ov[2 * k + 1] - ov[2 * k]};
        if (count_one(e, b, g, e->f[best].ncap, s + h->ls, h->le - h->ls, 1, NULL, ref, fires) < 0)
            goto done;
    }
    if (flush_ip_hits(e) < 0)
        goto done;
    result = Py_BuildValue("(nnO)", fd->lines, matched, fires);
done:
    free(at);
    free(g);
    Py_XDECREF(fires);
    found_release(fd);
    return result;
}

/* scan(buffer, ref) -> (lines, matched_lines, fires), or None when Python must scan this chunk: prepare() and
 * count_found() in one call. */
static PyObject *Engine_scan(Engine *e, PyObject *args) {
    PyObject *buffer, *log;
    double ref;
    int ref_year = 0;
    if (!PyArg_ParseTuple(args, "OdO|i:scan", &buffer, &ref, &log, &ref_year))
        return NULL;
    PyObject *fd = PyObject_CallMethod((PyObject *)e, "prepare", "O", buffer);
    if (!fd || fd == Py_None)
        return fd;
    PyObject *r = PyObject_CallMethod((PyObject *)e, "count_found", "OdOi", fd, ref, log, ref_year);
    Py_DECREF(fd);
    return r;
}

/* count(filter, groups, line, ref, log) -> fires: one match found by Python's re (groups = match.groups()). */
static PyObject *Engine_count(Engine *e, PyObject *args) {
    int fi;
    PyObject *groups, *line;
    double ref;
    if (!engine_ready(e))
        return NULL;
    e->ref_year = 0;
    if (!PyArg_ParseTuple(args, "iO!UdO|i:count", &fi, &PyTuple_Type, &groups, &line, &ref, &e->cur_log,
                          &e->ref_year))
        return NULL;
    if (fi < 0 || fi >= e->nfilters) {
        PyErr_SetString(PyExc_IndexError, "filter index out of range");
        return NULL;
    }
    Filter *f = &e->f[fi];
    Py_ssize_t ng = PyTuple_GET_SIZE(groups) + 1;
    if (ng > f->ncap)
        ng = f->ncap;
    Slice *g = (Slice *)calloc((size_t)f->ncap + 1, sizeof(Slice));
    if (!g)
        return PyErr_NoMemory();
    g[0] = (Slice){"", 0};
    for (Py_ssize_t k = 1; k < ng; k++) {
        PyObject *t = PyTuple_GET_ITEM(groups, k - 1);
        if (t == Py_None)
            continue;
        if (!PyUnicode_Check(t)) {
            free(g);
            PyErr_SetString(PyExc_TypeError, "groups must be str or None");
            return NULL;
        }
        g[k].p = PyUnicode_AsUTF8AndSize(t, &g[k].n);
        if (!g[k].p) {
            free(g);
            return NULL;
        }
    }
    Py_ssize_t llen;
    const char *lp = PyUnicode_AsUTF8AndSize(line, &llen);
    PyObject *fires = lp ? PyList_New(0) : NULL;
    e->memo_valid = 0;
    const Branch *b = branch_of(f, g, (int)ng);
    if (fires && ((b && count_one(e, b, g, (int)ng, lp, llen, PyUnicode_IS_ASCII(line), line, ref, fires) < 0) ||
                  flush_ip_hits(e) < 0))
        Py_CLEAR(fires);
    free(g);
    return fires;
}

/* take_counts() -> (pattern hits per branch, hits per rule, bad_ip, allowlisted), then zeroes them */
static PyObject *Engine_take_counts(Engine *e, PyObject *Py_UNUSED(ignored)) {
    if (!engine_ready(e))
        return NULL;
    PyObject *b = PyList_New(e->nbranches), *r = PyList_New(e->nplans);
    if (!b || !r)
        goto fail;
    for (int i = 0; i < e->nbranches; i++) {
        PyObject *v = PyLong_FromLongLong(e->branch_hits[i]);
        if (!v)
            goto fail;
        PyList_SET_ITEM(b, i, v);
    }
    for (int i = 0; i < e->nplans; i++) {
        PyObject *v = PyLong_FromLongLong(e->rule_hits[i]);
        if (!v)
            goto fail;
        PyList_SET_ITEM(r, i, v);
    }
    PyObject *out = Py_BuildValue("(NNLL)", b, r, (long long)e->bad_ip, (long long)e->allowlisted);
    if (!out)
        return NULL;
    memset(e->branch_hits, 0, (size_t)e->nbranches * sizeof(int64_t));
    memset(e->rule_hits, 0, (size_t)e->nplans * sizeof(int64_t));
    e->bad_ip = e->allowlisted = 0;
    return out;
fail:
    Py_XDECREF(b);
    Py_XDECREF(r);
    return NULL;
}

static Py_ssize_t Engine_len(Engine *e) { return (Py_ssize_t)e->states.len; }

static PyObject *Engine_get_evicted(Engine *e, void *Py_UNUSED(c)) { return PyLong_FromLongLong(e->evicted); }

static PyMethodDef Engine_methods[] = {
    {"scan", (PyCFunction)Engine_scan, METH_VARARGS,
     "scan(buffer, ref, log) -> (lines, matched_lines, fires) or None if Python must scan this chunk"},
    {"prepare", (PyCFunction)Engine_prepare, METH_VARARGS,
     "prepare(buffer) -> Found (the chunk matched, GIL released) or None if Python must scan this chunk"},
    {"count_found", (PyCFunction)Engine_count_found, METH_VARARGS,
     "count_found(found, ref, log) -> (lines, matched_lines, fires)"},
    {"count", (PyCFunction)Engine_count, METH_VARARGS, "count(filter, groups, line, ref, log) -> fires"},
    {"take_counts", (PyCFunction)Engine_take_counts, METH_NOARGS,
     "take_counts() -> (branch hits, rule hits, bad_ip, allowlisted) since the last call"},
    {NULL, NULL, 0, NULL}};

static PyGetSetDef Engine_getset[] = {
    {"evicted", (getter)Engine_get_evicted, NULL, "keys dropped because max_keys were tracked", NULL},
    {NULL, NULL, NULL, NULL, NULL}};

static PySequenceMethods Engine_as_sequence = {.sq_length = (lenfunc)Engine_len};

static PyTypeObject EngineType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "pilot_tui.detect._native.Engine",
    .tp_basicsize = sizeof(Engine),
    .tp_dealloc = (destructor)Engine_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The scan engine's hot path (see the module source); built by pilot_tui.detect.native.",
    .tp_methods = Engine_methods,
    .tp_getset = Engine_getset,
    .tp_as_sequence = &Engine_as_sequence,
    .tp_init = (initproc)Engine_init,
    .tp_new = PyType_GenericNew,
};

static PyMethodDef module_methods[] = {
    {"syslog_pair", py_syslog_pair, METH_VARARGS,
     "syslog_pair(key12, year) -> (this year, year before) | None | 'python' (see timeparse._syslog_pair)"},
    {"iso_utc", py_iso_utc, METH_VARARGS, "iso_utc(ts) -> str | None (see timeparse.iso_utc)"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, .m_name = "_native", .m_methods = module_methods,
                                    .m_doc = "C hot path of pilot-tui's scanner (PCRE2 through dlopen).",
                                    .m_size = -1};

PyMODINIT_FUNC PyInit__native(void) {
    load_pcre2();
    if (PyType_Ready(&EngineType) < 0 || PyType_Ready(&FoundType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m)
        return NULL;
    if (PyModule_AddObject(m, "Engine", Py_NewRef((PyObject *)&EngineType)) < 0 ||
        PyModule_AddObject(m, "PCRE2_PROBLEM",
                           pcre2_problem ? PyUnicode_FromString(pcre2_problem) : Py_NewRef(Py_None)) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
