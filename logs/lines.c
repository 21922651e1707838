/* Line reader and log file listing (see eastrace/loglines.h). */
#include "eastrace/loglines.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#define READ_CHUNK (256u * 1024u)

int et_loglines_open_file(struct et_loglines *r, const char *path, struct et_error *e)
{
    memset(r, 0, sizeof(*r));
    gzFile gz = gzopen(path, "rb");
    if (gz == NULL) {
        et_error_set(e, errno == ENOMEM ? ET_ENOMEM : ET_EIO, "%s: %s", path,
                     errno ? strerror(errno) : "cannot open");
        return e->code;
    }
    gzbuffer(gz, 128 * 1024);
    r->gz = gz;
    return 0;
}

void et_loglines_open_mem(struct et_loglines *r, const void *data, size_t len)
{
    memset(r, 0, sizeof(*r));
    r->mem = data;
    r->memlen = len;
}

/* zlib's message without the path it puts first ("FILE: unexpected end of file"): the caller
 * names the file once. */
static const char *gz_reason(const char *m)
{
    const char *sep = m != NULL ? strstr(m, ": ") : NULL;
    return m == NULL ? "" : sep != NULL ? sep + 2 : m;
}

static int fill(struct et_loglines *r, struct et_error *e)
{
    if (r->start > 0) {
        memmove(r->buf, r->buf + r->start, r->end - r->start);
        r->end -= r->start;
        r->start = 0;
    }
    if (r->cap - r->end < READ_CHUNK) {
        size_t ncap = r->cap ? r->cap * 2 : READ_CHUNK * 2;
        if (ncap > ET_LOGLINE_MAX + READ_CHUNK * 2)
            ncap = ET_LOGLINE_MAX + READ_CHUNK * 2;
        if (ncap > r->cap) {
            uint8_t *nb = et_realloc(r->buf, ncap);
            if (nb == NULL) {
                et_error_set(e, ET_ENOMEM, "line buffer");
                return ET_ENOMEM;
            }
            r->buf = nb;
            r->cap = ncap;
        }
    }
    size_t room = r->cap - r->end;
    if (room == 0)
        return 0;
    int n = gzread((gzFile)r->gz, r->buf + r->end, (unsigned)(room > INT32_MAX ? INT32_MAX : room));
    if (n < 0) {
        int zerr = 0;
        const char *m = gz_reason(gzerror((gzFile)r->gz, &zerr));
        et_error_set_at(e, ET_EIO, r->off + (r->end - r->start), "read failed: %s", m);
        return ET_EIO;
    }
    if (n == 0) {
        /* gzread returns 0 at the end; a gzip stream cut short shows as Z_BUF_ERROR. */
        int zerr = 0;
        const char *m = gz_reason(gzerror((gzFile)r->gz, &zerr));
        if (zerr != Z_OK && zerr != Z_STREAM_END) {
            et_error_set_at(e, ET_ETRUNC, r->off + (r->end - r->start), "gzip: %s", m);
            r->eof = 1;
            return ET_ETRUNC;
        }
        r->eof = 1;
    }
    r->end += (size_t)n;
    return 0;
}

int et_loglines_next(struct et_loglines *r, const char **line, size_t *len, struct et_error *e)
{
    if (r->mem != NULL || r->gz == NULL) {
        if (r->off >= r->memlen)
            return 0;
        const uint8_t *p = r->mem + r->off;
        size_t left = r->memlen - (size_t)r->off;
        const uint8_t *nl = memchr(p, '\n', left);
        size_t l = nl ? (size_t)(nl - p) : left;
        r->line_off = r->off;
        r->off += l + (nl ? 1 : 0);
        r->lineno++;
        if (l > ET_LOGLINE_MAX) {
            et_error_set_at(e, ET_ETOOBIG, r->line_off, "line %llu longer than %u bytes",
                            (unsigned long long)r->lineno, ET_LOGLINE_MAX);
            return ET_ETOOBIG;
        }
        *line = (const char *)p;
        *len = l;
        return 1;
    }
    int skipping = 0;
    for (;;) {
        size_t avail = r->end - r->start;
        const uint8_t *p = r->buf ? r->buf + r->start : NULL;
        const uint8_t *nl = avail ? memchr(p, '\n', avail) : NULL;
        if (nl != NULL || (r->eof && avail > 0)) {
            size_t l = nl ? (size_t)(nl - p) : avail;
            size_t adv = l + (nl ? 1 : 0);
            r->line_off = r->off;
            r->off += adv;
            r->start += adv;
            if (skipping) {
                et_error_set_at(e, ET_ETOOBIG, r->line_off, "line %llu longer than %u bytes",
                                (unsigned long long)r->lineno, ET_LOGLINE_MAX);
                return ET_ETOOBIG;
            }
            r->lineno++;
            *line = (const char *)p;
            *len = l;
            return 1;
        }
        if (r->eof)
            return 0;
        if (avail >= ET_LOGLINE_MAX) {
            /* Drop what we have of the overlong line and keep reading to its end. */
            if (!skipping)
                r->lineno++;
            skipping = 1;
            r->off += avail;
            r->start = r->end;
        }
        int rc = fill(r, e);
        if (rc < 0)
            return rc;
    }
}

void et_loglines_close(struct et_loglines *r)
{
    if (r->gz != NULL)
        gzclose((gzFile)r->gz);
    r->gz = NULL;
    et_free(r->buf);
    r->buf = NULL;
}

static int wanted(const char *name)
{
    size_t n = strlen(name);
    if (n > 4 && et_strcaseeq(name + n - 4, ".log"))
        return 1;
    if (n > 7 && et_strcaseeq(name + n - 7, ".log.gz"))
        return 1;
    return 0;
}

struct list {
    char **v;
    size_t n, cap;
};

static int list_add(struct list *l, const char *path)
{
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 16;
        char **nv = et_realloc(l->v, nc * sizeof(*nv));
        if (nv == NULL)
            return ET_ENOMEM;
        l->v = nv;
        l->cap = nc;
    }
    l->v[l->n] = et_strdup(path);
    if (l->v[l->n] == NULL)
        return ET_ENOMEM;
    l->n++;
    return 0;
}

static int walk(struct list *l, const char *dir, int depth, struct et_error *e)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int rc = 0;
    if (d == NULL) {
        et_error_set(e, ET_EIO, "%s: %s", dir, strerror(errno));
        return ET_EIO;
    }
    while (rc == 0 && (de = readdir(d)) != NULL) {
        char sub[4096];
        struct stat st;
        if (de->d_name[0] == '.')
            continue;
        if ((size_t)snprintf(sub, sizeof(sub), "%s/%s", dir, de->d_name) >= sizeof(sub))
            continue;
        if (stat(sub, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            if (depth < 4)
                rc = walk(l, sub, depth + 1, e);
        } else if (S_ISREG(st.st_mode) && wanted(de->d_name)) {
            rc = list_add(l, sub);
            if (rc < 0)
                et_error_set(e, rc, "file list");
        }
    }
    closedir(d);
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int et_logfiles_list(const char *path, char ***files, size_t *n, struct et_error *e)
{
    struct stat st;
    struct list l = {0};
    int rc;

    *files = NULL;
    *n = 0;
    if (stat(path, &st) != 0) {
        et_error_set(e, ET_EIO, "%s: %s", path, strerror(errno));
        return ET_EIO;
    }
    if (S_ISDIR(st.st_mode)) {
        rc = walk(&l, path, 0, e);
        if (rc == 0 && l.n == 0) {
            et_error_set(e, ET_ENOTFOUND, "%s: no *.log or *.log.gz files", path);
            rc = ET_ENOTFOUND;
        }
    } else {
        rc = list_add(&l, path);
        if (rc < 0)
            et_error_set(e, rc, "file list");
    }
    if (rc < 0) {
        et_logfiles_free(l.v, l.n);
        return rc;
    }
    qsort(l.v, l.n, sizeof(*l.v), cmp_str);
    *files = l.v;
    *n = l.n;
    return 0;
}

void et_logfiles_free(char **files, size_t n)
{
    for (size_t i = 0; i < n; i++)
        et_free(files[i]);
    et_free(files);
}
