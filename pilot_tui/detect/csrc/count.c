/* Detector._count for one matching line: address, user, weight, time, then each rule's window. */
#include "native.h"

/* ip_hits[addr] += pending, for addresses in the order of their first pending hit (see engine.py: MAX_IP_COUNTS) */
int flush_ip_hits(Engine *e) {
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

void addrs_clear(Engine *e) {
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
Py_ssize_t utf8_prefix(const char *p, Py_ssize_t n, int ascii, Py_ssize_t chars) {
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

/* The branch (pattern) of a filter that matched: the one whose own group took part. */
const Branch *branch_of(const Filter *f, const Slice *g, int ng) {
    for (int i = 0; i < f->nbranch; i++)
        if (f->br[i].bgroup < ng && g[f->br[i].bgroup].p)
            return &f->br[i];
    return NULL;
}

/* Detector._count for one matching line of pattern `b`: groups in `g` (index = group number, all `b` reads are
 * set), `line` in UTF-8. */
int count_one(Engine *e, const Branch *b, const Slice *g, int ng, const char *line, Py_ssize_t llen,
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
