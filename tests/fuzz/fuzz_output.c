/*
 * libFuzzer target for what the outputs do to hostile bytes (docs/security.md):
 *   - et_scrub(): no byte a terminal acts on survives (C0 but TAB/LF/CR-before-LF, DEL, C1 as
 *     UTF-8 or raw, invalid UTF-8); scrubbing twice changes nothing; scrubbing in two pieces
 *     with the held tail carried over gives the same bytes as scrubbing at once;
 *   - et_redact_body() on the input as WBXML and as plain XML: the same length, and only
 *     '*' written where bytes changed; et_redact_xml() never fails;
 *   - the WBXML renderings with a small output budget: never more than the budget.
 * The first byte picks the split point of the two-piece scrub.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "eastrace/http.h"
#include "eastrace/redact.h"
#include "eastrace/wbxml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_scrubbed(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f)
            abort();
        if (c == '\r' && (i + 1 >= n || p[i + 1] != '\n'))
            abort();
        if (c == 0xC2 && i + 1 < n && p[i + 1] >= 0x80 && p[i + 1] <= 0x9F)
            abort();
    }
    if (!et_utf8_valid(p, n))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *a, *b;
    size_t cut, keep, n;
    struct et_arena *ar;
    struct et_headers h = {0};
    struct et_buf out;

    if (size == 0 || size > 65536)
        return 0;
    cut = data[0] % size;
    data++;
    size--;
    a = malloc(size + 1);
    b = malloc(size + 1);
    if (a == NULL || b == NULL)
        goto out;
    /* Whole. */
    memcpy(a, data, size);
    et_scrub(a, size, ET_SCRUB_LINES, NULL);
    check_scrubbed(a, size);
    memcpy(b, a, size);
    if (et_scrub(b, size, ET_SCRUB_LINES, NULL) != 0 || memcmp(a, b, size) != 0)
        abort();
    /* In two pieces, the held tail carried into the second: the terminal guard's way. */
    if (cut > size)
        cut = size;
    memcpy(b, data, size);
    et_scrub(b, cut, ET_SCRUB_LINES, &keep);
    n = cut - keep;
    et_scrub(b + n, size - n, ET_SCRUB_LINES, NULL);
    if (memcmp(a, b, size) != 0)
        abort();

    /* Redaction of bodies keeps their length and writes only '*'. */
    if ((ar = et_arena_new(4096)) == NULL)
        goto out;
    for (int kind = 0; kind < 2; kind++) {
        const uint8_t *r;
        et_headers_add(&h, ar, "Content-Type", 12,
                       kind ? "text/xml" : "application/vnd.ms-sync.wbxml", kind ? 8 : 29);
        r = et_redact_decoded_body(ar, &h, data, size);
        if (r != NULL && r != data)
            for (size_t i = 0; i < size; i++)
                if (r[i] != data[i] && r[i] != '*')
                    abort();
        h.n = 0;
    }
    et_buf_init(&out, 0);
    if (et_redact_xml(&out, (const char *)data, size) != 0)
        abort();
    et_buf_free(&out);

    /* The renderings stop at their budget. */
    {
        struct et_wbxml_doc *doc = NULL;
        struct et_wbxml_render_opts ro = {0};
        ro.max_output = 4096;
        et_wbxml_decode(data, size, NULL, &doc, NULL);
        if (doc != NULL) {
            et_buf_init(&out, 0);
            et_wbxml_to_xml(doc, &ro, &out);
            if (out.len > ro.max_output)
                abort();
            et_buf_reset(&out);
            et_wbxml_to_json(doc, &ro, &out);
            if (out.len > ro.max_output)
                abort();
            et_buf_free(&out);
            et_wbxml_doc_free(doc);
        }
    }
    et_arena_free(ar);
out:
    free(a);
    free(b);
    return 0;
}
