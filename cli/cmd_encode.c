/*
 * eastrace encode: EAS XML (as decode prints it, or as MS-ASCMD shows it) to WBXML with the
 * same code page tables, for building test bodies and replaying requests.
 */
#include "cli.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "eastrace/common.h"
#include "eastrace/wbxml.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: eastrace encode [-o OUT] FILE\n"
               "\n"
               "Encodes EAS XML (namespaces as `eastrace decode` prints them: xmlns=\"AirSync:\",\n"
               "prefixes for other pages) to WBXML 1.3. FILE may be - for standard input.\n"
               "Writes to OUT, or to standard output when it is not a terminal.\n");
}

int et_cmd_encode(int argc, char **argv)
{
    const char *in = NULL, *outpath = NULL;
    struct et_buf xml, wb;
    struct et_error e;
    char msg[400];
    FILE *f, *o;
    int rc;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return ET_EXIT_OK;
        } else if (strcmp(argv[i], "-o") == 0 && i + 1 < argc) {
            outpath = argv[++i];
        } else if (in == NULL) {
            in = argv[i];
        } else {
            usage(stderr);
            return ET_EXIT_INPUT;
        }
    }
    if (in == NULL) {
        usage(stderr);
        return ET_EXIT_INPUT;
    }
    f = strcmp(in, "-") == 0 ? stdin : fopen(in, "rb");
    if (f == NULL) {
        et_cli_err("%s: %s", in, strerror(errno));
        return ET_EXIT_INPUT;
    }
    et_buf_init(&xml, (size_t)256 * 1024 * 1024);
    for (;;) {
        char chunk[65536];
        size_t n = fread(chunk, 1, sizeof(chunk), f);
        if (n > 0 && et_buf_append(&xml, chunk, n) != 0) {
            et_cli_err("%s: too large", in);
            return ET_EXIT_INPUT;
        }
        if (n < sizeof(chunk))
            break;
    }
    if (f != stdin)
        fclose(f);
    et_buf_init(&wb, 0);
    et_error_clear(&e);
    rc = et_wbxml_encode(xml.len ? (const char *)xml.data : "", xml.len, &wb, &e);
    if (rc != 0) {
        et_cli_err("%s: %s", in, et_error_format(&e, msg, sizeof(msg)));
        et_buf_free(&xml);
        et_buf_free(&wb);
        return ET_EXIT_FINDINGS;
    }
    if (outpath == NULL && isatty(1)) {
        et_cli_err("encode: WBXML is binary; use -o OUT or redirect standard output");
        rc = ET_EXIT_INPUT;
    } else {
        /* WBXML is binary: stdout without the terminal guard (a pipe, checked above). */
        o = outpath ? fopen(outpath, "wb") : et_cli_raw_stdout();
        if (o == NULL || fwrite(wb.data, 1, wb.len, o) != wb.len) {
            et_cli_err("%s: %s", outpath ? outpath : "stdout", strerror(errno));
            rc = ET_EXIT_INPUT;
        }
        if (o != NULL && outpath != NULL && fclose(o) != 0)
            rc = ET_EXIT_INPUT;
        else if (o != NULL && outpath == NULL && fflush(o) != 0)
            rc = ET_EXIT_INPUT;
    }
    et_buf_free(&xml);
    et_buf_free(&wb);
    return rc;
}
