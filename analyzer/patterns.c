/*
 * The pattern rules: what only a device's run of requests shows, over its state in struct dev
 * (request storms, requests per day, SyncKey 0 loops and repeated SyncKeys, provisioning loops,
 * repeated authentication failures, heartbeats out of range, long polls cut at the same time,
 * Retry-After not kept, FolderSync not sent after a hierarchy change).
 */
#include "analyzer_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- pattern rules -------------------------------------------------------------------- */

void et__an_pattern_storm(struct emit *em, struct et_analyzer *an, int64_t t)
{
    struct dev *d = em->d;
    unsigned window_count, len = d->ring_len;
    int64_t oldest;

    if (t <= 0)
        return;
    {
        /* Keep count of the places where the ring goes back in time, so that a ring in time
         * order (a log, nearly always) is counted from its newest end only. */
        unsigned p = d->ring_pos, nx = p + 1 == len ? 0 : p + 1, pv = p == 0 ? len - 1 : p - 1;
        if (len > 1 && d->ring[nx] < d->ring[p])
            d->ring_inv--; /* the oldest entry leaves: its link to the next one goes */
        d->ring[p] = t;
        if (len > 1 && t < d->ring[pv])
            d->ring_inv++;
        d->ring_pos = nx;
    }
    /* The oldest of the last ring_len requests sits at ring_pos now. */
    oldest = d->ring[d->ring_pos];
    if (an->o.no_rates && !d->storm_active) {
        /* Only an active storm reads the count (to end); nobody reads the rate. */
        window_count = 0;
        d->win_valid = 0;
    } else if (d->ring_inv == 0) {
        /* In time order the entries within the window are the newest ones, and as time only
         * goes forward they only leave it: the count is the last one plus this request, less
         * the oldest ones that fell out (amortized constant time). */
        unsigned w = d->win_valid ? d->win + 1 : len, newest = d->ring_pos == 0 ? len - 1
                                                                              : d->ring_pos - 1;
        if (w > len)
            w = len;
        while (w > 0) {
            unsigned i = newest >= w - 1 ? newest - (w - 1) : newest + len - (w - 1);
            int64_t rt = d->ring[i];
            if (rt > 0 && t - rt < STORM_WINDOW_US)
                break;
            w--;
        }
        d->win = w;
        d->win_valid = 1;
        window_count = w;
    } else {
        /* A ring out of time order is counted whole: the entries in (lo, t], lo at least 0
         * (empty entries are 0), branch-free in four independent sums. */
        const int64_t lo = t > STORM_WINDOW_US ? t - STORM_WINDOW_US : 0, *r = d->ring;
        unsigned c0 = 0, c1 = 0, c2 = 0, c3 = 0, i = 0;
        for (; i + 4 <= len; i += 4) {
            c0 += (unsigned)((r[i] > lo) & (r[i] <= t));
            c1 += (unsigned)((r[i + 1] > lo) & (r[i + 1] <= t));
            c2 += (unsigned)((r[i + 2] > lo) & (r[i + 2] <= t));
            c3 += (unsigned)((r[i + 3] > lo) & (r[i + 3] <= t));
        }
        for (; i < len; i++)
            c0 += (unsigned)((r[i] > lo) & (r[i] <= t));
        window_count = c0 + c1 + c2 + c3;
        d->win_valid = 0;
    }
    if (window_count > d->st.max_per_minute && !an->o.no_rates)
        d->st.max_per_minute = window_count;
    if (oldest > 0 && t - oldest < STORM_WINDOW_US) {
        if (!d->storm_active) {
            d->storm_active = 1;
            d->storm_count++;
            add(em, "request-storm", ET_SEV_WARNING, NEXT_STORM,
                "device %s sent more than %u requests within 60 s: a request storm drains the "
                "battery and can exhaust server resources for everyone",
                d->st.device, an->o.storm_per_minute);
        }
    } else if (window_count <= an->o.storm_per_minute / 2) {
        d->storm_active = 0;
    }
}

void et__an_count_day(struct dev *d, int64_t t)
{
    int64_t day;
    if (t <= 0)
        return;
    day = t / DAY_US;
    for (unsigned i = 0; i < d->ndays; i++) {
        if (d->days[i].day == day) {
            d->days[i].count++;
            return;
        }
    }
    if (d->ndays < DEV_MAX_DAYS) {
        if (d->ndays == d->capdays) {
            unsigned nc = d->capdays ? d->capdays * 2 : 2;
            struct day_count *nd = et_realloc(d->days, ET_MIN(nc, DEV_MAX_DAYS) * sizeof(*nd));
            if (nd == NULL)
                return; /* the day goes uncounted */
            d->days = nd;
            d->capdays = ET_MIN(nc, DEV_MAX_DAYS);
        }
        d->days[d->ndays].day = day;
        d->days[d->ndays].count = 1;
        d->ndays++;
    }
}

/* The answer gave the device a key for this collection: HTTP 200 with a non-zero SyncKey
 * and a success Status, or (IIS lines carry no keys) Status 1 logged for it. */
static int key_issued(const struct et_view *v, const struct et_view_collection *vc)
{
    if (v->http_status != 200)
        return 0;
    if (vc->new_sync_key != NULL)
        return !key_is_zero(vc->new_sync_key) && vc->status <= 1;
    return !v->has_resp_body && vc->status == 1;
}

void et__an_pattern_synckeys(struct emit *em, struct et_analyzer *an)
{
    const struct et_view *v = em->v;
    struct dev *d = em->d;
    char lbl[320];

    for (size_t i = 0; i < v->ncolls; i++) {
        const struct et_view_collection *vc = &v->colls[i];
        struct coll_state *c;
        if (vc->sync_key == NULL)
            continue;
        c = et__an_get_coll(an, d, vc->collection_id);
        if (c == NULL)
            continue; /* more collections than tracked per device: those go unwatched */
        if (key_is_zero(vc->sync_key)) {
            /* A SyncKey 0 is a reset only when the server had issued a key: the device's
             * retries of a first sync answered 449, 401, 404 or 5xx never got one. */
            if (c->issued) {
                c->zero_count++;
                c->fives_total += d->fives_since_reset;
            }
            c->issued = 0;
            if (c->zero_count >= an->o.synckey0_repeat && !c->zero_reported) {
                c->zero_reported = 1;
                add(em, "synckey-reset-loop", ET_SEV_ERROR, NEXT_RESET_LOOP,
                    "device %s sent SyncKey 0 for %s %u times: it keeps resyncing the folder "
                    "from scratch (every item downloads again)%s",
                    d->st.device,
                    c->id ? (strcmp(c->id, "FolderSync") == 0
                                 ? "the folder hierarchy"
                                 : et__an_coll_label(d, c->id, lbl, sizeof(lbl)))
                          : "a collection",
                    c->zero_count,
                    c->fives_total ? "; HTTP 5xx answers came before the resyncs, a known "
                                     "trigger"
                                   : "");
            }
            skey_set(&c->last_key, NULL);
            c->repeat = 0;
        } else if (skey_get(&c->last_key) != NULL &&
                   strcmp(skey_get(&c->last_key), vc->sync_key) == 0) {
            /* The same key again counts only when the server had moved on (answered a new
             * key) or failed: an empty "no changes" answer keeps the key legitimately. */
            const char *pend = skey_get(&c->pending_new_key);
            int advanced = pend != NULL && strcmp(pend, vc->sync_key) != 0;
            int failed = c->last_status > 1;
            if (advanced || failed) {
                c->repeat++;
                if (c->repeat + 1 >= an->o.synckey_repeat && !c->repeat_reported) {
                    c->repeat_reported = 1;
                    add(em, "synckey-repeat", ET_SEV_WARNING, NEXT_KEY_REPEAT,
                        "device %s sent SyncKey %s for collection %s %u times although the "
                        "server %s: the folder is not progressing",
                        d->st.device, vc->sync_key, et__an_coll_label(d, c->id, lbl, sizeof(lbl)),
                        c->repeat + 1,
                        failed ? "answered an error Status" : "answered a new SyncKey");
                }
            }
        } else {
            skey_set(&c->last_key, vc->sync_key);
            c->repeat = 0;
            c->repeat_reported = 0;
        }
        if (!key_is_zero(vc->sync_key))
            c->issued = 1;
        if (key_issued(v, vc))
            c->issued = 1;
        skey_set(&c->pending_new_key, vc->new_sync_key);
        c->last_status = vc->status;
    }
    if (v->ncolls > 0) {
        for (size_t i = 0; i < v->ncolls; i++)
            if (key_is_zero(v->colls[i].sync_key)) {
                d->fives_since_reset = 0;
                break;
            }
    }
}

static int is_provisioning_answer(const struct et_view *v)
{
    if (v->http_status == 449)
        return 1;
    for (size_t i = 0; i < v->nstatus; i++)
        if (v->statuses[i] >= 142 && v->statuses[i] <= 144)
            return 1;
    return 0;
}

void et__an_pattern_provisioning(struct emit *em, struct et_analyzer *an)
{
    const struct et_view *v = em->v;
    struct dev *d = em->d;

    if (is_provisioning_answer(v)) {
        d->provision_run++;
        if (d->provision_run >= an->o.provision_repeat && !d->provision_reported) {
            d->provision_reported = 1;
            add(em, "provisioning-loop", ET_SEV_ERROR, NEXT_PROVISION,
                "device %s was asked to provision %u times without syncing in between (HTTP "
                "449 or Status 142-144): it does not keep the policy",
                d->st.device, d->provision_run);
        }
    } else if (v->http_status == 200 && em->cmd != K_NONE && em->cmd != K_PROVISION) {
        d->provision_run = 0;
        d->provision_reported = 0;
    }
}

void et__an_pattern_auth(struct emit *em, struct et_analyzer *an)
{
    const struct et_view *v = em->v;
    struct dev *d = em->d;
    int has_auth = et_headers_get(&em->x->req.headers, "Authorization") != NULL ||
                   em->x->source == ET_SRC_IIS;

    if ((v->http_status == 401 && has_auth) || v->http_status == 403) {
        d->auth_run++;
        if (d->auth_run >= an->o.auth_repeat && !d->auth_reported) {
            d->auth_reported = 1;
            add(em, "auth-failures", ET_SEV_ERROR,
                v->http_status == 401 ? NEXT_AUTH : NEXT_FORBIDDEN,
                "device %s was refused %u times in a row (HTTP %d): besides failing to sync it "
                "can lock the account out",
                d->st.device, d->auth_run, v->http_status);
        }
    } else if (v->http_status == 200) {
        d->auth_run = 0;
        d->auth_reported = 0;
    }
}

/* The server's verdict on the heartbeat a Ping (or Sync Wait) asked for: 1 accepted (Ping
 * Status 1 or 2, a Sync answered without Status 14), -1 refused (Ping Status 5, Sync Status
 * 14), 0 unknown (no answer, or no Status to read). */
static int heartbeat_verdict(const struct emit *em)
{
    const struct et_view *v = em->v;
    int ping = em->cmd == K_PING;

    if (v->http_status != 200)
        return 0;
    if (ping) {
        if (v->top_status == 5)
            return -1;
        return v->top_status == 1 || v->top_status == 2 ? 1 : 0;
    }
    /* A Sync with Wait: answered 200 with changes or, empty, with none. */
    return v->top_status == 14 ? -1 : 1;
}

void et__an_pattern_heartbeat(struct emit *em, struct et_analyzer *an)
{
    const struct et_view *v = em->v;
    struct dev *d = em->d;
    long lo = an->o.heartbeat_min, hi = an->o.heartbeat_max;
    int verdict;

    if (v->heartbeat_req < 0)
        return;
    verdict = heartbeat_verdict(em);
    if (d->hb_refused_req >= 0) {
        /* The previous heartbeat was refused with the server's limit: this one should keep
         * to it. Asking the same or further out again means the device ignores the server. */
        long limit = d->server_hb, prev = d->hb_refused_req;
        int ignored = verdict < 0 ||
                      (limit > 0 && prev > limit && v->heartbeat_req > limit) ||
                      (limit > 0 && prev < limit && v->heartbeat_req < limit);
        d->hb_refused_req = -1;
        if (ignored && !d->heartbeat_reported) {
            d->heartbeat_reported = 1;
            if (limit > 0)
                add(em, "heartbeat-range", ET_SEV_WARNING, NEXT_HEARTBEAT,
                    "device %s asked for a heartbeat of %ld s after the server refused %ld s "
                    "and gave its limit of %ld s (Status 5): it does not keep to the server's "
                    "range",
                    d->st.device, v->heartbeat_req, prev, limit);
            else
                add(em, "heartbeat-range", ET_SEV_WARNING, NEXT_HEARTBEAT,
                    "device %s asked for a heartbeat of %ld s after the server refused %ld s: "
                    "it does not keep to the server's range",
                    d->st.device, v->heartbeat_req, prev);
            return;
        }
    }
    if (verdict < 0) {
        if (v->heartbeat_resp > 0)
            d->server_hb = v->heartbeat_resp;
        d->hb_refused_req = v->heartbeat_req;
        return;
    }
    /* The server accepted it: its own range is what counts, not the usual 60-3540 s. */
    if (verdict > 0 || d->heartbeat_reported)
        return;
    if (v->heartbeat_req < lo || v->heartbeat_req > hi) {
        d->heartbeat_reported = 1;
        add(em, "heartbeat-range", ET_SEV_WARNING, NEXT_HEARTBEAT,
            "device %s asked for a heartbeat of %ld s, outside the usual server range %ld-%ld s "
            "(the server's answer does not say whether it accepted it)",
            d->st.device, v->heartbeat_req, lo, hi);
    }
}

/* ---- long polls, back-off, hierarchy changes -------------------------------------------- */

/* The answer did not come from Exchange: none at all (a reset, a timeout), a 502/504 of a
 * proxy, or an empty 200 without any of the headers Exchange sends with an EAS answer. */
static const char *non_exchange_answer(const struct et_exchange *x, const struct et_view *v)
{
    const struct et_headers *h = &x->resp.headers;
    if (!x->has_response || v->http_status == 0)
        return x->err.code != 0 ? "the connection was cut (no answer)" : NULL;
    if (x->err.code != 0)
        return "the connection to the server was cut (eastrace answered for it)";
    if (v->http_status == 504 || v->http_status == 502)
        return v->http_status == 504 ? "HTTP 504 from a proxy" : "HTTP 502 from a proxy";
    if (v->http_status == 200 && x->resp.body.len == 0 && !x->resp.body.absent) {
        for (size_t i = 0; i < h->n; i++)
            if (et_strncaseeq(h->v[i].name, "X-MS-", 5) ||
                et_strcaseeq(h->v[i].name, "MS-Server-ActiveSync") ||
                et_strcaseeq(h->v[i].name, "X-FEServer") ||
                et_strcaseeq(h->v[i].name, "X-BEServer") ||
                et_strcaseeq(h->v[i].name, "request-id"))
                return NULL;
        return "an empty HTTP 200 without Exchange's headers";
    }
    return NULL;
}

#define NEXT_LONGPOLL_CUT                                                                      \
    "A firewall, load balancer or reverse proxy between the device and Exchange drops idle "   \
    "connections at about this time and cuts Direct Push: raise its idle timeout above the "   \
    "longest heartbeat the server allows (MaxHeartbeatInterval, 59 minutes by default), or "  \
    "lower the server's MaxHeartbeatInterval below it; the Ping then ends with Status 1 "       \
    "instead of being cut."

void et__an_pattern_longpoll_cut(struct emit *em, struct et_analyzer *an)
{
    const struct et_exchange *x = em->x;
    const struct et_view *v = em->v;
    struct dev *d = em->d;
    int64_t dur, hb_us, tol, sum = 0;
    const char *why;
    unsigned n, close = 0;

    if (!is_long_poll(em) || x->source == ET_SRC_IIS || x->source == ET_SRC_MAILBOX)
        return;
    dur = et_exchange_duration_us(x);
    hb_us = (int64_t)v->heartbeat_req * 1000000;
    why = non_exchange_answer(x, v);
    if (dur <= 0 || why == NULL || dur >= hb_us - hb_us / 10) {
        if (why == NULL && x->has_response)
            d->ncuts = 0; /* Exchange answered: the run of cuts is over */
        return;
    }
    d->cuts[d->ncuts % CUT_RING] = dur;
    d->ncuts++;
    n = ET_MIN(d->ncuts, CUT_RING);
    /* "About the same": within 10 % (at least 5 s) of this cut. */
    tol = ET_MAX(dur / 10, 5 * 1000000LL);
    for (unsigned i = 0; i < n; i++)
        if (d->cuts[i] >= dur - tol && d->cuts[i] <= dur + tol) {
            close++;
            sum += d->cuts[i];
        }
    if (close < an->o.longpoll_cut_repeat || d->cut_reported)
        return;
    d->cut_reported = 1;
    add(em, "longpoll-cut", ET_SEV_WARNING, NEXT_LONGPOLL_CUT,
        "device %s's %ss keep ending after about %.0f s (%u times) although the heartbeat is "
        "%ld s, with %s: something between the device and Exchange cuts idle connections at "
        "about %.0f s",
        d->st.device, v->cmd, (double)sum / close / 1e6, close, v->heartbeat_req, why,
        (double)sum / close / 1e6);
}

#define NEXT_RETRY_AFTER                                                                       \
    "The device does not wait as long as the server asks (Retry-After, MS-ASHTTP 503) and so " \
    "stays throttled: update its mail app; find what it repeats (eastrace replay --device "     \
    "ID) and check the EAS limits of its throttling policy (Get-ThrottlingPolicy)."

/* Retry-After as seconds (the HTTP-date form is not used by Exchange); -1 when absent. */
static long retry_after_secs(const struct et_exchange *x)
{
    const char *ra = et_headers_get(&x->resp.headers, "Retry-After");
    char *end;
    long s;
    if (ra == NULL)
        return -1;
    s = strtol(ra, &end, 10);
    return end != ra && s > 0 && s < 86400 ? s : -1;
}

void et__an_pattern_retry_after(struct emit *em, int64_t t)
{
    const struct et_exchange *x = em->x;
    struct dev *d = em->d;
    long secs;

    if (d->retry_until > 0 && t > 0) {
        if (t < d->retry_until && !d->retry_reported) {
            d->retry_reported = 1;
            add(em, "retry-after-ignored", ET_SEV_WARNING, NEXT_RETRY_AFTER,
                "device %s sent %s %.1f s before the server's Retry-After of %ld s allowed it",
                d->st.device, em->v->cmd ? em->v->cmd : "a request",
                (double)(d->retry_until - t) / 1e6, d->retry_secs);
        }
        if (t >= d->retry_until)
            d->retry_until = 0;
    }
    if ((secs = retry_after_secs(x)) > 0) {
        int64_t base = et_exchange_end_time(x); /* t is et_exchange_time(x): its last fallback */
        if (base > 0) {
            d->retry_until = base + (int64_t)secs * 1000000;
            d->retry_secs = secs;
            d->retry_reported = 0;
        }
    }
}

#define NEXT_FOLDERSYNC                                                                        \
    "The server said the folder hierarchy changed (MS-ASCMD: Ping Status 7, Sync Status 12) "  \
    "and the device must send FolderSync before it syncs or pings again; it did not. Remove "   \
    "and re-add the account on the device, or update its mail app; look at its FolderSync "    \
    "answers if it sent one earlier."

static int hierarchy_changed(const struct emit *em)
{
    const struct et_view *v = em->v;
    if (em->cmd == K_PING && v->top_status == 7)
        return 7;
    if (em->cmd == K_SYNC) {
        if (v->top_status == 12)
            return 12;
        for (size_t i = 0; i < v->ncolls; i++)
            if (v->colls[i].status == 12)
                return 12;
    }
    return 0;
}

void et__an_pattern_foldersync(struct emit *em, struct et_analyzer *an)
{
    const struct et_view *v = em->v;
    struct dev *d = em->d;
    int hc;

    if (em->cmd == K_NONE)
        return;
    if (em->cmd == K_FOLDERSYNC) {
        d->fs_why = NULL;
        d->fs_after = 0;
    } else if (d->fs_why != NULL &&
               (em->cmd == K_SYNC || em->cmd == K_PING || em->cmd == K_GETITEMESTIMATE)) {
        if (++d->fs_after >= an->o.foldersync_grace) {
            add(em, "foldersync-ignored", ET_SEV_WARNING, NEXT_FOLDERSYNC,
                "device %s sent %u requests (this %s the last) after %s (exchange %llu) "
                "without a FolderSync",
                d->st.device, d->fs_after, v->cmd, d->fs_why,
                (unsigned long long)d->fs_exchange);
            d->fs_why = NULL;
            d->fs_after = 0;
        }
    }
    if ((hc = hierarchy_changed(em)) != 0 && d->fs_why == NULL) {
        d->fs_why = hc == 7 ? "Ping Status 7" : "Sync Status 12";
        d->fs_exchange = em->x->id;
        d->fs_after = 0;
    }
}
