/*
 * Who a request is from, compared the way an Exchange administrator names a user: the User
 * parameter and the Basic user name come as "jdoe", "CONTOSO\jdoe" or "jdoe@contoso.com", and
 * an operator who says --only-user jdoe means all three. Pure, no allocation.
 */
#include "eastrace/eas.h"

#include <string.h>

/* The bare account name of s: after the last '\', before the first '@'. */
static void bare(const char *s, const char **b, size_t *n)
{
    const char *bs = strrchr(s, '\\');
    if (bs != NULL)
        s = bs + 1;
    const char *at = strchr(s, '@');
    *b = s;
    *n = at != NULL ? (size_t)(at - s) : strlen(s);
}

/* 0 bare, 1 DOMAIN\user, 2 user@domain. */
static int form(const char *s)
{
    return strchr(s, '\\') != NULL ? 1 : strchr(s, '@') != NULL ? 2 : 0;
}

int et_eas_user_match(const char *want, const char *have)
{
    const char *wb, *hb;
    size_t wn, hn;
    int wf, hf;
    if (want == NULL || have == NULL || want[0] == '\0')
        return 0;
    if (et_strcaseeq(want, have))
        return 1;
    wf = form(want);
    hf = form(have);
    /* Two names qualified the same way name different domains: they must be equal. A bare
     * name, or a NetBIOS domain against a UPN suffix (not comparable), compares accounts. */
    if (wf != 0 && wf == hf)
        return 0;
    bare(want, &wb, &wn);
    bare(have, &hb, &hn);
    return wn > 0 && wn == hn && et_strncaseeq(wb, hb, wn);
}
