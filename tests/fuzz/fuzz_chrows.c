/* libFuzzer target: what the ClickHouse loader reads and writes. The IIS row reader over the
 * input (every row's slices must lie inside the input or the decoder's scratch), the engine
 * URL parser on the input as a string, and TabSeparated escaping: escaping then unescaping the
 * input must give it back, and the escaped text holds no raw tab, newline or NUL. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ch_int.h"
#include "eastrace/iisrows.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct et_error e;
    struct et_iis_rows *rr;
    struct et_buf b;

    et_error_clear(&e);
    if (et_iis_rows_open_mem(data, size, "fuzz", &rr, &e) == 0) {
        struct et_iis_row row;
        uint64_t sum = 0;
        for (int i = 0; i < 100000; i++) {
            int n = et_iis_rows_next(rr, &row, &e);
            if (n <= 0)
                break;
            if (n == 1) {
                /* Touch every byte the loader would send. */
                const struct et_slice s[] = {row.s_ip, row.method, row.query, row.q.user,
                                             row.q.device_id, row.q.device_type, row.q.cmd,
                                             row.q.log, row.log.error, row.ua};
                for (size_t k = 0; k < sizeof(s) / sizeof(s[0]); k++)
                    for (size_t j = 0; j < s[k].len; j++)
                        sum += s[k].ptr[j];
            }
        }
        (void)sum;
        et_iis_rows_free(rr);
    }
    char *str = malloc(size + 1);
    if (str == NULL)
        return 0;
    memcpy(str, data, size);
    str[size] = '\0';
    struct et_ch_url u;
    (void)et_ch_url_parse(str, &u, &e);
    free(str);
    et_buf_init(&b, 0);
    if (et__ch_tsv_put(&b, data, size) == 0) {
        if (memchr(b.data, '\t', b.len) || memchr(b.data, '\n', b.len) ||
            memchr(b.data, '\0', b.len))
            abort();
        size_t n = et__ch_tsv_unescape((char *)b.data, b.len);
        if (n != size || (size && memcmp(b.data, data, size) != 0))
            abort();
    }
    et_buf_free(&b);
    return 0;
}
