/* Lookup of the embedded page files (the arrays are generated into web_assets.c). */
#include "web_int.h"

#include <string.h>

const struct et__web_asset *et__web_asset(const char *name)
{
    for (size_t i = 0; i < et__web_nassets; i++)
        if (strcmp(et__web_assets[i].name, name) == 0)
            return &et__web_assets[i];
    return NULL;
}
