/* et_outfile (common/outfile.c): an output replaced whole or not at all. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "eastrace/common.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct dir {
    char path[256];
    char target[300];
};

static int setup_dir(void **state)
{
    struct dir *d = calloc(1, sizeof(*d));
    const char *base = getenv("TMPDIR");
    if (d == NULL)
        return -1;
    snprintf(d->path, sizeof(d->path), "%s/eastrace-outfile-XXXXXX", base ? base : "/tmp");
    if (mkdtemp(d->path) == NULL)
        return -1;
    snprintf(d->target, sizeof(d->target), "%s/out.har", d->path);
    *state = d;
    return 0;
}

/* Removes the directory's plain files, then the directory. */
static int teardown_dir(void **state)
{
    struct dir *d = *state;
    DIR *dh = opendir(d->path);
    struct dirent *e;
    char p[600];
    while (dh != NULL && (e = readdir(dh)) != NULL) {
        if (e->d_name[0] == '.' && (e->d_name[1] == '\0' || strcmp(e->d_name, "..") == 0))
            continue;
        snprintf(p, sizeof(p), "%s/%.255s", d->path, e->d_name);
        if (unlink(p) != 0)
            rmdir(p);
    }
    if (dh != NULL)
        closedir(dh);
    rmdir(d->path);
    free(d);
    return 0;
}

static size_t entries(const char *dir)
{
    DIR *dh = opendir(dir);
    struct dirent *e;
    size_t n = 0;
    while (dh != NULL && (e = readdir(dh)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    if (dh != NULL)
        closedir(dh);
    return n;
}

static void put(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void expect(const char *path, const char *text)
{
    char buf[64] = {0};
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fread(buf, 1, sizeof(buf) - 1, f), strlen(text));
    fclose(f);
    assert_string_equal(buf, text);
}

static void test_outfile_commit_replaces_target_with_umask_mode(void **state)
{
    struct dir *d = *state;
    struct et_outfile o;
    struct et_error e;
    struct stat st;
    mode_t old;

    put(d->target, "old");
    et_error_clear(&e);
    old = umask(027);
    assert_int_equal(et_outfile_begin(&o, d->target, &e), 0);
    umask(old);
    assert_non_null(o.tmp);
    assert_int_equal(strncmp(o.tmp, d->target, strlen(d->target)), 0);
    assert_int_equal(stat(o.tmp, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640);
    put(o.tmp, "new");
    expect(d->target, "old"); /* untouched until the commit */
    assert_int_equal(et_outfile_commit(&o, &e), 0);
    assert_null(o.tmp);
    expect(d->target, "new");
    assert_int_equal(stat(d->target, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640);
    assert_int_equal(entries(d->path), 1);
}

static void test_outfile_abort_leaves_target_and_no_temporary(void **state)
{
    struct dir *d = *state;
    struct et_outfile o;
    struct et_error e;

    put(d->target, "old");
    et_error_clear(&e);
    assert_int_equal(et_outfile_begin(&o, d->target, &e), 0);
    put(o.tmp, "half an export");
    et_outfile_abort(&o);
    assert_null(o.tmp);
    et_outfile_abort(&o); /* twice does nothing */
    expect(d->target, "old");
    assert_int_equal(entries(d->path), 1);
}

static void test_outfile_commit_over_directory_fails_and_cleans_up(void **state)
{
    struct dir *d = *state;
    struct et_outfile o;
    struct et_error e;
    struct stat st;
    char inside[400];

    assert_int_equal(mkdir(d->target, 0700), 0);
    snprintf(inside, sizeof(inside), "%s/keep", d->target);
    put(inside, "kept");
    et_error_clear(&e);
    assert_int_equal(et_outfile_begin(&o, d->target, &e), 0);
    put(o.tmp, "new");
    assert_int_equal(et_outfile_commit(&o, &e), ET_EIO);
    assert_non_null(strstr(e.msg, "cannot replace"));
    assert_null(o.tmp);
    assert_int_equal(stat(d->target, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    expect(inside, "kept");
    assert_int_equal(entries(d->path), 1);
    unlink(inside);
}

static void test_outfile_begin_in_missing_directory_says_where(void **state)
{
    struct dir *d = *state;
    struct et_outfile o;
    struct et_error e;
    char target[400];

    snprintf(target, sizeof(target), "%s/no-such-dir/out.saz", d->path);
    et_error_clear(&e);
    assert_int_equal(et_outfile_begin(&o, target, &e), ET_EIO);
    assert_null(o.tmp);
    assert_non_null(strstr(e.msg, "no-such-dir/out.saz"));
    assert_int_equal(entries(d->path), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_outfile_commit_replaces_target_with_umask_mode,
                                        setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_outfile_abort_leaves_target_and_no_temporary,
                                        setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_outfile_commit_over_directory_fails_and_cleans_up,
                                        setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_outfile_begin_in_missing_directory_says_where,
                                        setup_dir, teardown_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
