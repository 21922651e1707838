/*
 * EAS (Exchange ActiveSync) facts the decoder names: the Status values of every command
 * (MS-ASCMD) and, below, the EAS request (MS-ASHTTP query string, plain and base64 forms, and
 * the EAS headers).
 */
#ifndef ET_DECODER_EAS_H
#define ET_DECODER_EAS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One Status value: its number, a short name ("InvalidSyncKey") and a one-sentence meaning
 * for an administrator. Entries are static: valid for the life of the program. */
struct et_eas_status {
    int code;
    const char *name;
    const char *meaning;
};

/*
 * Looks up the meaning of a Status element's value.
 *   root_cmd: local name of the WBXML document's root element ("Sync", "FolderSync",
 *             "Provision", "Settings", "ResolveRecipients", ...), case-sensitive as in the
 *             schema; NULL means unknown.
 *   parent:   local name of the element holding the Status ("Collection", "Policy",
 *             "RemoteWipe", "Oof", "Certificates", ...); NULL means the root.
 *   code:     the Status value.
 * The per-command table wins; values 101-184 not in it fall back to the Common status codes
 * (MS-ASCMD 2.2.2), which apply to every command. Returns a static entry or NULL when unknown.
 */
const struct et_eas_status *et_eas_status_lookup(const char *root_cmd, const char *parent,
                                                 int code);

#ifdef __cplusplus
}
#endif
#endif
