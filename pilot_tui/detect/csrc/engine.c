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
#include "native.h"

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
    long long addr_cache_max;
    if (!PyArg_ParseTuple(lim, "LLLLLLLdLL", &lv[0], &lv[1], &lv[2], &lv[3], &lv[4], &lv[5], &lv[6], &slack,
                          &cache_max, &addr_cache_max))
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
    e->addr_cache_max = addr_cache_max;
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
