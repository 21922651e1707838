/*
 * Decoder benchmark: WBXML bodies to XML with eastrace and with libwbxml (Debian 0.11.8,
 * wbxml_conv_wbxml2xml_run, the converter behind wbxml2xml), in the same run, on the same set of
 * bodies. Prints input MB/s for each and the ratio.
 *
 * Bodies: every *.wbxml under the directories given on the command line (default: the shared
 * corpus's real bodies and tests/fixtures/wbxml). Only bodies both decoders accept are timed, so
 * both work on identical input; the others are counted and listed.
 *
 * usage: bench_decode [--seconds S] [DIR...]
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

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One eastrace conversion; returns 0 on success. out is reused across calls. */
static int run_eastrace(const struct body *b, struct et_buf *out)
{
    struct et_wbxml_opts o = {0};
    struct et_wbxml_render_opts ro = {0};
    o.fragment = -1;
    et_buf_reset(out);
    return et_wbxml_bytes_to_xml(b->data, b->len, &o, &ro, out, NULL);
}

static int run_libwbxml(const struct body *b)
{
    WBXMLConvWBXML2XML *conv = NULL;
    WB_UTINY *xml = NULL;
    WB_ULONG xml_len = 0;
    WBXMLError rc;

    if (wbxml_conv_wbxml2xml_create(&conv) != WBXML_OK)
        return -1;
    wbxml_conv_wbxml2xml_set_language(conv, WBXML_LANG_ACTIVESYNC);
    wbxml_conv_wbxml2xml_set_gen_type(conv, WBXML_GEN_XML_INDENT);
    wbxml_conv_wbxml2xml_set_indent(conv, 2);
    rc = wbxml_conv_wbxml2xml_run(conv, b->data, (WB_ULONG)b->len, &xml, &xml_len);
    wbxml_conv_wbxml2xml_destroy(conv);
    free(xml);
    return rc == WBXML_OK ? 0 : -1;
}

/* Converts every accepted body repeatedly for `secs`; returns input MB/s. */
static double measure(int which, const unsigned char *accepted, double secs, size_t *rounds_out)
{
    struct et_buf out;
    double t0 = now(), t;
    size_t bytes = 0, rounds = 0;

    et_buf_init(&out, 0);
    do {
        for (size_t i = 0; i < nbodies; i++) {
            if (!accepted[i])
                continue;
            if (which == 0)
                run_eastrace(&bodies[i], &out);
            else
                run_libwbxml(&bodies[i]);
            bytes += bodies[i].len;
        }
        rounds++;
        t = now() - t0;
    } while (t < secs);
    et_buf_free(&out);
    *rounds_out = rounds;
    return (double)bytes / t / 1e6;
}

int main(int argc, char **argv)
{
    double secs = 3.0;
    unsigned char *accepted;
    size_t naccepted = 0, total_bytes = 0, rounds_e, rounds_l;
    int ndirs = 0;
    struct et_buf out;

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
        int e = run_eastrace(&bodies[i], &out);
        int l = run_libwbxml(&bodies[i]);
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
    et_buf_free(&out);
    if (naccepted == 0) {
        fprintf(stderr, "bench_decode: no body that both decoders accept\n");
        return 2;
    }
    printf("bodies: %zu found, %zu timed (%zu bytes per round), %.1f s per decoder\n", nbodies,
           naccepted, total_bytes, secs);
    double le = measure(1, accepted, secs, &rounds_l);
    double ee = measure(0, accepted, secs, &rounds_e);
    printf("%-28s %10.1f MB/s  (%zu rounds)\n", "libwbxml 0.11.8 wbxml2xml", le, rounds_l);
    printf("%-28s %10.1f MB/s  (%zu rounds)\n", "eastrace et_wbxml_bytes_to_xml", ee, rounds_e);
    printf("ratio eastrace / libwbxml: %.2fx (target >= 5x)\n", ee / le);
    free(accepted);
    return 0;
}
