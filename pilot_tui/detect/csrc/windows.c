/* Tracker.hit (pilot_tui/detect/window.py) in C, and the events of fired windows. */
#include "native.h"

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

void state_free(State *st, int ev_lines) {
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
int window_hit(Engine *e, int pi, const char *key, Py_ssize_t kn, uint64_t kh, double ts, int64_t weight, Slice value,
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
