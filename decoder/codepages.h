/*
 * EAS WBXML code pages (MS-ASWBXML 2.1.2.1), private to the decoder. The tables are generated
 * by scripts/gen-codepages.py into codepages_table.c.
 */
#ifndef ET_DECODER_CODEPAGES_H
#define ET_DECODER_CODEPAGES_H

#include <stddef.h>
#include <stdint.h>

#define ET__CP_PAGES 26

/* One tag of one code page. since is the protocol version that introduced it times ten
 * (25 = 2.5, 161 = 16.1); deprecated tags were dropped by later versions. */
struct et__cp_tag {
    const char *name;
    uint8_t page;
    uint8_t token;
    uint16_t since;
    uint8_t deprecated;
};

extern const char *const et__cp_namespaces[ET__CP_PAGES];
extern const struct et__cp_tag et__cp_tags[];
extern const size_t et__cp_ntags;
extern const int16_t et__cp_index[ET__CP_PAGES][64];
extern const uint16_t et__cp_page_start[ET__CP_PAGES + 1];

#endif
