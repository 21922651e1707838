/*
 * EAS mailbox logs: the text Get-ActiveSyncDeviceStatistics / Get-MobileDeviceStatistics
 * -GetMailboxLog produces (mailed or written to a file). Each entry:
 *
 *   -----------------
 *    Log Entry: 12
 *   -----------------
 *   <blank>
 *   RequestTime :
 *   2013-11-21T10:15:02.328Z        (or 11/21/2013 10:15:02 AM)
 *   <blank>
 *   RequestHeader :
 *   POST /Microsoft-Server-ActiveSync/default.eas?Cmd=Sync&User=... HTTP/1.1
 *   Host: mail.contoso.com
 *   <blank>
 *   RequestBody :
 *   <?xml version="1.0" ...>        (XML, or "[123 bytes]" without verbose logging)
 *   ...
 *
 * A field is "Name :" on its own line, its value on the following lines up to a blank line
 * that is followed by the next field or entry. Entries become exchanges (ET_SRC_MAILBOX),
 * de-duplicated by Identifier. Bodies are XML text, not WBXML: the exchange's Content-Type is
 * text/xml, the logged one is kept in meta "logged-content-type", and meta "body-format" is
 * "xml".
 */
#ifndef ET_LOGS_MAILBOXLOG_H
#define ET_LOGS_MAILBOXLOG_H

#include <stdint.h>
#include <stdio.h>

#include "eastrace/common.h"
#include "eastrace/source.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Opens a mailbox log file. *out produces one exchange per entry in file order; an entry cut
 * off by the end of the file is produced with x->err set (ET_ETRUNC, naming its line), after
 * which next() returns ET_ETRUNC with e naming the line. Returns 0, ET_EIO or ET_ENOMEM.
 */
int et_mailboxlog_open(const char *path, struct et_source **out, struct et_error *e);
/* Same over bytes in memory (borrowed: they must outlive the source). */
int et_mailboxlog_open_mem(const void *data, size_t len, const char *name,
                           struct et_source **out, struct et_error *e);

#ifdef __cplusplus
}
#endif
#endif
