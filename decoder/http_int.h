/* Private helpers shared by http.c, body.c and multipart.c. */
#ifndef ET_DECODER_HTTP_INT_H
#define ET_DECODER_HTTP_INT_H

#include "eastrace/http.h"

#include <stdarg.h>

#endif
