/* Status tables: per command, per parent element, Common fallback, severities, HTTP. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "eastrace/eas.h"
#include "et_test.h"

static void expect_name(const char *root, const char *parent, int code, const char *name)
{
    const struct et_eas_status *s = et_eas_status_lookup(root, parent, code);
    if (s == NULL)
        fail_msg("no entry for %s/%s %d", root ? root : "-", parent ? parent : "-", code);
    assert_int_equal(s->code, code);
    assert_string_equal(s->name, name);
    assert_non_null(s->meaning);
    assert_true(strlen(s->meaning) > 10);
}

static void test_status_sync_table(void **state)
{
    (void)state;
    expect_name("Sync", "Collection", 1, "Success");
    expect_name("Sync", "Collection", 3, "InvalidSyncKey");
    expect_name("Sync", NULL, 4, "ProtocolError");
    expect_name("Sync", "Add", 6, "ConversionError");
    expect_name("Sync", "Change", 7, "Conflict");
    expect_name("Sync", "Fetch", 8, "ObjectNotFound");
    expect_name("Sync", NULL, 9, "CannotComplete");
    expect_name("Sync", "Sync", 12, "FolderHierarchyChanged");
    expect_name("Sync", NULL, 13, "IncompleteRequest");
    expect_name("Sync", NULL, 14, "InvalidWaitOrHeartbeat");
    expect_name("Sync", NULL, 15, "TooManyCollections");
    expect_name("Sync", NULL, 16, "Retry");
    assert_null(et_eas_status_lookup("Sync", NULL, 2));
    assert_null(et_eas_status_lookup("Sync", NULL, 10));
}

static void test_status_ping_table(void **state)
{
    static const char *const names[] = {
        "HeartbeatExpired", "Changes", "MissingParameters", "SyntaxError",
        "HeartbeatOutOfRange", "TooManyFolders", "FolderSyncRequired", "ServerError",
    };
    (void)state;
    for (int i = 0; i < 8; i++)
        expect_name("Ping", NULL, i + 1, names[i]);
    assert_null(et_eas_status_lookup("Ping", NULL, 9));
    assert_int_equal(et_eas_status_severity("Ping", NULL, 1), ET_EAS_SEV_SUCCESS);
    assert_int_equal(et_eas_status_severity("Ping", NULL, 2), ET_EAS_SEV_SUCCESS);
    assert_int_equal(et_eas_status_severity("Ping", NULL, 7), ET_EAS_SEV_RECOVER);
    assert_int_equal(et_eas_status_severity("Ping", NULL, 8), ET_EAS_SEV_TRANSIENT);
}

static void test_status_folder_commands(void **state)
{
    (void)state;
    expect_name("FolderSync", NULL, 9, "InvalidSyncKey");
    expect_name("FolderSync", NULL, 10, "BadRequest");
    expect_name("FolderCreate", NULL, 2, "FolderExists");
    expect_name("FolderCreate", NULL, 5, "ParentNotFound");
    expect_name("FolderDelete", NULL, 3, "SpecialFolder");
    expect_name("FolderDelete", NULL, 4, "FolderNotFound");
    expect_name("FolderUpdate", NULL, 2, "FolderExists");
    /* FolderDelete has no 2 and no 5. */
    assert_null(et_eas_status_lookup("FolderDelete", NULL, 2));
    assert_null(et_eas_status_lookup("FolderDelete", NULL, 5));
}

static void test_status_provision_policy_vs_root(void **state)
{
    (void)state;
    /* Same number, three tables. */
    expect_name("Provision", NULL, 2, "ProtocolError");
    expect_name("Provision", "Provision", 2, "ProtocolError");
    expect_name("Provision", "Policy", 2, "NoPolicy");
    expect_name("Provision", "RemoteWipe", 2, "WipeFailed");
    expect_name("Provision", "AccountOnlyRemoteWipe", 1, "WipeSucceeded");
    expect_name("Provision", NULL, 3, "ServerError");
    expect_name("Provision", "Policy", 3, "UnknownPolicyType");
    expect_name("Provision", "Policy", 5, "WrongPolicyKey");
    /* Policy 5 does not exist at the root; it is not a Common code either. */
    assert_null(et_eas_status_lookup("Provision", NULL, 5));
    /* Common values still answer for Provision. */
    expect_name("Provision", NULL, 139, "DeviceNotFullyProvisionable");
    expect_name("Provision", NULL, 141, "LegacyDeviceOnStrictPolicy");
    expect_name("Provision", NULL, 145, "ExternallyManagedDevicesNotAllowed");
}

static void test_status_common_codes_from_any_command(void **state)
{
    static const char *const cmds[] = {
        "Sync", "FolderSync", "SendMail", "SmartReply", "SmartForward", "Ping", "Search",
        "ItemOperations", "NoSuchCommand", NULL,
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        expect_name(cmds[i], NULL, 101, "InvalidContent");
        expect_name(cmds[i], NULL, 102, "InvalidWBXML");
        expect_name(cmds[i], NULL, 103, "InvalidXML");
        expect_name(cmds[i], NULL, 110, "ServerError");
        expect_name(cmds[i], NULL, 111, "ServerErrorRetryLater");
        expect_name(cmds[i], NULL, 126, "UserDisabledForSync");
        expect_name(cmds[i], NULL, 129, "DeviceIsBlockedForThisUser");
        expect_name(cmds[i], NULL, 142, "DeviceNotProvisioned");
        expect_name(cmds[i], NULL, 143, "PolicyRefresh");
        expect_name(cmds[i], NULL, 144, "InvalidPolicyKey");
        expect_name(cmds[i], NULL, 145, "ExternallyManagedDevicesNotAllowed");
        expect_name(cmds[i], NULL, 177, "MaximumDevicesReached");
        expect_name(cmds[i], NULL, 178, "InvalidMimeBodyCombination");
        expect_name(cmds[i], NULL, 179, "InvalidSmartForwardParameters");
        expect_name(cmds[i], NULL, 183, "InvalidRecipients");
        expect_name(cmds[i], NULL, 184, "OneOrMoreExceptionsFailed");
        /* Gaps in the Common table stay unknown. */
        assert_null(et_eas_status_lookup(cmds[i], NULL, 157));
        assert_null(et_eas_status_lookup(cmds[i], NULL, 180));
        assert_null(et_eas_status_lookup(cmds[i], NULL, 185));
    }
    expect_name("SendMail", NULL, 120, "MailSubmissionFailed");
    expect_name("SendMail", NULL, 118, "MessagePreviouslySent");
    assert_int_equal(et_eas_status_severity("Sync", NULL, 142), ET_EAS_SEV_RECOVER);
    assert_int_equal(et_eas_status_severity("SendMail", NULL, 111), ET_EAS_SEV_TRANSIENT);
    assert_int_equal(et_eas_status_severity("SendMail", NULL, 126), ET_EAS_SEV_ERROR);
    /* Exchange logs a sent message as Status 1 (IIS S:1, mailbox logs): a success. */
    assert_int_equal(et_eas_status_severity("SendMail", NULL, 1), ET_EAS_SEV_SUCCESS);
    assert_int_equal(et_eas_status_severity("SmartReply", NULL, 1), ET_EAS_SEV_SUCCESS);
    assert_int_equal(et_eas_status_severity("SmartForward", NULL, 1), ET_EAS_SEV_SUCCESS);
}

static void test_status_common_101_to_184_complete(void **state)
{
    int n = 0;
    (void)state;
    for (int c = 101; c <= 184; c++)
        if (et_eas_status_lookup(NULL, NULL, c) != NULL)
            n++;
    /* 101-156 (56), 160-179 (20), 183, 184: [MS-ASCMD] 2.2.2 leaves 157-159, 180-182 out. */
    assert_int_equal(n, 56 + 20 + 2);
}

static void test_status_settings_parents(void **state)
{
    (void)state;
    expect_name("Settings", NULL, 3, "AccessDenied");
    expect_name("Settings", "Settings", 6, "ConflictingArguments");
    expect_name("Settings", "Oof", 5, "InvalidArguments");
    expect_name("Settings", "DeviceInformation", 2, "ProtocolError");
    expect_name("Settings", "DevicePassword", 7, "DeniedByPolicy");
    expect_name("Settings", "UserInformation", 1, "Success");
    expect_name("Settings", "RightsManagementInformation", 1, "Success");
    /* 3 is a root value only. */
    assert_null(et_eas_status_lookup("Settings", "Oof", 3));
}

static void test_status_resolverecipients_parents(void **state)
{
    (void)state;
    expect_name("ResolveRecipients", NULL, 6, "ServerError");
    expect_name("ResolveRecipients", "Response", 2, "Ambiguous");
    expect_name("ResolveRecipients", "Response", 4, "NotFound");
    expect_name("ResolveRecipients", "Certificates", 7, "NoValidCertificate");
    expect_name("ResolveRecipients", "Certificates", 8, "CertificateLimitReached");
    expect_name("ResolveRecipients", "Availability", 162, "TransientFailure");
    expect_name("ResolveRecipients", "Picture", 173, "NoPicture");
    assert_null(et_eas_status_lookup("ResolveRecipients", "Picture", 7));
}

static void test_status_other_commands(void **state)
{
    (void)state;
    expect_name("ItemOperations", "Fetch", 6, "ObjectNotFound");
    expect_name("ItemOperations", NULL, 18, "CredentialsRequired");
    expect_name("MoveItems", "Response", 3, "Success");
    expect_name("MoveItems", "Response", 1, "InvalidSource");
    assert_int_equal(et_eas_status_severity("MoveItems", NULL, 3), ET_EAS_SEV_SUCCESS);
    assert_int_equal(et_eas_status_severity("MoveItems", NULL, 1), ET_EAS_SEV_ERROR);
    expect_name("GetItemEstimate", "Response", 3, "SyncStateNotPrimed");
    expect_name("MeetingResponse", "Result", 2, "InvalidMeetingRequest");
    expect_name("Search", NULL, 3, "ServerError");
    expect_name("Search", "Store", 8, "QueryTooComplex");
    expect_name("Search", "Store", 10, "Timeout");
    assert_null(et_eas_status_lookup("Search", NULL, 8));
    expect_name("Find", NULL, 3, "FolderSyncRequired");
    expect_name("Find", "Response", 4, "StartWithRangeZero");
    expect_name("ValidateCert", "Certificate", 7, "Expired");
    expect_name("ValidateCert", NULL, 17, "ServerError");
}

static void test_status_unknown_codes(void **state)
{
    (void)state;
    assert_null(et_eas_status_lookup("Sync", NULL, 0));
    assert_null(et_eas_status_lookup("Sync", NULL, -1));
    assert_null(et_eas_status_lookup("Sync", NULL, 99999));
    assert_null(et_eas_status_lookup(NULL, NULL, 1));
    /* SendMail has only Status 1 (as Exchange logs a success) and the Common values. */
    assert_null(et_eas_status_lookup("SendMail", NULL, 2));
    assert_int_equal(et_eas_status_severity("Sync", NULL, 2), ET_EAS_SEV_UNKNOWN);
    assert_string_equal(et_eas_severity_name(ET_EAS_SEV_UNKNOWN), "unknown");
    assert_string_equal(et_eas_severity_name(ET_EAS_SEV_RECOVER), "recover");
}

struct walk {
    int entries, common, bad;
};

static void on_entry(const char *root, const char *parent, const struct et_eas_status *s,
                     int sev, void *arg)
{
    struct walk *w = arg;
    (void)parent;
    w->entries++;
    if (root == NULL)
        w->common++;
    if (s->name == NULL || s->meaning == NULL || sev < ET_EAS_SEV_SUCCESS ||
        sev > ET_EAS_SEV_ERROR || strchr(s->name, ' ') != NULL)
        w->bad++;
    /* Every listed entry is what the lookup returns (no shadowed duplicates). */
    if (root != NULL && et_eas_status_lookup(root, parent, s->code) != s)
        w->bad++;
}

static void test_status_tables_walk_consistent(void **state)
{
    struct walk w = {0, 0, 0};
    (void)state;
    et_eas_status_tables(on_entry, &w);
    assert_int_equal(w.common, 78);
    assert_true(w.entries > 200);
    assert_int_equal(w.bad, 0);
}

static void test_status_http_meanings(void **state)
{
    (void)state;
    assert_non_null(strstr(et_eas_http_status_meaning(451), "X-MS-Location"));
    assert_non_null(strstr(et_eas_http_status_meaning(449), "Provision"));
    assert_non_null(strstr(et_eas_http_status_meaning(503), "Retry-After"));
    assert_non_null(et_eas_http_status_meaning(401));
    assert_non_null(et_eas_http_status_meaning(403));
    assert_non_null(et_eas_http_status_meaning(456));
    assert_non_null(et_eas_http_status_meaning(457));
    assert_non_null(et_eas_http_status_meaning(507));
    assert_null(et_eas_http_status_meaning(418));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_sync_table),
        cmocka_unit_test(test_status_ping_table),
        cmocka_unit_test(test_status_folder_commands),
        cmocka_unit_test(test_status_provision_policy_vs_root),
        cmocka_unit_test(test_status_common_codes_from_any_command),
        cmocka_unit_test(test_status_common_101_to_184_complete),
        cmocka_unit_test(test_status_settings_parents),
        cmocka_unit_test(test_status_resolverecipients_parents),
        cmocka_unit_test(test_status_other_commands),
        cmocka_unit_test(test_status_unknown_codes),
        cmocka_unit_test(test_status_tables_walk_consistent),
        cmocka_unit_test(test_status_http_meanings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
