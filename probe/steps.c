/*
 * Steps 2 to 8 of the probe, each over the main connection: DNS and TCP, TLS (the chain
 * checks are tls.c's), OPTIONS (version negotiation), Provision, FolderSync, Sync of the
 * Inbox and Ping; command() provisions and retries once when a command is answered "provision
 * first", as a device does.
 */
#include "probe_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netdb.h>

#include "eastrace/eas.h"
#include "eastrace/http.h"
#include "eastrace/tls.h"
#include "eastrace/wbxml.h"

#define SYNC_WINDOW 5

/* ---- Step 2 and 3: DNS, TCP, TLS ------------------------------------------------------ */

int et__probe_step_connect_tls(struct probe *pr)
{
    struct et_probe_step *s2 = &pr->r->steps[ET_PROBE_STEP_CONNECT];
    struct et_probe_step *s3 = &pr->r->steps[ET_PROBE_STEP_TLS];
    struct et_arena *a = pr->a;
    struct addrinfo hints, *res = NULL;
    char err[512];
    enum et_stage stage = ET_STAGE_NONE;
    int64_t t0 = et_now_us(), t1;
    int gai, rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    gai = getaddrinfo(pr->host, NULL, &hints, &res);
    if (gai == 0) {
        struct et_buf b;
        et_buf_init(&b, 4096);
        for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
            char ip[INET6_ADDRSTRLEN];
            const void *src = ai->ai_family == AF_INET
                                  ? (const void *)&((const struct sockaddr_in *)(const void *)
                                                        ai->ai_addr)->sin_addr
                                  : (const void *)&((const struct sockaddr_in6 *)(const void *)
                                                        ai->ai_addr)->sin6_addr;
            if (inet_ntop(ai->ai_family, src, ip, sizeof(ip)) != NULL)
                et_buf_printf(&b, "%s%s", b.len ? ", " : "", ip);
        }
        et__probe_line(s2, a, "%s resolves to %s", pr->host, b.data ? (char *)b.data : "?");
        et_buf_free(&b);
        freeaddrinfo(res);
    } else if (pr->o->proxy == NULL) {
        et__probe_set(s2, a, ET_PROBE_FAILED,
                      et_arena_printf(a, "cannot resolve %s: %s", pr->host, gai_strerror(gai)),
                      "Check the DNS record of the server name (the external A record, and "
                      "split DNS inside), and that devices use a DNS server that knows it.");
        et__probe_step_done(pr, s2, t0);
        return -1;
    } else {
        et__probe_line(s2, a, "%s does not resolve here (%s); the proxy resolves it", pr->host,
                       gai_strerror(gai));
    }
    if (pr->o->proxy != NULL)
        et__probe_line(s2, a, "through the HTTP proxy %s (CONNECT %s:%d)", pr->o->proxy,
                       pr->host, pr->port);

    rc = et__probe_conn_open(&pr->conn, err, sizeof(err), &stage);
    t1 = et_now_us();
    if (rc != 0 && stage != ET_STAGE_UPSTREAM_TLS) {
        et__probe_set(s2, a, ET_PROBE_FAILED, et_arena_strdup(a, err),
                      stage == ET_STAGE_DNS
                          ? "Check the DNS record of the server name and the DNS server in use."
                      : pr->o->proxy != NULL
                          ? "Check the proxy address and that it allows CONNECT to this host "
                            "and port."
                          : "Check that the port is open through every firewall, reverse proxy "
                            "and load balancer on the way to the server, and that the server "
                            "listens on it (IIS: an https binding on the Default Web Site).");
        et__probe_step_done(pr, s2, t0);
        return -1;
    }
    et__probe_line(s2, a, "connected to %s%s", pr->conn.peer,
                   pr->o->proxy ? " (the proxy), tunnel established" : "");
    et__probe_step_done(pr, s2, t0);

    /* Step 3 */
    if (!pr->tls) {
        et__probe_set(s3, a, ET_PROBE_WARNED, "plain HTTP: passwords travel in clear text",
                      "Publish EAS over https only; devices should never be set up without "
                      "TLS.");
        et__probe_step_done(pr, s3, t1);
        pr->conn_ready = 1;
        return 0;
    }
    if (rc != 0) {
        et__probe_set(s3, a, ET_PROBE_FAILED, et_arena_strdup(a, err),
                      "Check that the port speaks TLS (not plain HTTP) and that the server "
                      "allows TLS 1.2 or later with current ciphers (IIS Crypto, SChannel "
                      "registry settings).");
        et__probe_step_done(pr, s3, t1);
        return -1;
    }
    {
        struct et_tls *tls = pr->conn.tls_conn;
        const char *alpn = et_tls_alpn(tls);
        X509_STORE *st = et__probe_store_new(pr->o->ca_file);

        et__probe_line(s3, a, "%s, cipher %s%s%s", et_tls_version(tls), et_tls_cipher(tls),
                       alpn[0] ? ", ALPN " : "", alpn);
        if (et_tls_version_id(tls) < ET_TLS_1_2)
            et__probe_set(s3, a, ET_PROBE_WARNED,
                          et_arena_printf(a, "the server negotiated %s", et_tls_version(tls)),
                          "Enable TLS 1.2 (or later) on the server; current devices refuse "
                          "TLS 1.0 and 1.1.");
        et__probe_line(s3, a, "trust: %s", pr->o->ca_file ? pr->o->ca_file : "system store");
        if (st == NULL) {
            et__probe_set(s3, a, ET_PROBE_FAILED,
                          et_arena_printf(a, "cannot load the trust store %s",
                                          pr->o->ca_file ? pr->o->ca_file : "(system)"),
                          "Give a readable PEM file of CA certificates with --ca.");
        } else {
            et__probe_check_chain(et_tls_peer_chain(tls), st, pr->host, 0, a, s3);
            X509_STORE_free(st);
        }
    }
    if (s3->result == ET_PROBE_FAILED && pr->o->insecure)
        et__probe_line(s3, a, "going on despite the failure (--insecure): later results are "
                              "not what a device would see");
    et__probe_step_done(pr, s3, t1);
    pr->conn_ready = 1;
    return s3->result == ET_PROBE_FAILED && !pr->o->insecure ? -1 : 0;
}

/* ---- Step 4: OPTIONS ------------------------------------------------------------------ */

int et__probe_step_options(struct probe *pr)
{
    struct et_probe_step *s = &pr->r->steps[ET_PROBE_STEP_OPTIONS];
    struct et_arena *a = pr->a;
    struct et_exchange *x = NULL;
    int64_t t0 = et_now_us();
    int ok = -1;

    et__probe_eas_exchange(pr, s, "OPTIONS", NULL, NULL, NULL, 0, &x);
    if (x == NULL) {
        et__probe_set(s, a, ET_PROBE_FAILED, "out of memory", NULL);
    } else if (!et__probe_explain_http(pr, s, x, "OPTIONS")) {
        struct et_eas_response_info ri;
        const char *chosen = NULL;
        int rc, has_prov = 0, has_fs = 0, has_sync = 0, has_ping = 0;
        size_t ncmd;

        et_eas_response_info(x, &ri);
        et__probe_line(s, a, "HTTP 200%s%s", ri.server_version ? ", MS-Server-ActiveSync " : "",
                       ri.server_version ? ri.server_version : "");
        if (ri.protocol_versions == NULL) {
            et__probe_set(s, a, ET_PROBE_FAILED,
                          "HTTP 200 without MS-ASProtocolVersions: this is not an Exchange "
                          "ActiveSync endpoint",
                          "Something else answers on this URL (a reverse proxy's page, a web "
                          "site): check the URL path and the publishing rule to the CAS.");
            goto out;
        }
        et__probe_line(s, a, "MS-ASProtocolVersions: %s", ri.protocol_versions);
        ncmd = et_probe_list_count(ri.protocol_commands, "Provision", &has_prov);
        et_probe_list_count(ri.protocol_commands, "FolderSync", &has_fs);
        et_probe_list_count(ri.protocol_commands, "Sync", &has_sync);
        et_probe_list_count(ri.protocol_commands, "Ping", &has_ping);
        et__probe_line(s, a, "MS-ASProtocolCommands: %zu commands: %s", ncmd,
                       ri.protocol_commands ? ri.protocol_commands : "(none)");
        rc = et_probe_negotiate_version(ri.protocol_versions, pr->o->protocol, &chosen);
        if (rc == ET_ENOTFOUND && pr->o->protocol != NULL) {
            et__probe_set(s, a, ET_PROBE_FAILED,
                          et_arena_printf(a, "the server does not offer version %s "
                                             "(--protocol)",
                                          pr->o->protocol),
                          "Use a version from the server's list, or check why the server "
                          "no longer offers it (Exchange 2013+ dropped 2.5).");
            goto out;
        } else if (rc != 0) {
            et__probe_set(s, a, ET_PROBE_FAILED,
                          et_arena_printf(a, "no EAS version in common (server: %s)",
                                          ri.protocol_versions),
                          "The server offers no version eastrace speaks (2.5 to 16.1).");
            goto out;
        }
        pr->version = chosen;
        pr->r->protocol = chosen;
        et__probe_line(s, a, "version used: %s (%s)", chosen,
                       pr->o->protocol ? "forced with --protocol" : "highest both speak");
        if (ri.protocol_commands != NULL && (!has_fs || !has_sync))
            et__probe_set(s, a, ET_PROBE_WARNED,
                          "the server does not list FolderSync and Sync among its commands",
                          "Check the server's EAS configuration; devices cannot sync without "
                          "them.");
        if (ri.protocol_commands != NULL && !has_prov)
            et__probe_line(s, a, "Provision is not offered: the server has no device policy");
        ok = 0;
    }
out:
    et_exchange_free(x);
    et__probe_step_done(pr, s, t0);
    return ok;
}

/* ---- Step 5: Provision ---------------------------------------------------------------- */

static int version_at_least(const char *v, int major, int minor)
{
    int M = 0, m = 0;
    if (v == NULL || sscanf(v, "%d.%d", &M, &m) < 1)
        return 0;
    return M > major || (M == major && m >= minor);
}

/* Both phases of Provision. Returns 0 when a final policy key (or no policy) came. */
static int provision(struct probe *pr, struct et_probe_step *s, int show_policy)
{
    struct et_arena *a = pr->a;
    struct et_exchange *x = NULL;
    struct et_wbxml_doc *doc = NULL;
    struct et_buf xml;
    const char *pt = version_at_least(pr->version, 12, 0) ? "MS-EAS-Provisioning-WBXML"
                                                            : "MS-WAP-Provisioning-XML";
    long long st = -1, pst = -1;
    const struct et_wbxml_node *pol;
    const char *temp_key;
    int ok = -1;

    et_buf_init(&xml, 1 << 16);
    et_buf_puts(&xml, "<Provision xmlns=\"Provision:\">");
    if (version_at_least(pr->version, 14, 1))
        et_buf_printf(&xml,
                      "<DeviceInformation xmlns=\"Settings:\"><Set><Model>eastrace probe</Model>"
                      "<FriendlyName>eastrace probe</FriendlyName><OS>eastrace</OS>"
                      "<UserAgent>%s</UserAgent></Set></DeviceInformation>",
                      pr->user_agent);
    et_buf_printf(&xml, "<Policies><Policy><PolicyType>%s</PolicyType></Policy></Policies>"
                        "</Provision>",
                  pt);
    et__probe_eas_exchange(pr, s, "POST", "Provision", (const char *)xml.data, "0", 0, &x);
    et_buf_reset(&xml);
    if (x == NULL || et__probe_explain_http(pr, s, x, "Provision (phase 1)"))
        goto out;
    doc = et__probe_response_doc(x);
    if (doc == NULL || doc->root == NULL) {
        et__probe_set(s, a, ET_PROBE_FAILED, "Provision (phase 1): the response is not WBXML",
                      "Capture the exchange (-w) and look at the body: something other than "
                      "EAS answered.");
        goto out;
    }
    if (show_policy)
        s->xml = et__probe_doc_xml(pr, doc);
    et_wbxml_find_int(doc->root, "Status", &st);
    if (st != 1) {
        const struct et_eas_status *es = et_eas_status_lookup("Provision", NULL, (int)st);
        et__probe_set(s, a, ET_PROBE_FAILED,
                      et_arena_printf(a, "Provision Status %lld%s%s", st, es ? " " : "",
                                      es ? es->meaning : ""),
                      "Check the device's mailbox policy and the server's Provision handling "
                      "(IIS log: the Provision request and its error).");
        goto out;
    }
    if (et_wbxml_find(doc->root, "//RemoteWipe") != NULL) {
        et__probe_set(s, a, ET_PROBE_FAILED,
                      "the server asks this device ID to wipe itself (RemoteWipe); the probe "
                      "does not acknowledge it",
                      "Remove the pending wipe for this device (Clear-MobileDevice -Cancel) or "
                      "probe with another --device-id.");
        goto out;
    }
    pol = et_wbxml_find(doc->root, "Policies/Policy");
    et_wbxml_find_int(pol, "Status", &pst);
    if (pst == 2) {
        et__probe_line(s, a, "the server has no policy for this device (Policy Status 2)");
        ok = 0;
        goto out;
    }
    if (pst != 1) {
        const struct et_eas_status *es = et_eas_status_lookup("Provision", "Policy", (int)pst);
        et__probe_set(s, a, ET_PROBE_FAILED,
                      et_arena_printf(a, "Policy Status %lld%s%s", pst, es ? " " : "",
                                      es ? es->meaning : ""),
                      "Check the policy type the server expects and the mailbox policy "
                      "assigned to the user.");
        goto out;
    }
    temp_key = et_wbxml_node_text(et_wbxml_find(pol, "PolicyKey"), NULL);
    if (temp_key == NULL || temp_key[0] == '\0') {
        et__probe_set(s, a, ET_PROBE_FAILED, "Provision (phase 1): no PolicyKey in the answer",
                      "The server's Provision answer is malformed; look at it with -w.");
        goto out;
    }
    et__probe_line(s, a, "phase 1: policy %s received, temporary key %s%s", pt, temp_key,
                   et_wbxml_find(pol, "Data/EASProvisionDoc") ? " (EASProvisionDoc)" : "");
    temp_key = et_arena_strdup(a, temp_key);

    /* Phase 2: acknowledge with the temporary key, as a device that applied the policy. */
    et_buf_printf(&xml,
                  "<Provision xmlns=\"Provision:\"><Policies><Policy><PolicyType>%s</PolicyType>"
                  "<PolicyKey>%s</PolicyKey><Status>1</Status></Policy></Policies></Provision>",
                  pt, temp_key);
    et_exchange_free(x);
    x = NULL;
    et_wbxml_doc_free(doc);
    doc = NULL;
    et__probe_eas_exchange(pr, s, "POST", "Provision", (const char *)xml.data, temp_key, 0, &x);
    if (x == NULL || et__probe_explain_http(pr, s, x, "Provision (phase 2)"))
        goto out;
    doc = et__probe_response_doc(x);
    st = pst = -1;
    if (doc != NULL && doc->root != NULL) {
        et_wbxml_find_int(doc->root, "Status", &st);
        pol = et_wbxml_find(doc->root, "Policies/Policy");
        et_wbxml_find_int(pol, "Status", &pst);
    } else {
        pol = NULL;
    }
    if (st != 1 || pst != 1) {
        et__probe_set(s, a, ET_PROBE_FAILED,
                      et_arena_printf(a, "Provision (phase 2): Status %lld, Policy Status %lld",
                                      st, pst),
                      "The server did not accept the acknowledgement: check the mailbox policy "
                      "(AllowNonProvisionableDevices, required settings the device cannot "
                      "meet).");
        goto out;
    }
    {
        const char *fk = et_wbxml_node_text(et_wbxml_find(pol, "PolicyKey"), NULL);
        if (fk == NULL || fk[0] == '\0') {
            et__probe_set(s, a, ET_PROBE_FAILED, "Provision (phase 2): no final PolicyKey",
                          "The server's answer is malformed; look at it with -w.");
            goto out;
        }
        snprintf(pr->policy_key, sizeof(pr->policy_key), "%s", fk);
        pr->r->policy_key = et_arena_strdup(a, fk);
        et__probe_line(s, a, "phase 2: acknowledged, final policy key %s", fk);
    }
    ok = 0;
out:
    et_wbxml_doc_free(doc);
    et_exchange_free(x);
    et_buf_free(&xml);
    return ok;
}

int et__probe_step_provision(struct probe *pr)
{
    struct et_probe_step *s = &pr->r->steps[ET_PROBE_STEP_PROVISION];
    int64_t t0 = et_now_us();
    int rc = provision(pr, s, 1);
    et__probe_step_done(pr, s, t0);
    return rc;
}

/*
 * A command that may be answered with "provision first" (HTTP 449, Status 142-144): as a
 * device does, provision and retry once. *xo / *doc receive the final exchange and document.
 */
static int command(struct probe *pr, struct et_probe_step *s, const char *cmd, const char *xml,
                   int timeout_ms, struct et_exchange **xo, struct et_wbxml_doc **doc)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        long long st = -1;
        int again = 0;
        *xo = NULL;
        *doc = NULL;
        et__probe_eas_exchange(pr, s, "POST", cmd, xml, pr->policy_key[0] ? pr->policy_key : "0",
                               timeout_ms, xo);
        if (*xo == NULL)
            return -1;
        if ((*xo)->has_response && (*xo)->resp.status == 449) {
            again = 1;
        } else if ((*xo)->has_response && (*xo)->resp.status == 200) {
            *doc = et__probe_response_doc(*xo);
            if (*doc != NULL && (*doc)->root != NULL &&
                et_wbxml_find_int((*doc)->root, "Status", &st) == 0 && st >= 142 && st <= 144)
                again = 1;
        }
        if (!again || attempt == 1)
            return 0;
        et__probe_line(s, pr->a, "%s: the server asks to provision (%s): provisioning and "
                                 "retrying, as a device does",
                       cmd,
                       (*xo)->resp.status == 449 ? "HTTP 449"
                                                 : et_arena_printf(pr->a, "Status %lld", st));
        et_wbxml_doc_free(*doc);
        et_exchange_free(*xo);
        *doc = NULL;
        *xo = NULL;
        if (provision(pr, s, 0) != 0)
            return -1;
    }
    return 0;
}

/* ---- Step 6: FolderSync --------------------------------------------------------------- */

int et__probe_step_foldersync(struct probe *pr)
{
    struct et_probe_step *s = &pr->r->steps[ET_PROBE_STEP_FOLDERSYNC];
    struct et_exchange *x = NULL;
    struct et_wbxml_doc *doc = NULL;
    struct et_arena *a = pr->a;
    int64_t t0 = et_now_us();
    long long st = -1;
    int ok = -1;

    command(pr, s, "FolderSync",
            "<FolderSync xmlns=\"FolderHierarchy:\"><SyncKey>0</SyncKey></FolderSync>", 0, &x,
            &doc);
    if (x == NULL || et__probe_explain_http(pr, s, x, "FolderSync"))
        goto out;
    if (doc == NULL || doc->root == NULL) {
        et__probe_set(s, a, ET_PROBE_FAILED, "FolderSync: the response is not WBXML",
                      "Look at the exchange (-w): something other than EAS answered.");
        goto out;
    }
    et_wbxml_find_int(doc->root, "Status", &st);
    if (st != 1) {
        et__probe_status_fail(pr, s, "FolderSync", NULL, st);
        goto out;
    }
    {
        struct et_wbxml_iter it;
        const struct et_wbxml_node *add;
        size_t n = 0;
        et_wbxml_iter_init(&it, doc->root, "Changes/Add");
        while ((add = et_wbxml_iter_next(&it)) != NULL) {
            long long type = 0;
            n++;
            if (et_wbxml_find_int(add, "Type", &type) == 0 && type == 2 && !pr->inbox_id[0]) {
                snprintf(pr->inbox_id, sizeof(pr->inbox_id), "%s",
                         et_wbxml_node_text(et_wbxml_find(add, "ServerId"), NULL));
                et__probe_line(s, a, "Inbox: \"%s\" (ServerId %s)",
                               et_wbxml_node_text(et_wbxml_find(add, "DisplayName"), NULL),
                               pr->inbox_id);
            }
        }
        et__probe_line(s, a, "%zu folder%s, SyncKey %s", n, n == 1 ? "" : "s",
                       et_wbxml_node_text(et_wbxml_find(doc->root, "SyncKey"), NULL));
        if (!pr->inbox_id[0])
            et__probe_set(s, a, ET_PROBE_WARNED, "no Inbox (folder Type 2) in the hierarchy",
                          "Check the mailbox (it may not be provisioned, or the hierarchy is "
                          "damaged): sign in to OWA and look for the Inbox.");
    }
    ok = 0;
out:
    et_wbxml_doc_free(doc);
    et_exchange_free(x);
    et__probe_step_done(pr, s, t0);
    return ok;
}

/* ---- Step 7: Sync --------------------------------------------------------------------- */

/* Sync of the Inbox from SyncKey 0: sets pr->inbox_key. Returns 0 when it worked. */
static int sync_initial(struct probe *pr, struct et_probe_step *s)
{
    struct et_exchange *x = NULL;
    struct et_wbxml_doc *doc = NULL;
    long long st = -1;
    int ok = -1;
    const char *xml = et_arena_printf(pr->a,
                                      "<Sync xmlns=\"AirSync:\"><Collections><Collection>"
                                      "<SyncKey>0</SyncKey><CollectionId>%s</CollectionId>"
                                      "</Collection></Collections></Sync>",
                                      pr->inbox_id);
    command(pr, s, "Sync", xml, 0, &x, &doc);
    if (x == NULL || et__probe_explain_http(pr, s, x, "Sync (SyncKey 0)"))
        goto out;
    if (doc == NULL || doc->root == NULL) {
        et__probe_set(s, pr->a, ET_PROBE_FAILED, "Sync (SyncKey 0): empty or non-WBXML answer",
                      "The server must answer the first Sync with a new SyncKey; look at the "
                      "exchange (-w).");
        goto out;
    }
    {
        const struct et_wbxml_node *c = et_wbxml_find(doc->root, "Collections/Collection");
        if (et_wbxml_find_int(c, "Status", &st) != 0)
            et_wbxml_find_int(doc->root, "Status", &st);
        if (st != 1) {
            et__probe_status_fail(pr, s, "Sync", c ? "Collection" : NULL, st);
            goto out;
        }
        snprintf(pr->inbox_key, sizeof(pr->inbox_key), "%s",
                 et_wbxml_node_text(et_wbxml_find(c, "SyncKey"), NULL));
        et__probe_line(s, pr->a, "SyncKey 0 -> %s", pr->inbox_key);
    }
    ok = 0;
out:
    et_wbxml_doc_free(doc);
    et_exchange_free(x);
    return ok;
}

int et__probe_step_sync(struct probe *pr)
{
    struct et_probe_step *s = &pr->r->steps[ET_PROBE_STEP_SYNC];
    struct et_exchange *x = NULL;
    struct et_wbxml_doc *doc = NULL;
    int64_t t0 = et_now_us();
    long long st = -1;
    int ok = -1;
    const char *xml;

    if (sync_initial(pr, s) != 0)
        goto out;
    xml = et_arena_printf(pr->a,
                          "<Sync xmlns=\"AirSync:\" xmlns:airsyncbase=\"AirSyncBase:\">"
                          "<Collections><Collection><SyncKey>%s</SyncKey>"
                          "<CollectionId>%s</CollectionId><DeletesAsMoves>1</DeletesAsMoves>"
                          "<GetChanges>1</GetChanges><WindowSize>%d</WindowSize><Options>"
                          "<FilterType>0</FilterType><airsyncbase:BodyPreference><airsyncbase:Type>1</airsyncbase:Type>"
                          "<airsyncbase:TruncationSize>1024</airsyncbase:TruncationSize>"
                          "</airsyncbase:BodyPreference></Options></Collection></Collections>"
                          "</Sync>",
                          pr->inbox_key, pr->inbox_id, SYNC_WINDOW);
    command(pr, s, "Sync", xml, 0, &x, &doc);
    if (x == NULL || et__probe_explain_http(pr, s, x, "Sync"))
        goto out;
    if (doc == NULL || doc->root == NULL) {
        /* An empty 200 answers a Sync with nothing new. */
        et__probe_line(s, pr->a, "no changes (empty response)");
        ok = 0;
        goto out;
    }
    {
        const struct et_wbxml_node *c = et_wbxml_find(doc->root, "Collections/Collection");
        struct et_wbxml_iter it;
        size_t adds = 0, others = 0;
        const struct et_wbxml_node *n;
        if (et_wbxml_find_int(c, "Status", &st) != 0)
            et_wbxml_find_int(doc->root, "Status", &st);
        if (st != 1) {
            et__probe_status_fail(pr, s, "Sync", c ? "Collection" : NULL, st);
            goto out;
        }
        et_wbxml_iter_init(&it, c, "Commands/*");
        while ((n = et_wbxml_iter_next(&it)) != NULL) {
            if (et_wbxml_node_is(n, NULL, "Add"))
                adds++;
            else
                others++;
        }
        et__probe_line(s, pr->a, "WindowSize %d: %zu item%s added, %zu other change%s%s; "
                                 "SyncKey %s",
                       SYNC_WINDOW, adds, adds == 1 ? "" : "s", others, others == 1 ? "" : "s",
                       et_wbxml_find(c, "MoreAvailable") ? " (MoreAvailable)" : "",
                       et_wbxml_node_text(et_wbxml_find(c, "SyncKey"), NULL));
        {
            const char *k = et_wbxml_node_text(et_wbxml_find(c, "SyncKey"), NULL);
            if (k != NULL && k[0] != '\0')
                snprintf(pr->inbox_key, sizeof(pr->inbox_key), "%s", k);
        }
    }
    ok = 0;
out:
    et_wbxml_doc_free(doc);
    et_exchange_free(x);
    et__probe_step_done(pr, s, t0);
    return ok;
}

/* ---- Step 8: Ping --------------------------------------------------------------------- */

int et__probe_step_ping(struct probe *pr)
{
    struct et_probe_step *s = &pr->r->steps[ET_PROBE_STEP_PING];
    struct et_exchange *x = NULL;
    struct et_wbxml_doc *doc = NULL;
    int64_t t0 = et_now_us();
    int hb = pr->o->ping_seconds > 0 ? pr->o->ping_seconds : 60;
    int ok = -1;

    /* Exchange refuses a Ping on a folder that was never synced; a device syncs first. */
    if (!pr->inbox_key[0] && sync_initial(pr, s) != 0)
        goto out;
    for (int attempt = 0; attempt < 2; attempt++) {
        long long st = -1, shb = -1;
        const char *xml = et_arena_printf(
            pr->a,
            "<Ping xmlns=\"Ping:\"><HeartbeatInterval>%d</HeartbeatInterval><Folders><Folder>"
            "<Id>%s</Id><Class>Email</Class></Folder></Folders></Ping>",
            hb, pr->inbox_id);
        int64_t ts = et_now_us();
        command(pr, s, "Ping", xml, hb * 1000 + 30000, &x, &doc);
        if (x == NULL || et__probe_explain_http(pr, s, x, "Ping"))
            goto out;
        if (doc == NULL || doc->root == NULL) {
            et__probe_set(s, pr->a, ET_PROBE_FAILED, "Ping: empty or non-WBXML answer",
                          "Look at the exchange (-w).");
            goto out;
        }
        et_wbxml_find_int(doc->root, "Status", &st);
        et__probe_line(s, pr->a, "HeartbeatInterval %d s: Status %lld after %.1f s", hb, st,
                       (double)(et_now_us() - ts) / 1e6);
        if (st == 1 || st == 2) {
            et__probe_line(s, pr->a, "%s", st == 1 ? "no changes during the heartbeat (Status 1)"
                                                   : "changes in the Inbox (Status 2)");
            ok = 0;
            goto out;
        }
        if (st == 5 && attempt == 0 &&
            et_wbxml_find_int(doc->root, "HeartbeatInterval", &shb) == 0 && shb > 0 &&
            shb <= 3540) {
            et__probe_line(s, pr->a, "the server wants a heartbeat of %lld s: retrying with it",
                           shb);
            hb = (int)shb;
            et_wbxml_doc_free(doc);
            et_exchange_free(x);
            doc = NULL;
            x = NULL;
            continue;
        }
        et__probe_status_fail(pr, s, "Ping", NULL, st);
        goto out;
    }
out:
    et_wbxml_doc_free(doc);
    et_exchange_free(x);
    et__probe_step_done(pr, s, t0);
    return ok;
}
