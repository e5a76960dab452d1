/* Whole chunks: classified and matched without the GIL (prepare), then counted in line order (count_found). */
#include "native.h"

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

int rare_index(const char *needle, Py_ssize_t m) {
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

PyTypeObject FoundType = {
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

/* prepare(buffer) -> Found, or None when Python must scan this chunk (see the top). Releases the GIL while it
 * reads the chunk and runs the filters' regexes, so the next chunk can be matched while this one is counted. */
PyObject *Engine_prepare(Engine *e, PyObject *args) {
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
PyObject *Engine_count_found(Engine *e, PyObject *args) {
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
PyObject *Engine_scan(Engine *e, PyObject *args) {
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
