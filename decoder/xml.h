/*
 * A small pull XML reader for the WBXML encoder (private to the decoder library). It reads
 * elements, attributes, text with the predefined and numeric entities, CDATA, comments and
 * processing instructions. A DOCTYPE with an internal subset (where entities would be
 * declared) is refused; an external-id-only DOCTYPE, as libwbxml writes, is skipped.
 *
 * Events borrow from the input or from the reader's scratch buffer: valid until the next
 * call to et__xml_next().
 */
#ifndef ET_DECODER_XML_H
#define ET_DECODER_XML_H

#include <stddef.h>
#include <stdint.h>

#include "eastrace/common.h"

#define ET__XML_MAX_ATTRS 32

enum et__xml_ev_type {
    ET__XML_EOF = 0,     /* end of input */
    ET__XML_START = 1,   /* start tag: name, attrs; empty when it was <a/> */
    ET__XML_END = 2,     /* end tag (also sent right after an empty START) */
    ET__XML_TEXT = 3,    /* character data, entities decoded */
    ET__XML_CDATA = 4,   /* CDATA section contents */
    ET__XML_COMMENT = 5, /* comment text between <!-- and --> */
    ET__XML_PI = 6       /* processing instruction: name = target, text = the rest */
};

struct et__xml_attr {
    struct et_slice name;
    struct et_slice value; /* entities decoded (in the reader's attribute buffer) */
};

struct et__xml_ev {
    enum et__xml_ev_type type;
    struct et_slice name;
    struct et_slice text;
    int empty; /* START: it was <a/> (an END follows) */
    size_t nattrs;
    struct et__xml_attr attrs[ET__XML_MAX_ATTRS];
    size_t offset; /* byte offset of the event in the input */
};

struct et__xml {
    const uint8_t *p, *start, *end;
    struct et_buf text;  /* decoded character data */
    struct et_buf attrv; /* decoded attribute values */
    struct et_slice pending_end; /* name of the END that follows an empty START */
    int has_pending_end;
    struct et_error *err;
};

void et__xml_init(struct et__xml *x, const char *s, size_t n, struct et_error *err);
void et__xml_free(struct et__xml *x);
/* Returns 0 with *ev set, or ET_EPARSE / ET_ENOMEM / ET_ETOOBIG with x->err set. */
int et__xml_next(struct et__xml *x, struct et__xml_ev *ev);

#endif
