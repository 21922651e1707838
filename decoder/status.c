/*
 * Status values of the EAS commands, by name. Sources: [MS-ASCMD] 2.2.2 (Common Status Codes)
 * and 2.2.3.177.x (Status element per command), [MS-ASPROV] 2.2.2.54 (Provision Status).
 * The tables are facts from the specifications, written here in our own words.
 */
#include "eastrace/eas.h"

#include <string.h>

#define ENTRY(c, n, m) { (c), (n), (m) }

/* [MS-ASCMD] 2.2.2: values common to every command; each means the request failed. */
static const struct et_eas_status common_status[] = {
    ENTRY(101, "InvalidContent", "The request body could not be parsed (not valid WBXML or "
                                 "the wrong content type)."),
    ENTRY(102, "InvalidWBXML", "The request contains malformed WBXML."),
    ENTRY(103, "InvalidXML", "The XML in the request does not follow the command's schema."),
    ENTRY(110, "ServerError", "The server hit an error it cannot recover from."),
    ENTRY(111, "ServerErrorRetryLater", "The server hit a transient error; retry later."),
    ENTRY(142, "DeviceNotProvisioned", "The device must run Provision before this command."),
    ENTRY(143, "PolicyRefresh", "The security policy changed; the device must provision again."),
    ENTRY(144, "InvalidPolicyKey", "The X-MS-PolicyKey sent is not the current one; the device "
                                   "must provision again."),
};

/* [MS-ASCMD] 2.2.3.177.17 Sync. */
static const struct et_eas_status sync_status[] = {
    ENTRY(1, "Success", "The Sync succeeded."),
    ENTRY(3, "InvalidSyncKey", "The SyncKey is invalid or out of date; the client must resync "
                               "the folder from SyncKey 0."),
};

/* [MS-ASCMD] 2.2.3.177.11 Ping. */
static const struct et_eas_status ping_status[] = {
    ENTRY(1, "HeartbeatExpired", "The heartbeat interval passed with no changes in the "
                                 "watched folders."),
    ENTRY(2, "Changes", "Changes occurred in at least one watched folder; the client syncs it."),
};

struct table {
    const char *root;   /* root element local name */
    const char *parent; /* element holding Status; NULL matches any parent */
    const struct et_eas_status *v;
    size_t n;
};

#define TABLE(r, p, a) { (r), (p), (a), ET_ARRAY_SIZE_(a) }
#define ET_ARRAY_SIZE_(a) (sizeof(a) / sizeof((a)[0]))

static const struct table tables[] = {
    TABLE("Sync", NULL, sync_status),
    TABLE("Ping", NULL, ping_status),
};

static const struct et_eas_status *find_code(const struct et_eas_status *v, size_t n, int code)
{
    for (size_t i = 0; i < n; i++)
        if (v[i].code == code)
            return &v[i];
    return NULL;
}

static int name_eq(const char *a, const char *b)
{
    return a != NULL && b != NULL && strcmp(a, b) == 0;
}

const struct et_eas_status *et_eas_status_lookup(const char *root_cmd, const char *parent,
                                                 int code)
{
    const struct et_eas_status *s;

    for (size_t i = 0; i < ET_ARRAY_SIZE_(tables); i++) {
        const struct table *t = &tables[i];
        if (!name_eq(t->root, root_cmd))
            continue;
        if (t->parent != NULL && !name_eq(t->parent, parent))
            continue;
        s = find_code(t->v, t->n, code);
        if (s != NULL)
            return s;
    }
    return find_code(common_status, ET_ARRAY_SIZE_(common_status), code);
}
