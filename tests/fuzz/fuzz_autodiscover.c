/*
 * libFuzzer target: the probe's Autodiscover response parser (et_probe_autodiscover_parse) on
 * arbitrary bytes. Seeds: tests/fixtures/probe/autodiscover-*.xml.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "eastrace/probe.h"
#include "probe_pieces.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct et_arena *a = et_arena_new(0);
    struct et_probe_autodiscover ad;
    struct et_error e;
    if (a == NULL)
        return 0;
    et_error_clear(&e);
    if (et_probe_autodiscover_parse(data, size, a, &ad, &e) == 0) {
        /* Every string returned must be a NUL-terminated string in the arena. */
        const char *s[] = {ad.eas_url, ad.server_name, ad.display_name, ad.redirect,
                           ad.error_code, ad.error_message};
        size_t total = 0;
        for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++)
            if (s[i] != NULL)
                total += strlen(s[i]);
        (void)total;
    }
    et_arena_free(a);
    return 0;
}
