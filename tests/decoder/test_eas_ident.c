/* et_eas_user_match (decoder/eas_ident.c): how --only-user names an account. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "eastrace/eas.h"

static void test_user_match_bare_name_matches_every_form(void **state)
{
    (void)state;
    assert_true(et_eas_user_match("jdoe", "jdoe"));
    assert_true(et_eas_user_match("jdoe", "JDoe"));
    assert_true(et_eas_user_match("jdoe", "CONTOSO\\jdoe"));
    assert_true(et_eas_user_match("JDOE", "jdoe@contoso.com"));
    assert_false(et_eas_user_match("jdoe", "jdoe2"));
    assert_false(et_eas_user_match("jdoe", "CONTOSO\\jdoe2"));
    assert_false(et_eas_user_match("jdo", "jdoe@contoso.com"));
}

static void test_user_match_qualified_names(void **state)
{
    (void)state;
    assert_true(et_eas_user_match("CONTOSO\\jdoe", "contoso\\JDOE"));
    assert_true(et_eas_user_match("CONTOSO\\jdoe", "jdoe"));
    assert_true(et_eas_user_match("CONTOSO\\jdoe", "jdoe@contoso.com"));
    assert_false(et_eas_user_match("CONTOSO\\jdoe", "FABRIKAM\\jdoe"));
    assert_true(et_eas_user_match("jdoe@contoso.com", "JDOE@CONTOSO.COM"));
    assert_false(et_eas_user_match("jdoe@contoso.com", "jdoe@fabrikam.com"));
    assert_false(et_eas_user_match("jdoe", NULL));
    assert_false(et_eas_user_match("", "jdoe"));
    assert_false(et_eas_user_match("jdoe", "CONTOSO\\"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_user_match_bare_name_matches_every_form),
        cmocka_unit_test(test_user_match_qualified_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
