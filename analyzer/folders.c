/*
 * The folder hierarchy per device, learnt from successful FolderSync answers (Add, Update,
 * Delete; SyncKey 0 starts again), and the names it gives the collections of later exchanges
 * ("Inbox (5)" in findings, folder_name in the view).
 */
#include "analyzer_int.h"

#include <stdio.h>
#include <string.h>

/* ---- folder names --------------------------------------------------------------------- */

static struct folder *find_folder(struct dev *d, const char *id)
{
    for (unsigned i = 0; i < d->nfolders; i++)
        if (strcmp(d->folders[i].id, id) == 0)
            return &d->folders[i];
    return NULL;
}

/* The text of n, at most 255 bytes, NUL-terminated in buf; NULL when n is absent or empty. */
static const char *node_text(const struct et_wbxml_node *n, char *buf, size_t len)
{
    size_t tl;
    const char *t;
    if (n == NULL || (t = et_wbxml_node_text(n, &tl)) == NULL || tl == 0)
        return NULL;
    tl = ET_MIN(tl, len - 1);
    memcpy(buf, t, tl);
    buf[tl] = '\0';
    return buf;
}

void et__an_folders_clear(struct dev *d)
{
    for (unsigned i = 0; i < d->nfolders; i++) {
        et_free(d->folders[i].id);
        et_free(d->folders[i].name);
    }
    d->nfolders = 0;
}

/* Learns the hierarchy from a successful FolderSync answer: Add and Update name a ServerId,
 * Delete forgets it; an answer to SyncKey 0 is the whole hierarchy again. */
void et__an_learn_folders(struct emit *em)
{
    const struct et_view *v = em->v;
    struct dev *d = em->d;
    const struct et_wbxml_node *root = v->resp_doc ? v->resp_doc->root : NULL;
    static const char *const kinds[] = {"Changes/Add", "Changes/Update", "Changes/Delete"};

    if (root == NULL || root->name == NULL || strcmp(root->name, "FolderSync") != 0 ||
        v->top_status != 1)
        return;
    for (size_t i = 0; i < v->ncolls; i++)
        if (v->colls[i].collection_id != NULL &&
            strcmp(v->colls[i].collection_id, "FolderSync") == 0 &&
            key_is_zero(v->colls[i].sync_key))
            et__an_folders_clear(d);
    for (int k = 0; k < 3; k++) {
        struct et_wbxml_iter it;
        const struct et_wbxml_node *n;
        et_wbxml_iter_init(&it, root, kinds[k]);
        while ((n = et_wbxml_iter_next(&it)) != NULL) {
            char idb[256], nameb[256];
            const char *id = node_text(et_wbxml_find(n, "ServerId"), idb, sizeof(idb));
            const char *name = k < 2 ? node_text(et_wbxml_find(n, "DisplayName"), nameb,
                                                 sizeof(nameb))
                                     : NULL;
            struct folder *f;
            char *nm;
            if (id == NULL)
                continue;
            f = find_folder(d, id);
            if (k == 2) {
                if (f != NULL) {
                    et_free(f->id);
                    et_free(f->name);
                    *f = d->folders[--d->nfolders];
                }
                continue;
            }
            /* Names are copied only when new or changed: a device that repeats FolderSync
             * costs nothing, and memory follows the hierarchy, not the input. */
            if (name == NULL || (f != NULL && strcmp(f->name, name) == 0))
                continue;
            if ((nm = et_strdup(name)) == NULL) {
                em->failed = 1;
                return;
            }
            if (f != NULL) {
                et_free(f->name);
                f->name = nm;
                continue;
            }
            if (d->nfolders == d->capfolders) {
                unsigned nc = d->capfolders ? d->capfolders * 2 : 32;
                struct folder *nf;
                if (nc > DEV_MAX_FOLDERS) {
                    et_free(nm);
                    continue; /* a hierarchy this large goes partly unnamed */
                }
                nf = et_realloc(d->folders, nc * sizeof(*nf));
                if (nf == NULL) {
                    et_free(nm);
                    em->failed = 1;
                    return;
                }
                d->folders = nf;
                d->capfolders = nc;
            }
            if ((d->folders[d->nfolders].id = et_strdup(id)) == NULL) {
                et_free(nm);
                em->failed = 1;
                return;
            }
            d->folders[d->nfolders].name = nm;
            d->nfolders++;
        }
    }
}

/* Names the view's collections (the one field of the view the analyzer writes, as
 * et_analyzer_feed() documents). */
void et__an_name_collections(struct emit *em, struct dev *d, const struct et_view *cv)
{
    struct et_view *v = (struct et_view *)(uintptr_t)cv;
    for (size_t i = 0; i < v->ncolls; i++) {
        const struct folder *f;
        v->colls[i].folder_name = NULL;
        if (v->colls[i].collection_id == NULL ||
            (f = find_folder(d, v->colls[i].collection_id)) == NULL)
            continue;
        /* Copied into the exchange's arena: a later rename does not touch this view. */
        if ((v->colls[i].folder_name = et_arena_strdup(em->a, f->name)) == NULL)
            em->failed = 1;
    }
}

/* "Inbox (5)" when the name is known, else "5". */
const char *et__an_coll_label(struct dev *d, const char *id, char *buf, size_t len)
{
    const struct folder *f;
    if (id == NULL)
        return "?";
    if (d == NULL || (f = find_folder(d, id)) == NULL)
        return id;
    snprintf(buf, len, "%s (%s)", f->name, id);
    return buf;
}
