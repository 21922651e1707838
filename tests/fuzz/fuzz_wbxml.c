/*
 * libFuzzer target for the WBXML decoder: decode (one call and one-byte... split feeds),
 * render XML and JSON, encode the XML rendering back and check that it decodes again.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "eastrace/wbxml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct et_wbxml_doc *doc = NULL, *doc2 = NULL;
    struct et_wbxml_decoder d;
    struct et_wbxml_opts o = {0};
    struct et_buf x, j, w;
    size_t i, step;

    o.max_depth = 64;
    o.max_nodes = 100000;
    o.max_bytes = 8u << 20;
    et_wbxml_decode(data, size, &o, &doc, NULL);
    if (doc == NULL)
        return 0;
    et_buf_init(&x, 16u << 20);
    et_buf_init(&j, 16u << 20);
    et_buf_init(&w, 16u << 20);
    et_wbxml_to_xml(doc, NULL, &x);
    et_wbxml_to_json(doc, NULL, &j);
    if (doc->err.code == 0 && et_wbxml_encode((const char *)x.data, x.len, &w, NULL) == 0) {
        /* What the encoder accepted must decode again. */
        if (et_wbxml_decode(w.data, w.len, &o, &doc2, NULL) != 0)
            abort();
        et_wbxml_doc_free(doc2);
    }
    /* Split feeds give the same node count. */
    step = size > 0 ? (size_t)data[0] % 7 + 1 : 1;
    if (et_wbxml_init(&d, &o) == 0) {
        for (i = 0; i < size; i += step) {
            const uint8_t *p = data + i, *end = data + (i + step < size ? i + step : size);
            int rc = et_wbxml_feed(&d, &p, end);
            if (rc != ET_EAGAIN && rc != 0)
                break;
        }
        if (et_wbxml_finish(&d, &doc2) == doc->err.code && doc2 != NULL &&
            doc2->nodes != doc->nodes && doc->err.code == 0)
            abort();
        et_wbxml_free(&d);
        et_wbxml_doc_free(doc2);
    }
    et_buf_free(&x);
    et_buf_free(&j);
    et_buf_free(&w);
    et_wbxml_doc_free(doc);
    return 0;
}
