/* Times as pilot_tui.detect.timeparse computes them, to the bit: iso_utc and syslog minutes. */
#include "native.h"

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
int syslog_pair(const char *k, int year, double *a, double *b) {
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

PyObject *py_syslog_pair(PyObject *Py_UNUSED(m), PyObject *args) {
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

/* timeparse.iso_utc(ts) for 1970-9999 (else None: Python formats it): days to a civil date as in proleptic
 * Gregorian (H. Hinnant's algorithm), the rest by arithmetic, milliseconds truncated as int() does. */
PyObject *iso_utc(double ts) {
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

PyObject *py_iso_utc(PyObject *Py_UNUSED(m), PyObject *args) {
    double ts;
    if (!PyArg_ParseTuple(args, "d:iso_utc", &ts))
        return NULL;
    return iso_utc(ts);
}
