/*
 * Decoder benchmark: WBXML bodies to XML with eastrace and with libwbxml (Debian 0.11.8,
 * wbxml_conv_wbxml2xml_run, the converter behind wbxml2xml), in the same run, on the same set of
 * bodies. Prints input MB/s for each and the ratio.
 *
 * Bodies: every *.wbxml under the directories given on the command line (default: the shared
 * corpus's real bodies and tests/fixtures/wbxml). Only bodies both decoders accept are timed, so
 * both work on identical input; the others are counted and listed.
 *
 * Fairness: both write indented XML (eastrace's default, libwbxml's WBXML_GEN_XML_INDENT with
 * indent 2), and the pair is timed again writing compact XML (eastrace compact=1, libwbxml
 * WBXML_GEN_XML_COMPACT), so neither side pays for whitespace the other skips. Time is the
 * thread's CPU time, and the four runs take turns in slices of about 50 ms, so on a shared,
 * loaded machine all of them see the same conditions and time spent descheduled counts for
 * none of them.
 *
 * usage: bench_decode [--seconds S] [DIR...]     (S: CPU seconds per run, default 3)
 *
 * Measured (2 shared cores, default bodies, --seconds 3, three runs): before the one-pass text
 * escaper in wbxml_render.c eastrace 271-280 MB/s vs libwbxml 53-55 MB/s, 4.97x/5.20x/5.06x;
 * after 1092-1135 MB/s vs 56-58 MB/s, 19.65x/19.80x/19.74x (compact XML about 20x).
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <wbxml/wbxml.h>

#include "eastrace/common.h"
#include "eastrace/wbxml.h"

struct body {
    unsigned char *data;
    size_t len;
    char *path;
};

static struct body *bodies;
static size_t nbodies, capbodies;

static unsigned char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    unsigned char *d;
    if (f == NULL)
        return NULL;
    if (fstat(fileno(f), &st) != 0 || st.st_size <= 0 || st.st_size > (64 << 20)) {
        fclose(f);
        return NULL;
    }
    d = malloc((size_t)st.st_size);
    if (d != NULL && fread(d, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
        free(d);
        d = NULL;
    }
    fclose(f);
    *len = (size_t)st.st_size;
    return d;
}

static void collect(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[4096];
    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        struct stat st;
        size_t n = strlen(e->d_name);
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (stat(path, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            collect(path);
        } else if (n > 6 && strcmp(e->d_name + n - 6, ".wbxml") == 0) {
            struct body b;
            b.data = read_file(path, &b.len);
            if (b.data == NULL)
                continue;
            b.path = strdup(path);
            if (nbodies == capbodies) {
                capbodies = capbodies ? capbodies * 2 : 64;
                bodies = realloc(bodies, capbodies * sizeof(*bodies));
                if (bodies == NULL)
                    abort();
            }
            bodies[nbodies++] = b;
        }
    }
    closedir(d);
}

/* CPU time of this thread: time spent descheduled on a busy machine is not counted. */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One eastrace conversion; returns 0 on success. out is reused across calls. */
static int run_eastrace(const struct body *b, struct et_buf *out, int compact)
{
    struct et_wbxml_opts o = {0};
    struct et_wbxml_render_opts ro = {0};
    o.fragment = -1;
    ro.compact = compact;
    et_buf_reset(out);
    return et_wbxml_bytes_to_xml(b->data, b->len, &o, &ro, out, NULL);
}

static int run_libwbxml(const struct body *b, int compact)
{
    WBXMLConvWBXML2XML *conv = NULL;
    WB_UTINY *xml = NULL;
    WB_ULONG xml_len = 0;
    WBXMLError rc;

    if (wbxml_conv_wbxml2xml_create(&conv) != WBXML_OK)
        return -1;
    wbxml_conv_wbxml2xml_set_language(conv, WBXML_LANG_ACTIVESYNC);
    if (compact) {
        wbxml_conv_wbxml2xml_set_gen_type(conv, WBXML_GEN_XML_COMPACT);
    } else {
        wbxml_conv_wbxml2xml_set_gen_type(conv, WBXML_GEN_XML_INDENT);
        wbxml_conv_wbxml2xml_set_indent(conv, 2);
    }
    rc = wbxml_conv_wbxml2xml_run(conv, b->data, (WB_ULONG)b->len, &xml, &xml_len);
    wbxml_conv_wbxml2xml_destroy(conv);
    free(xml);
    return rc == WBXML_OK ? 0 : -1;
}

/* One timed configuration: which decoder, which output form, and what it has done so far. */
struct run {
    const char *label;
    int eastrace;
    int compact;
    double cpu;   /* CPU seconds spent converting */
    size_t bytes; /* input bytes converted */
    size_t rounds;
};

/* Converts every accepted body, round after round, for about `slice` CPU seconds. */
static void run_slice(struct run *r, const unsigned char *accepted, struct et_buf *out,
                      double slice)
{
    double t0 = cpu_now(), t;
    do {
        for (size_t i = 0; i < nbodies; i++) {
            if (!accepted[i])
                continue;
            if (r->eastrace)
                run_eastrace(&bodies[i], out, r->compact);
            else
                run_libwbxml(&bodies[i], r->compact);
            r->bytes += bodies[i].len;
        }
        r->rounds++;
        t = cpu_now() - t0;
    } while (t < slice);
    r->cpu += t;
}

int main(int argc, char **argv)
{
    double secs = 3.0;
    unsigned char *accepted;
    size_t naccepted = 0, total_bytes = 0;
    int ndirs = 0;
    struct et_buf out;
    struct run runs[] = {
        {"libwbxml 0.11.8 wbxml2xml", 0, 0, 0, 0, 0},
        {"eastrace et_wbxml_bytes_to_xml", 1, 0, 0, 0, 0},
        {"libwbxml 0.11.8 wbxml2xml, compact", 0, 1, 0, 0, 0},
        {"eastrace et_wbxml_bytes_to_xml, compact", 1, 1, 0, 0, 0},
    };

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
            secs = strtod(argv[++i], NULL);
        } else {
            collect(argv[i]);
            ndirs++;
        }
    }
    if (ndirs == 0) {
        collect(ET_SOURCE_DIR "/../shared/corpus/syncgw-traces/extracted");
        collect(ET_SOURCE_DIR "/../shared/corpus/pywbxmldecoder");
        collect(ET_SOURCE_DIR "/../shared/corpus/generated-sogo-loopback/run");
        collect(ET_SOURCE_DIR "/../shared/corpus/mitmproxy/wbxml");
        collect(ET_SOURCE_DIR "/tests/fixtures/wbxml");
    }
    if (nbodies == 0) {
        fprintf(stderr, "bench_decode: no .wbxml bodies found\n");
        return 2;
    }
    accepted = calloc(nbodies, 1);
    et_buf_init(&out, 0);
    for (size_t i = 0; i < nbodies; i++) {
        int e = run_eastrace(&bodies[i], &out, 0);
        int l = run_libwbxml(&bodies[i], 0);
        if (e == 0 && l == 0) {
            accepted[i] = 1;
            naccepted++;
            total_bytes += bodies[i].len;
        } else {
            printf("  not timed (%s): %s\n",
                   e != 0 && l != 0 ? "both reject" : e != 0 ? "eastrace rejects"
                                                             : "libwbxml rejects",
                   bodies[i].path);
        }
    }
    if (naccepted == 0) {
        fprintf(stderr, "bench_decode: no body that both decoders accept\n");
        return 2;
    }
    printf("bodies: %zu found, %zu timed (%zu bytes per round), %.1f CPU s per run, "
           "runs interleaved\n",
           nbodies, naccepted, total_bytes, secs);
    for (;;) {
        int busy = 0;
        for (size_t k = 0; k < sizeof(runs) / sizeof(runs[0]); k++) {
            if (runs[k].cpu < secs) {
                run_slice(&runs[k], accepted, &out, 0.05);
                busy = 1;
            }
        }
        if (!busy)
            break;
    }
    et_buf_free(&out);
    for (size_t k = 0; k < sizeof(runs) / sizeof(runs[0]); k++)
        printf("%-40s %10.1f MB/s  (%zu rounds)\n", runs[k].label,
               (double)runs[k].bytes / runs[k].cpu / 1e6, runs[k].rounds);
    printf("ratio eastrace / libwbxml, compact XML: %.2fx\n",
           ((double)runs[3].bytes / runs[3].cpu) / ((double)runs[2].bytes / runs[2].cpu));
    printf("ratio eastrace / libwbxml: %.2fx (target >= 5x)\n",
           ((double)runs[1].bytes / runs[1].cpu) / ((double)runs[0].bytes / runs[0].cpu));
    free(accepted);
    return 0;
}
