/*
 * Helpers shared by the cmocka test binaries: reading fixture files, locating the optional
 * shared corpus, and temporary directories. Include after <cmocka.h>.
 */
#ifndef ET_TESTS_ET_TEST_H
#define ET_TESTS_ET_TEST_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Reads a whole file into a malloc'd buffer (NUL-terminated); NULL when it cannot. */
static inline unsigned char *et_test_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    unsigned char *d = NULL;
    size_t cap = 0, n = 0;
    if (f == NULL)
        return NULL;
    for (;;) {
        if (n + 65536 + 1 > cap) {
            cap = (n + 65536 + 1) * 2;
            unsigned char *nd = realloc(d, cap);
            if (nd == NULL) {
                free(d);
                fclose(f);
                return NULL;
            }
            d = nd;
        }
        size_t r = fread(d + n, 1, 65536, f);
        n += r;
        if (r == 0)
            break;
    }
    fclose(f);
    d[n] = '\0';
    *len = n;
    return d;
}

/* Path of a fixture under tests/fixtures; static buffer. */
static inline const char *et_fixture(const char *rel)
{
    static char path[4096];
    snprintf(path, sizeof(path), "%s/%s", ET_FIXTURES_DIR, rel);
    return path;
}

/* Path under ../shared/corpus, or NULL when the corpus is absent (the test must skip). */
static inline const char *et_corpus(const char *rel)
{
    static char path[4096];
    struct stat st;
    const char *dir = getenv("ET_CORPUS_DIR");
    if (dir == NULL)
        dir = ET_CORPUS_DIR;
    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    if (stat(path, &st) != 0)
        return NULL;
    return path;
}

/* Skips the current test (cmocka's skip()) with a message when the corpus path is absent. */
#define ET_REQUIRE_CORPUS(var, rel)                                                            \
    const char *var = et_corpus(rel);                                                          \
    do {                                                                                       \
        if (var == NULL) {                                                                     \
            print_message("corpus %s absent: skipped\n", rel);                                 \
            skip();                                                                            \
        }                                                                                      \
    } while (0)

/* Makes a fresh temporary directory; returns its path (static buffer per call site). */
static inline char *et_test_tmpdir(char *buf, size_t len)
{
    const char *base = getenv("TMPDIR");
    snprintf(buf, len, "%s/eastrace-test-XXXXXX", base ? base : "/tmp");
    return mkdtemp(buf);
}

/* Removes a directory tree made by a test (files and subdirectories). */
static inline void et_test_rmtree(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;
    char sub[4096];
    if (d == NULL) {
        unlink(path);
        return;
    }
    while ((e = readdir(d)) != NULL) {
        struct stat st;
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if ((size_t)snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name) >= sizeof(sub))
            continue;
        if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode))
            et_test_rmtree(sub);
        else
            unlink(sub);
    }
    closedir(d);
    rmdir(path);
}

#endif
