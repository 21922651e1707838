/*
 * eastrace command-line front end: shared declarations of the subcommands and small helpers.
 * Each subcommand lives in cmd_<name>.c and is listed in the table in main.c.
 */
#ifndef ET_CLI_CLI_H
#define ET_CLI_CLI_H

#include <stdio.h>

/* Exit statuses every subcommand uses (scripts rely on them). */
enum et_exit {
    ET_EXIT_OK = 0,       /* done; nothing at or above --fail-on found */
    ET_EXIT_FINDINGS = 1, /* done; findings at or above --fail-on, or a decode error */
    ET_EXIT_INPUT = 2,    /* the input could not be read, or bad usage */
};

/* A subcommand: argv[0] is the subcommand's name. Returns an enum et_exit value. */
typedef int (*et_cmd_fn)(int argc, char **argv);

int et_cmd_decode(int argc, char **argv);
int et_cmd_proxy(int argc, char **argv);
int et_cmd_ca(int argc, char **argv);
int et_cmd_iis(int argc, char **argv);
int et_cmd_mailboxlog(int argc, char **argv);
int et_cmd_replay(int argc, char **argv);

/* Prints "eastrace: " + message to stderr. */
void et_cli_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Whether to colour output on this stream: a terminal, and NO_COLOR unset. */
int et_cli_use_color(FILE *f);

#endif
