/*
 * An output file replaced whole or not at all: the writer writes a temporary file next to the
 * target (same directory, so the rename cannot cross file systems), and only a finished,
 * successful output is renamed over the target. A failure midway (an input that ends with an
 * error, a full disk, a writer's error) leaves an existing target byte for byte as it was and
 * no temporary file behind.
 *
 *   et_outfile_begin(target)  --> "<target>.tmp-XXXXXX" (mkstemp; 0666 minus the umask)
 *   the writer opens o.tmp by name and writes it
 *   et_outfile_commit()       --> fsync, rename(tmp, target)
 *   et_outfile_abort()        --> unlink(tmp)
 */
#include "eastrace/common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int et_outfile_begin(struct et_outfile *o, const char *target, struct et_error *e)
{
    size_t n = strlen(target) + sizeof(".tmp-XXXXXX");
    mode_t mask;
    int fd;

    memset(o, 0, sizeof(*o));
    o->target = target;
    if ((o->tmp = et_malloc(n)) == NULL) {
        et_error_set(e, ET_ENOMEM, "out of memory");
        return ET_ENOMEM;
    }
    snprintf(o->tmp, n, "%s.tmp-XXXXXX", target);
    if ((fd = mkstemp(o->tmp)) < 0) {
        et_error_set(e, ET_EIO, "cannot create a temporary file next to %s: %s", target,
                     strerror(errno));
        et_free(o->tmp);
        o->tmp = NULL;
        return ET_EIO;
    }
    /* mkstemp creates 0600; the output is a normal file, as open(O_CREAT, 0666) makes it. */
    mask = umask(0);
    umask(mask);
    if (fchmod(fd, 0666 & ~mask) != 0) {
        et_error_set(e, ET_EIO, "cannot set the mode of %s: %s", o->tmp, strerror(errno));
        close(fd);
        et_outfile_abort(o);
        return ET_EIO;
    }
    close(fd);
    return 0;
}

int et_outfile_commit(struct et_outfile *o, struct et_error *e)
{
    int fd, rc = 0;
    if (o->tmp == NULL) {
        et_error_set(e, ET_EINVAL, "no temporary file for %s", o->target);
        return ET_EINVAL;
    }
    /* On the disk before it replaces the old file: a crash then leaves one or the other. */
    fd = open(o->tmp, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0) {
        et_error_set(e, ET_EIO, "cannot sync %s: %s", o->tmp, strerror(errno));
        rc = ET_EIO;
    }
    if (fd >= 0)
        close(fd);
    if (rc == 0 && rename(o->tmp, o->target) != 0) {
        et_error_set(e, ET_EIO, "cannot replace %s: %s", o->target, strerror(errno));
        rc = ET_EIO;
    }
    if (rc != 0) {
        et_outfile_abort(o);
        return rc;
    }
    et_free(o->tmp);
    o->tmp = NULL;
    return 0;
}

void et_outfile_abort(struct et_outfile *o)
{
    if (o->tmp != NULL)
        unlink(o->tmp);
    et_free(o->tmp);
    o->tmp = NULL;
}
