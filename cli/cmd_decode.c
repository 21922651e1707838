/*
 * eastrace decode: raw WBXML bodies or raw HTTP messages (a Fiddler raw/NN_c.txt or NN_s.txt,
 * a body saved from any tool) to readable XML, or to JSON for scripts.
 *
 *   file bytes -> HTTP message? -- yes --> start line, headers, EAS request line, body view
 *                      \-- no ---> WBXML document (or headerless fragment)
 *
 * Exit status: 0 when every file decoded, 1 when one had a decode error (the partial result is
 * still printed, the error names the file and byte offset), 2 when a file could not be read.
 */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "eastrace/arena.h"
#include "eastrace/common.h"
#include "eastrace/eas.h"
#include "eastrace/exchange.h"
#include "eastrace/http.h"
#include "eastrace/pipeline.h"
#include "eastrace/wbxml.h"

/* Largest input file read (a capture body cap is 16 MiB; leave room for odd files). */
#define DECODE_MAX_INPUT ((size_t)512 * 1024 * 1024)
/* Default cap on one file's rendered output. */
#define DECODE_DEFAULT_MAX_OUTPUT ((size_t)256 * 1024 * 1024)

static void usage(FILE *f)
{
    fprintf(f,
            "usage: eastrace decode [OPTIONS] FILE...\n"
            "\n"
            "Decodes EAS traffic to readable XML. Each FILE (or - for standard input) is either a\n"
            "raw WBXML body or a raw HTTP request or response (as in a Fiddler raw/NN_c.txt or\n"
            "NN_s.txt): detected from its first bytes. For HTTP, prints the start line, the\n"
            "headers, the decoded EAS request (plain or base64 query) and the body: WBXML as XML\n"
            "with Status names, multipart responses part by part, gzip/deflate undone, MIME\n"
            "(SendMail of EAS 12.1 and earlier) as text.\n"
            "\n"
            "Options:\n"
            "  --json              print one JSON object per file (the decoded tree)\n"
            "  --compact           XML without indentation\n"
            "  --no-status-names   omit the <!-- N = Name --> comments after Status elements\n"
            "  --fragment          the input is a WBXML body without its header\n"
            "  --include-secrets   show Authorization and Cookie values (redacted by default)\n"
            "  --max-output BYTES  cap on the output of one file (default 256 MiB)\n"
            "  -h, --help          show this help\n"
            "\n"
            "Exit status: 0 all decoded, 1 a decode error (partial output and the byte offset\n"
            "are printed), 2 a file could not be read or bad usage.\n");
}

/* Reads a whole file or stdin ("-") into a buffer capped at DECODE_MAX_INPUT. */
static int read_input(const char *path, struct et_buf *out)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    uint8_t chunk[65536];
    int rc = 0;

    if (f == NULL) {
        et_cli_err("%s: %s", path, strerror(errno));
        return ET_EIO;
    }
    et_buf_init(out, DECODE_MAX_INPUT);
    for (;;) {
        size_t n = fread(chunk, 1, sizeof(chunk), f);
        if (n > 0 && (rc = et_buf_append(out, chunk, n)) != 0) {
            et_cli_err("%s: larger than %zu MiB, not decoded", path,
                       DECODE_MAX_INPUT / (1024 * 1024));
            break;
        }
        if (n < sizeof(chunk)) {
            if (ferror(f)) {
                et_cli_err("%s: read error: %s", path, strerror(errno));
                rc = ET_EIO;
            }
            break;
        }
    }
    if (f != stdin)
        fclose(f);
    if (rc != 0)
        et_buf_free(out);
    return rc;
}

/* ---- driver --------------------------------------------------------------------------- */

/* Decodes one input. Returns ET_EXIT_OK, ET_EXIT_FINDINGS (decode error) or ET_EXIT_INPUT. */
static int decode_one(const char *path, const struct et_cli_render_opts *o)
{
    struct et_buf in, out;
    struct et_exchange *x = NULL;
    struct et_error err;
    char msg[400];
    int kind, bad = 0, rc;

    if (read_input(path, &in) != 0)
        return ET_EXIT_INPUT;
    et_buf_init(&out, o->max_output);
    et_error_clear(&err);
    kind = o->fragment ? ET_HTTP_NONE : et_http_detect(in.data, in.len);

    if (o->json) {
        et_buf_puts(&out, "{\"file\":");
        et_cli_json_str(&out, path);
        et_buf_putc(&out, ',');
    }
    if (kind == ET_HTTP_REQUEST || kind == ET_HTTP_RESPONSE) {
        x = et_exchange_new();
        if (x == NULL) {
            et_cli_err("out of memory");
            exit(ET_EXIT_INPUT);
        }
        x->source = ET_SRC_RAW;
        rc = kind == ET_HTTP_REQUEST ? et_http_parse_request(in.data, in.len, x, &err)
                                     : et_http_parse_response(in.data, in.len, x, &err);
        if (rc != 0) {
            et_cli_err("%s: HTTP %s: %s", path, kind == ET_HTTP_REQUEST ? "request" : "response",
                       et_error_format(&err, msg, sizeof(msg)));
            bad = 1;
        }
        if (o->json) {
            bad |= et_cli_http_json(path, x, kind == ET_HTTP_REQUEST, o, &out);
            et_buf_puts(&out, ",\"http_error\":");
            if (rc != 0)
                et_cli_json_error(&out, &err);
            else
                et_buf_puts(&out, "null");
        } else {
            bad |= et_cli_http_text(path, x, kind == ET_HTTP_REQUEST, o, &out);
            if (rc != 0)
                et_buf_printf(&out, "<!-- HTTP message incomplete: %s -->\n", msg);
        }
    } else if (o->json) {
        et_buf_puts(&out, "\"type\":\"wbxml\",\"body\":");
        bad |= et_cli_wbxml_json(in.data, in.len, o, &out, &err);
        if (err.code != 0)
            et_cli_err("%s: %s", path, et_error_format(&err, msg, sizeof(msg)));
    } else {
        bad |= et_cli_wbxml_text(path, "WBXML", in.data, in.len, o, &out);
    }
    if (o->json)
        et_buf_puts(&out, "}\n");
    else if (out.len > 0 && out.data[out.len - 1] != '\n')
        et_buf_putc(&out, '\n');

    if (out.len > 0)
        fwrite(out.data, 1, out.len, stdout);
    et_buf_free(&out);
    et_buf_free(&in);
    et_exchange_free(x);
    return bad ? ET_EXIT_FINDINGS : ET_EXIT_OK;
}

static int parse_size(const char *s, size_t *out)
{
    char *end;
    unsigned long long v;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v == 0)
        return -1;
    *out = (size_t)v;
    return 0;
}

int et_cmd_decode(int argc, char **argv)
{
    struct et_cli_render_opts o = {0};
    int status = ET_EXIT_OK, nfiles = 0, i;

    o.max_output = DECODE_DEFAULT_MAX_OUTPUT;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return ET_EXIT_OK;
        } else if (strcmp(a, "--json") == 0) {
            o.json = 1;
        } else if (strcmp(a, "--compact") == 0) {
            o.compact = 1;
        } else if (strcmp(a, "--no-status-names") == 0) {
            o.no_status_names = 1;
        } else if (strcmp(a, "--fragment") == 0) {
            o.fragment = 1;
        } else if (strcmp(a, "--include-secrets") == 0) {
            o.include_secrets = 1;
        } else if (strcmp(a, "--max-output") == 0) {
            if (i + 1 >= argc || parse_size(argv[++i], &o.max_output) != 0) {
                et_cli_err("--max-output needs a positive number of bytes");
                return ET_EXIT_INPUT;
            }
        } else if (strcmp(a, "--") == 0) {
            i++;
            break;
        } else if (a[0] == '-' && a[1] != '\0') {
            et_cli_err("decode: unknown option '%s' (see eastrace decode --help)", a);
            return ET_EXIT_INPUT;
        } else {
            break;
        }
    }
    for (; i < argc; i++) {
        struct et_error e;
        char msg[400];
        int rc;
        /* A capture, .saz, HAR or log is not one message: say what it is and who reads it. */
        et_error_clear(&e);
        if (strcmp(argv[i], "-") != 0 && et_pipe_check_format(argv[i], "wbxml", &e) != 0) {
            et_cli_err("%s", et_error_format(&e, msg, sizeof(msg)));
            status = ET_EXIT_INPUT;
            nfiles++;
            continue;
        }
        rc = decode_one(argv[i], &o);
        if (rc > status)
            status = rc;
        nfiles++;
    }
    if (nfiles == 0) {
        usage(stderr);
        return ET_EXIT_INPUT;
    }
    return status;
}
