/*
 * Generates a large Exchange IIS log for bench_iis.sh from the real line shapes (Exchange
 * 2010 Log= items as in ../shared/corpus/exchange-iis-logs, 2016/2019 front-end lines):
 *   gen_iislog OUT MEGABYTES [DEVICES]
 * Deterministic (fixed seed), so runs are comparable.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 0x9E3779B97F4A7C15ULL;

static uint32_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

static const char *const types[] = {"iPhone", "Android", "iPad", "WP8", "Outlook"};
static const char *const uas[] = {"Apple-iPhone9C1/1402.243", "Android-Mail/7.5.1",
                                  "Apple-iPad7C2/1805.212", "MSFT-WP/8.10.14219",
                                  "Outlook-iOS-Android/1.0"};

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: gen_iislog OUT MEGABYTES [DEVICES]\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "wb");
    uint64_t want = strtoull(argv[2], NULL, 10) * 1000000ULL;
    unsigned ndev = argc > 3 ? (unsigned)strtoul(argv[3], NULL, 10) : 5000;
    if (f == NULL || ndev == 0)
        return 2;
    static char buf[1 << 22];
    size_t bl = 0;
    uint64_t total = 0, sec = 0;
    total += (uint64_t)fprintf(f, "#Software: Microsoft Internet Information Services 8.5\n"
                                  "#Version: 1.0\n#Date: 2016-09-01 00:00:00\n"
                                  "#Fields: date time s-ip cs-method cs-uri-stem cs-uri-query "
                                  "s-port cs-username c-ip cs(User-Agent) cs(Referer) sc-status "
                                  "sc-substatus sc-win32-status time-taken\n");
    while (total < want) {
        unsigned d = next() % ndev, r = next() % 100, t = d % 5;
        const char *cmd, *log;
        int status = 200, tt;
        char logbuf[400];
        sec += (next() % 3 == 0);
        if (r < 45) {
            cmd = "Ping";
            snprintf(logbuf, sizeof(logbuf), "V141_Sst3_LdapC0_LdapL0_RpcC9_RpcL15_Hb%u_Rto1_S1_"
                     "Erq1_Pk1111111_Sp1_Cpo172_Fet%u_Mbx:MBX%u.CONTOSO.COM_Dc:DC1.CONTOSO.COM_"
                     "Throttle0_Budget:(A)Conn%%3a1%%2cHangingConn%%3a1%%2cAD%%3a%%24null%%2f%%24null"
                     "%%2f0%%25%%2cPolicy%%3aDefaultThrottlingPolicy_",
                     900 + d % 8 * 60, 900000 + d % 8 * 60000, d % 4);
            log = logbuf;
            tt = 900000 + (int)(next() % 60000);
        } else if (r < 85) {
            cmd = "Sync";
            snprintf(logbuf, sizeof(logbuf), "V141_Sst9_LdapC0_LdapL0_RpcC%u_RpcL%u_Fc1_Ty:Em_"
                     "Filt3_St:S_Sk%u_S1_Cpo359_Fet%u_Mbx:MBX%u.CONTOSO.COM_Throttle0_",
                     20 + next() % 40, 10 + next() % 200, 1000000 + next() % 9000000,
                     100 + next() % 900, d % 4);
            log = logbuf;
            tt = 50 + (int)(next() % 900);
        } else if (r < 92) {
            cmd = "FolderSync";
            log = "V141_Sst5_LdapC1_LdapL0_RpcC12_RpcL31_S1_Cpo47_Fet62_Throttle0_";
            tt = 62;
        } else if (r < 95) {
            cmd = "SendMail";
            log = (next() % 10 == 0) ? "V141_RpcC30_RpcL50_Error:MailboxQuotaExceeded_S120_"
                                       "As:AllowedG_"
                                     : "V141_RpcC30_RpcL50_S1_As:AllowedG_";
            tt = 300;
        } else if (r < 97) {
            cmd = "Sync";
            log = "V141_Error:TooManyJobsQueued_Throttle1_";
            status = 503;
            tt = 3;
        } else if (r < 99) {
            cmd = "ItemOperations";
            log = "V141_RpcC4_RpcL12_S1_";
            tt = 40;
        } else {
            cmd = "Settings";
            log = "V141_Error:DeviceNotProvisioned_As:BlockedP_";
            status = 449;
            tt = 20;
        }
        uint64_t s = sec % 86400;
        int n = snprintf(buf + bl, sizeof(buf) - bl,
                         "2016-09-01 %02u:%02u:%02u 10.1.0.%u POST /Microsoft-Server-ActiveSync/"
                         "default.eas User=user%u&DeviceId=DEV%08X%u&DeviceType=%s&Cmd=%s&"
                         "Log=%s 443 CONTOSO\\user%u 198.51.%u.%u %s - %d 0 0 %d\n",
                         (unsigned)(s / 3600), (unsigned)(s / 60 % 60), (unsigned)(s % 60),
                         10 + d % 4, d, d * 2654435761u, d, types[t], cmd, log, d, d / 250 % 250,
                         d % 250, uas[t], status, tt);
        bl += (size_t)n;
        total += (uint64_t)n;
        if (bl > sizeof(buf) - 4096) {
            fwrite(buf, 1, bl, f);
            bl = 0;
        }
    }
    fwrite(buf, 1, bl, f);
    fclose(f);
    return 0;
}
