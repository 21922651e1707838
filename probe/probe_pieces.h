/*
 * Private to probe/ (and its tests and fuzz target, which have this folder on their include
 * path): the pieces of the probe that have tests of their own: version negotiation, the
 * WWW-Authenticate schemes, Autodiscover POX, the certificate checks over PEM. No OpenSSL type
 * here (probe_int.h has those).
 */
#ifndef ET_PROBE_PROBE_PIECES_H
#define ET_PROBE_PROBE_PIECES_H

#include <stddef.h>
#include <stdint.h>

#include "eastrace/probe.h"

/*
 * Chooses the version for the commands from the server's MS-ASProtocolVersions list
 * ("2.5,12.0,12.1,14.0,14.1"; blanks allowed). forced (may be NULL) must be one of ours and
 * the server's. *out receives a static string. Returns 0, ET_ENOTFOUND when no version is
 * common (or forced is not offered by the server), ET_EINVAL when forced is not a version
 * eastrace knows, ET_EPARSE for an empty list.
 */
int et_probe_negotiate_version(const char *server_versions, const char *forced,
                               const char **out);

/* Authentication schemes offered by WWW-Authenticate headers. */
enum et_probe_auth {
    ET_PROBE_AUTH_BASIC = 1u << 0,
    ET_PROBE_AUTH_NTLM = 1u << 1,
    ET_PROBE_AUTH_NEGOTIATE = 1u << 2,
    ET_PROBE_AUTH_BEARER = 1u << 3,
    ET_PROBE_AUTH_DIGEST = 1u << 4,
    ET_PROBE_AUTH_OTHER = 1u << 5
};
/* Bit set of every scheme in every WWW-Authenticate header of h (challenges may be
 * comma-separated in one header). 0 when there is none. */
unsigned et_probe_auth_schemes(const struct et_headers *h);
/* One sentence on what a set of schemes means for an EAS device. Static. */
const char *et_probe_auth_explain(unsigned schemes);
/* Count of comma-separated items in an MS-ASProtocolCommands-style list; 1 when cmd
 * ("Provision") is in it (case-sensitive) and has_cmd is not NULL. */
size_t et_probe_list_count(const char *list, const char *cmd, int *has_cmd);

/* What an Autodiscover (POX, mobilesync schema) response said. Strings point into arena. */
struct et_probe_autodiscover {
    const char *eas_url;     /* Server/Url of the MobileSync server, or NULL */
    const char *server_name; /* Server/Name, or NULL */
    const char *display_name;
    const char *redirect;    /* Action/Redirect: another e-mail address to try, or NULL */
    const char *error_code;  /* Error/ErrorCode or Action/Error/Status, or NULL */
    const char *error_message;
};
/*
 * Parses an Autodiscover response body. Returns 0 when it is an Autodiscover response (even
 * one carrying an error: see error_code), ET_EPARSE when the body is not one (e says what was
 * found instead: an HTML page is the usual case), ET_ENOMEM. Borrows p.
 */
int et_probe_autodiscover_parse(const uint8_t *p, size_t n, struct et_arena *a,
                                struct et_probe_autodiscover *out, struct et_error *e);
/* Appends the POX request for email (mobilesync request schema) to out. */
int et_probe_autodiscover_request(const char *email, struct et_buf *out);

/*
 * Certificate checks of step 3 on a chain given as PEM (leaf first, then what the server
 * sent), against ca_file (PEM; NULL means the system store), for host name host (DNS name
 * or IP literal), at time now (seconds since the epoch; 0 means now). Fills step s (its
 * result, reason, next step and one detail line per certificate); lines are allocated in a.
 * Returns 0 when the checks ran (s->result says how they went), ET_EPARSE when chain_pem
 * holds no certificate, ET_EIO when ca_file cannot be read, ET_ENOMEM.
 */
int et_probe_check_chain_pem(const char *chain_pem, size_t len, const char *ca_file,
                             const char *host, int64_t now, struct et_arena *a,
                             struct et_probe_step *s);

#endif
