/*
 * The session browser as one self-contained HTML file (eastrace export --html): the page of
 * web/assets with its style and script inline and the store's data embedded.
 *
 *   <meta http-equiv="Content-Security-Policy" content="default-src 'none';
 *         script-src 'sha256-<app.js>'; style-src 'sha256-<app.css>'; ...">
 *   <style>app.css</style> ... <script type="application/json" id="et-data">{...}</script>
 *   <script>app.js</script>
 *
 * The data block is JSON whose '<' '>' '&' are escaped (\u003c), so nothing in it can close
 * the script element, and the type makes the browser never run it. The policy lets only our
 * own script and style run and allows no network access at all (no connect, img or font
 * source but data: images), so the file works offline and cannot call anywhere.
 */
#include "web_int.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

static int sha256_b64(const unsigned char *p, size_t n, struct et_buf *out)
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    if (EVP_Digest(p, n, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
        return ET_EIO;
    return et_base64_encode(out, md, mdlen);
}

/* Writes s[0..n) replacing the first occurrence of marker by with. */
static int put_replaced(struct et_buf *b, const char *s, size_t n, const char *marker,
                        const char *with, size_t wl)
{
    const char *m = memmem(s, n, marker, strlen(marker));
    if (m == NULL)
        return ET_EINVAL;
    et_buf_append(b, s, (size_t)(m - s));
    et_buf_append(b, with, wl);
    return et_buf_append(b, m + strlen(marker), n - (size_t)(m - s) - strlen(marker));
}

static int write_all(FILE *f, const struct et_buf *b)
{
    return fwrite(b->data, 1, b->len, f) == b->len ? 0 : ET_EIO;
}

/*
 * In place: the \u003e and \u0026 escapes et__web_json_harden wrote become '>' and '&' again:
 * in a script element only "</script" and "<!--" can end or change it (HTML's script data
 * states), and every '<' stays escaped, so no tag from traffic stands in the file as text
 * either. Other escapes are copied as they are (a literal backslash keeps its pair), so the JSON
 * is the same, a few per cent smaller.
 */
static void script_safe(struct et_buf *b)
{
    size_t w = 0;
    for (size_t r = 0; r < b->len;) {
        if (b->data[r] == '\\' && r + 5 < b->len && memcmp(b->data + r + 1, "u00", 3) == 0) {
            const uint8_t *h = b->data + r + 4;
            int gt = h[0] == '3' && (h[1] == 'e' || h[1] == 'E');
            int amp = h[0] == '2' && h[1] == '6';
            if (gt || amp) {
                b->data[w++] = gt ? '>' : '&';
                r += 6;
                continue;
            }
        }
        if (b->data[r] == '\\' && r + 1 < b->len) /* an escape pair, copied whole */
            b->data[w++] = b->data[r++];
        b->data[w++] = b->data[r++];
    }
    b->len = w;
}

/* Writes JSON text that cannot end the script element (see script_safe). */
static int write_json(FILE *f, struct et_buf *b)
{
    int rc = et__web_json_harden(b);
    if (rc != 0)
        return rc;
    script_safe(b);
    return write_all(f, b);
}

/* The data block, streamed: {"mode":"file","title":..,"summary":..,"devices":..,
 * "findings":..,"rows":[..],"details":[..],"texts":[..]}. */
static int write_data(struct et_web_store *s, FILE *f, const char *title)
{
    struct et_buf b, tmp;
    int rc = 0;

    et_buf_init(&b, 0);
    et_buf_init(&tmp, 0);
    et_buf_puts(&b, "{\"mode\":\"file\",\"title\":");
    et__web_json_cstr(&b, title);
    et_buf_puts(&b, ",\"summary\":");
    et__web_summary_json(s, &b);
    et_buf_puts(&b, ",\"devices\":");
    et__web_devices_json(s, &b);
    et_buf_puts(&b, ",\"findings\":");
    et__web_findings_json(s, &b);
    et_buf_puts(&b, ",\"rows\":[");
    for (size_t i = 0; i < s->nrows; i++) {
        if (i)
            et_buf_putc(&b, ',');
        et__web_row_json(s, &s->rows[i], &b);
        if (b.len > (1u << 20)) {
            if ((rc = write_json(f, &b)) != 0)
                goto out;
            et_buf_reset(&b);
        }
    }
    et_buf_puts(&b, "],\"details\":[");
    for (size_t i = 0; i < s->nrows; i++) {
        if (i)
            et_buf_putc(&b, ',');
        if ((rc = et__web_spill_read(s, s->rows[i].detail_off, s->rows[i].detail_len, &b)) != 0)
            goto out;
        if (b.len > (1u << 20)) {
            if ((rc = write_json(f, &b)) != 0)
                goto out;
            et_buf_reset(&b);
        }
    }
    et_buf_puts(&b, "],\"texts\":[");
    for (size_t i = 0; i < s->nrows; i++) {
        if (i)
            et_buf_putc(&b, ',');
        et_buf_reset(&tmp);
        if ((rc = et__web_spill_read(s, s->rows[i].text_off, s->rows[i].text_len, &tmp)) != 0)
            goto out;
        et__web_json_str(&b, (const char *)tmp.data, tmp.len);
        if (b.len > (1u << 20)) {
            if ((rc = write_json(f, &b)) != 0)
                goto out;
            et_buf_reset(&b);
        }
    }
    et_buf_puts(&b, "]}");
    rc = write_json(f, &b);
out:
    et_buf_free(&b);
    et_buf_free(&tmp);
    return rc;
}

int et_web_export_html(struct et_web_store *s, const char *path, const char *title,
                       struct et_error *e)
{
    const struct et__web_asset *html = et__web_asset("index.html");
    const struct et__web_asset *js = et__web_asset("app.js");
    const struct et__web_asset *css = et__web_asset("app.css");
    struct et_buf head, tail, csp, with, hs, hc;
    const char *split;
    FILE *f = NULL;
    int rc = 0;

    if (html == NULL || js == NULL || css == NULL) {
        et_error_set(e, ET_EINVAL, "the page's files are not embedded");
        return ET_EINVAL;
    }
    /* Our own files must not end their elements early. */
    if (memmem(js->data, js->len, "</script", 8) || memmem(css->data, css->len, "</style", 7)) {
        et_error_set(e, ET_EINVAL, "app.js or app.css holds an end tag");
        return ET_EINVAL;
    }
    et_buf_init(&head, 0);
    et_buf_init(&tail, 0);
    et_buf_init(&csp, 0);
    et_buf_init(&with, 0);
    et_buf_init(&hs, 0);
    et_buf_init(&hc, 0);
    if (sha256_b64(js->data, js->len, &hs) != 0 || sha256_b64(css->data, css->len, &hc) != 0) {
        et_error_set(e, ET_EIO, "SHA-256 failed");
        rc = ET_EIO;
        goto out;
    }
    et_buf_printf(&csp,
                  "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
                  "script-src 'sha256-%s'; style-src 'sha256-%s'; img-src data:; "
                  "base-uri 'none'; form-action 'none'\">\n"
                  "<meta name=\"referrer\" content=\"no-referrer\">",
                  (const char *)hs.data, (const char *)hc.data);
    split = memmem(html->data, html->len, "<!--et-data-->", 14);
    if (split == NULL) {
        et_error_set(e, ET_EINVAL, "index.html has no data marker");
        rc = ET_EINVAL;
        goto out;
    }
    {
        struct et_buf a, b2;
        size_t hl = (size_t)(split - (const char *)html->data);
        et_buf_init(&a, 0);
        et_buf_init(&b2, 0);
        put_replaced(&a, (const char *)html->data, hl, "<!--et-head-->", (const char *)csp.data,
                     csp.len);
        et_buf_puts(&with, "<style>");
        et_buf_append(&with, css->data, css->len);
        et_buf_puts(&with, "</style>");
        rc = put_replaced(&head, (const char *)a.data, a.len,
                          "<link rel=\"stylesheet\" href=\"/app.css\">", (const char *)with.data,
                          with.len);
        et_buf_reset(&with);
        et_buf_puts(&with, "<script>");
        et_buf_append(&with, js->data, js->len);
        et_buf_puts(&with, "</script>");
        if (rc == 0)
            rc = put_replaced(&tail, split + 14, html->len - hl - 14,
                              "<script src=\"/app.js\"></script>", (const char *)with.data,
                              with.len);
        et_buf_free(&a);
        et_buf_free(&b2);
        if (rc != 0) {
            et_error_set(e, ET_EINVAL, "index.html lacks the style or script element");
            goto out;
        }
    }
    f = fopen(path, "wb");
    if (f == NULL) {
        et_error_set(e, ET_EIO, "%s: %s", path, strerror(errno));
        rc = ET_EIO;
        goto out;
    }
    pthread_mutex_lock(&s->mu);
    rc = write_all(f, &head);
    if (rc == 0 && fputs("<script type=\"application/json\" id=\"et-data\">", f) < 0)
        rc = ET_EIO;
    if (rc == 0)
        rc = write_data(s, f, title);
    pthread_mutex_unlock(&s->mu);
    if (rc == 0 && fputs("</script>", f) < 0)
        rc = ET_EIO;
    if (rc == 0)
        rc = write_all(f, &tail);
    if (fclose(f) != 0 && rc == 0)
        rc = ET_EIO;
    f = NULL;
    if (rc != 0)
        et_error_set(e, rc, "%s: %s", path, rc == ET_EIO ? strerror(errno) : et_strerror(rc));
out:
    et_buf_free(&head);
    et_buf_free(&tail);
    et_buf_free(&csp);
    et_buf_free(&with);
    et_buf_free(&hs);
    et_buf_free(&hc);
    return rc;
}
