/* Private to the WBXML code of the decoder. */
#ifndef ET_DECODER_WBXML_INT_H
#define ET_DECODER_WBXML_INT_H

#include "eastrace/wbxml.h"

/* et_wbxml_init with a shared arena (NULL: a new one owned by the document) and a nesting
 * level for opaque documents inside opaque documents. */
int et__wbxml_init_in(struct et_wbxml_decoder *d, const struct et_wbxml_opts *opts,
                      struct et_arena *arena, unsigned nest);

/* Namespace of the wrapper element of multi-element fragments. */
#define ET__WBXML_FRAGMENT_NS "urn:eastrace:wbxml-fragment"

/* Lower-case namespace prefix of a page ("airsyncbase"), NULL beyond page 25. */
const char *et__wbxml_prefix(unsigned page);
/* 1 when bytes can be XML character data (valid UTF-8, no C0 controls but TAB LF CR). */
int et__wbxml_xml_safe(const uint8_t *p, size_t n);

#endif
