/*
 * Rules over correlation facts: what the pipeline learns by matching one request across a
 * client-side recording, IIS logs and mailbox logs (struct et_correlation). They run after
 * the per-exchange rules of et_analyzer_feed() and add to the same list.
 */
#include "eastrace/analyzer.h"

#include <string.h>

#define SEEN_CAP 1u
#define SEEN_IIS 2u

/* A client-side exchange the IIS logs should hold but do not. Only once one request was seen
 * in both (so the clocks agree), only inside the period the IIS lines cover, and only for EAS
 * requests. */
static struct et_finding *not_in_server_log(const struct et_exchange *x,
                                            const struct et_view *v,
                                            const struct et_correlation *c, struct et_arena *a)
{
    struct et_finding *f;
    char t1[40], t2[40];

    if (!(c->kinds & SEEN_IIS) || c->seen_by != SEEN_CAP || !c->is_eas ||
        c->cap_iis_matched == 0 || c->start == 0 || c->start < c->iis_first - c->tolerance ||
        c->end > c->iis_last - c->tolerance)
        return NULL;
    f = et_arena_alloc(a, sizeof(*f));
    if (f == NULL)
        return NULL;
    memset(f, 0, sizeof(*f));
    f->rule = "not-in-server-log";
    f->severity = ET_SEV_INFO;
    f->exchange_id = x->id;
    f->time = c->start;
    f->device = v->device;
    f->message = et_arena_printf(
        a,
        "this %s request is not in the IIS logs given, though they cover %s to %s: it did not "
        "reach that Exchange server (a reverse proxy, load balancer or firewall answered or "
        "dropped it, or it went to another Client Access server)",
        c->cmd ? c->cmd : "EAS", et_time_iso8601(c->iis_first, t1, sizeof(t1)),
        et_time_iso8601(c->iis_last, t2, sizeof(t2)));
    f->next_step = "Collect the IIS logs of every Client Access / front-end server behind the "
                   "load balancer for this time; if the request is in none of them, look for it "
                   "in the reverse proxy, firewall or load balancer logs.";
    return f->message ? f : NULL;
}

int et_analyzer_feed_correlated(struct et_analyzer *an, const struct et_exchange *x,
                                const struct et_view *v, const struct et_correlation *c,
                                struct et_arena *a, struct et_finding **out)
{
    struct et_finding **pp, *f;
    int rc = et_analyzer_feed(an, x, v, a, out);

    if (rc != 0 || c == NULL)
        return rc;
    pp = out;
    while (*pp != NULL)
        pp = &(*pp)->next;
    if ((f = not_in_server_log(x, v, c, a)) != NULL)
        *pp = f;
    return 0;
}
