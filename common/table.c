/* The table renderer (see eastrace/table.h). */
#include "eastrace/table.h"

#include <string.h>

#define TEXT_MAX_WIDTH 40
#define TABLE_MAX_COLS 256

int et_table_is_number(const char *s)
{
    int dot = 0, digits = 0;
    if (s == NULL || *s == '\0')
        return 0;
    for (; *s; s++) {
        if (*s == '.' && !dot && digits > 0) {
            dot = 1;
            digits = 0;
        } else if (*s >= '0' && *s <= '9') {
            digits++;
        } else {
            return 0;
        }
    }
    return digits > 0;
}

static const char *cell(const struct et_table *t, size_t r, int c)
{
    const char *s = t->cells[r * (size_t)t->ncols + (size_t)c];
    return s != NULL ? s : "";
}

int et_csv_cell(struct et_buf *out, const char *s)
{
    int rc = 0;
    int formula = s[0] == '=' || s[0] == '+' || s[0] == '-' || s[0] == '@' || s[0] == '\t' ||
                  s[0] == '\r';
    /* A negative number is data, not a formula: keep "-5" as it is. */
    if (formula && s[0] == '-' && et_table_is_number(s + 1) && strchr(s, '.') == NULL)
        formula = 0;
    if (strpbrk(s, ",\"\r\n") == NULL)
        return formula ? (et_buf_putc(out, '\'') || et_buf_puts(out, s) ? ET_ENOMEM : 0)
                       : et_buf_puts(out, s);
    rc = et_buf_putc(out, '"');
    if (rc == 0 && formula)
        rc = et_buf_putc(out, '\'');
    const char *run = s;
    for (const char *p = s; *p && rc == 0; p++) {
        if (*p != '"')
            continue;
        rc = et_buf_append(out, run, (size_t)(p - run + 1));
        if (rc == 0)
            rc = et_buf_putc(out, '"');
        run = p + 1;
    }
    if (rc == 0)
        rc = et_buf_puts(out, run);
    if (rc == 0)
        rc = et_buf_putc(out, '"');
    return rc;
}

static int render_csv(const struct et_table *t, struct et_buf *out)
{
    int rc = 0;
    for (int i = 0; i < t->ncols && rc == 0; i++) {
        if (i)
            rc = et_buf_putc(out, ',');
        if (rc == 0)
            rc = et_csv_cell(out, t->cols[i] ? t->cols[i] : "");
    }
    if (rc == 0)
        rc = et_buf_puts(out, "\r\n");
    for (size_t r = 0; r < t->nrows && rc == 0; r++) {
        for (int i = 0; i < t->ncols && rc == 0; i++) {
            if (i)
                rc = et_buf_putc(out, ',');
            if (rc == 0)
                rc = et_csv_cell(out, cell(t, r, i));
        }
        if (rc == 0)
            rc = et_buf_puts(out, "\r\n");
    }
    return rc;
}

/* The cell as it may reach a terminal: control characters scrubbed, into tmp. */
static const char *printable(const char *s, struct et_buf *tmp)
{
    et_buf_reset(tmp);
    if (et_buf_puts(tmp, s) != 0 || et_buf_putc(tmp, '\0') != 0)
        return NULL;
    return et_str_printable((char *)tmp->data);
}

/* The first bytes of printable(s) that a column of width w shows: w bytes and the 3 after
 * (a UTF-8 sequence that starts before w ends within them, so each of the first w bytes is
 * scrubbed as in the whole cell and fit() sees the same byte at w). Long cells (the next
 * steps of a findings table) are then not copied and scrubbed whole. */
static const char *printable_prefix(const char *s, size_t w, struct et_buf *tmp)
{
    size_t n = strnlen(s, w + 4);
    et_buf_reset(tmp);
    if (et_buf_append(tmp, s, n) != 0 || et_buf_putc(tmp, '\0') != 0)
        return NULL;
    return et_str_printable((char *)tmp->data);
}

/* s in a column w wide (cut to w bytes; right-aligned or left), then the two spaces between
 * columns: one reserve and copies (tables of findings have tens of thousands of rows). */
static int pad(struct et_buf *out, const char *s, int w, int right)
{
    size_t l = strlen(s), wz = w > 0 ? (size_t)w : 0;
    if (l > wz)
        l = wz;
    int rc = et_buf_reserve(out, wz + 2);
    if (rc != 0)
        return rc;
    uint8_t *p = out->data + out->len;
    size_t sp = wz - l;
    if (right) {
        memset(p, ' ', sp);
        memcpy(p + sp, s, l);
    } else {
        memcpy(p, s, l);
        memset(p + l, ' ', sp);
    }
    p[wz] = ' ';
    p[wz + 1] = ' ';
    out->len += wz + 2;
    out->data[out->len] = '\0';
    return 0;
}

/* How many bytes of s (l long) fit in w columns, not cutting a UTF-8 sequence in two. */
static size_t fit(const char *s, size_t l, size_t w)
{
    if (l <= w)
        return l;
    while (w > 0 && ((unsigned char)s[w] & 0xC0) == 0x80)
        w--;
    return w;
}

/* One line of a table with fixed widths: the header (cells NULL) or a row. */
static int fixed_line(const struct et_table *t, const struct et_table_text *l,
                      const char *const *cells, struct et_buf *tmp, struct et_buf *out)
{
    int rc = l->indent != NULL ? et_buf_puts(out, l->indent) : 0;
    for (int i = 0; i < t->ncols && rc == 0; i++) {
        const char *c = cells != NULL ? cells[i] : t->cols[i];
        int right = l->width[i] < 0;
        size_t w = (size_t)(right ? -l->width[i] : l->width[i]), n;
        int num = cells != NULL && et_table_is_number(c);
        if (c == NULL)
            c = "";
        if (!num && (c = printable(c, tmp)) == NULL)
            return ET_ENOMEM;
        n = strlen(c);
        if (!num && cells != NULL)
            n = fit(c, n, w); /* a number is never cut (that would show another), nor a name */
        if (i > 0)
            rc = et_buf_puts(out, l->sep != NULL ? l->sep : "  ");
        for (size_t k = n; right && k < w && rc == 0; k++)
            rc = et_buf_putc(out, ' ');
        if (rc == 0)
            rc = et_buf_append(out, c, n);
        for (size_t k = n; !right && k < w && rc == 0; k++)
            rc = et_buf_putc(out, ' ');
    }
    return rc == 0 ? et_buf_putc(out, '\n') : rc;
}

static int text_line(const struct et_table *t, const struct et_table_text *l,
                     const char *const *cells, struct et_buf *out)
{
    struct et_buf tmp;
    int rc;
    if (l == NULL || l->width == NULL || t->ncols < 0 || t->ncols > TABLE_MAX_COLS)
        return ET_EINVAL;
    et_buf_init(&tmp, 0);
    rc = fixed_line(t, l, cells, &tmp, out);
    et_buf_free(&tmp);
    return rc;
}

int et_table_text_header(const struct et_table *t, const struct et_table_text *l,
                         struct et_buf *out)
{
    return text_line(t, l, NULL, out);
}

int et_table_text_row(const struct et_table *t, const struct et_table_text *l,
                      const char *const *cells, struct et_buf *out)
{
    static const char *const none[TABLE_MAX_COLS];
    return text_line(t, l, cells != NULL ? cells : none, out);
}

static int render_text(const struct et_table *t, unsigned flags, struct et_buf *out)
{
    int w[TABLE_MAX_COLS], show[TABLE_MAX_COLS];
    struct et_buf tmp;
    int rc = 0;

    et_buf_init(&tmp, 0);
    for (int i = 0; i < t->ncols; i++) {
        const char *h = printable(t->cols[i] ? t->cols[i] : "", &tmp);
        if (h == NULL) {
            rc = ET_ENOMEM;
            goto out;
        }
        w[i] = (int)strlen(h);
        show[i] = !(flags & ET_TABLE_HIDE_ZERO) || i < 2;
        for (size_t r = 0; r < t->nrows; r++) {
            const char *c = cell(t, r, i);
            int l = (int)strnlen(c, TEXT_MAX_WIDTH + 1);
            if (l > w[i])
                w[i] = l;
            if (c[0] && strcmp(c, "0") != 0)
                show[i] = 1;
        }
        if (w[i] > TEXT_MAX_WIDTH)
            w[i] = TEXT_MAX_WIDTH;
    }
    if (flags & ET_TABLE_TITLE)
        rc = et_buf_printf(out, "== %s (%zu rows)\n", t->name ? t->name : "", t->nrows);
    for (int i = 0; i < t->ncols && rc == 0; i++) {
        const char *h;
        if (!show[i])
            continue;
        if ((h = printable(t->cols[i] ? t->cols[i] : "", &tmp)) == NULL)
            rc = ET_ENOMEM;
        else
            rc = pad(out, h, w[i], 0);
    }
    if (rc == 0)
        rc = et_buf_putc(out, '\n');
    for (size_t r = 0; r < t->nrows && rc == 0; r++) {
        for (int i = 0; i < t->ncols && rc == 0; i++) {
            const char *c;
            if (!show[i])
                continue;
            c = cell(t, r, i);
            if (et_table_is_number(c)) {
                rc = pad(out, c, w[i], 1);
            } else if ((c = printable_prefix(c, (size_t)w[i], &tmp)) == NULL) {
                rc = ET_ENOMEM;
            } else {
                rc = pad(out, c, w[i], 0);
            }
        }
        if (rc == 0)
            rc = et_buf_putc(out, '\n');
    }
    if (rc == 0 && (flags & ET_TABLE_TITLE))
        rc = et_buf_putc(out, '\n');
out:
    et_buf_free(&tmp);
    return rc;
}

static int html_text(struct et_buf *out, const char *s)
{
    return et_buf_put_xml_escaped(out, s, strlen(s));
}

static int render_html(const struct et_table *t, unsigned flags, struct et_buf *out)
{
    int rc = 0;
    if (flags & ET_TABLE_TITLE) {
        rc = et_buf_puts(out, "<h2>");
        if (rc == 0)
            rc = html_text(out, t->name ? t->name : "");
        if (rc == 0)
            rc = et_buf_puts(out, "</h2>\n");
    }
    if (rc == 0)
        rc = et_buf_puts(out, "<table>\n<thead><tr>");
    for (int i = 0; i < t->ncols && rc == 0; i++) {
        rc = et_buf_puts(out, "<th>");
        if (rc == 0)
            rc = html_text(out, t->cols[i] ? t->cols[i] : "");
        if (rc == 0)
            rc = et_buf_puts(out, "</th>");
    }
    if (rc == 0)
        rc = et_buf_puts(out, "</tr></thead>\n<tbody>\n");
    for (size_t r = 0; r < t->nrows && rc == 0; r++) {
        rc = et_buf_puts(out, "<tr>");
        for (int i = 0; i < t->ncols && rc == 0; i++) {
            const char *c = cell(t, r, i);
            rc = et_buf_puts(out, et_table_is_number(c) ? "<td class=\"n\">" : "<td>");
            if (rc == 0)
                rc = html_text(out, c);
            if (rc == 0)
                rc = et_buf_puts(out, "</td>");
        }
        if (rc == 0)
            rc = et_buf_puts(out, "</tr>\n");
    }
    if (rc == 0)
        rc = et_buf_puts(out, "</tbody>\n</table>\n");
    return rc;
}

static int json_str(struct et_buf *out, const char *s)
{
    return et_buf_put_json_string(out, s, strlen(s));
}

static int render_json(const struct et_table *t, struct et_buf *out)
{
    int rc = et_buf_puts(out, "{\"name\":");
    if (rc == 0)
        rc = json_str(out, t->name ? t->name : "");
    if (rc == 0)
        rc = et_buf_puts(out, ",\"columns\":[");
    for (int i = 0; i < t->ncols && rc == 0; i++) {
        if (i)
            rc = et_buf_putc(out, ',');
        if (rc == 0)
            rc = json_str(out, t->cols[i] ? t->cols[i] : "");
    }
    if (rc == 0)
        rc = et_buf_puts(out, "],\"rows\":[");
    for (size_t r = 0; r < t->nrows && rc == 0; r++) {
        rc = et_buf_puts(out, r ? ",[" : "[");
        for (int i = 0; i < t->ncols && rc == 0; i++) {
            const char *c = cell(t, r, i);
            if (i)
                rc = et_buf_putc(out, ',');
            if (rc != 0)
                break;
            /* Up to 15 digits: exact in a double, so every JSON reader keeps the value. */
            if (et_table_is_number(c) && strlen(c) < 16 &&
                (c[0] != '0' || c[1] == '\0' || c[1] == '.'))
                rc = et_buf_puts(out, c);
            else
                rc = json_str(out, c);
        }
        if (rc == 0)
            rc = et_buf_putc(out, ']');
    }
    if (rc == 0)
        rc = et_buf_puts(out, "]}");
    return rc;
}

int et_table_render(const struct et_table *t, enum et_table_format fmt, unsigned flags,
                    struct et_buf *out)
{
    if (t->ncols < 0 || t->ncols > TABLE_MAX_COLS)
        return ET_ETOOBIG;
    switch (fmt) {
    case ET_TABLE_TEXT: return render_text(t, flags, out);
    case ET_TABLE_CSV: return render_csv(t, out);
    case ET_TABLE_HTML: return render_html(t, flags, out);
    case ET_TABLE_JSON: return render_json(t, out);
    }
    return ET_EINVAL;
}

int et_table_write(const struct et_table *t, enum et_table_format fmt, unsigned flags, FILE *f)
{
    struct et_buf b;
    int rc;
    et_buf_init(&b, 0);
    rc = et_table_render(t, fmt, flags, &b);
    if (rc == 0 && b.len > 0 && fwrite(b.data, 1, b.len, f) != b.len)
        rc = ET_EIO;
    et_buf_free(&b);
    return rc;
}
