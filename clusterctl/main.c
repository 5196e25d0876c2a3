/* clusterctl/main.c — the operator CLI's entry point: global options, the command table, and
 * dispatch to one cmd_*.c per command group (SPEC §7). */
#include "config.h"
#include "ctl.h"
#include "http_client.h"
#include "log.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The command table: one line per command, in the order `clusterctl --help` lists them.
 * Each entry names a `const struct ctl_cmd` defined next to its code in a cmd_*.c file. */
#define CLUSTERCTL_COMMANDS(X)                                                                     \
    X(ctl_cmd_migrate)                                                                             \
    X(ctl_cmd_cluster_add)                                                                         \
    X(ctl_cmd_cluster_mark_rw)                                                                     \
    X(ctl_cmd_cluster_mark_ro)                                                                     \
    X(ctl_cmd_cluster_mark_down)                                                                   \
    X(ctl_cmd_cluster_remove)                                                                      \
    X(ctl_cmd_storage_add)                                                                         \
    X(ctl_cmd_storage_remove)                                                                      \
    X(ctl_cmd_mark_rw)                                                                             \
    X(ctl_cmd_mark_ro)                                                                             \
    X(ctl_cmd_mark_down)                                                                           \
    X(ctl_cmd_mark_spare)                                                                          \
    X(ctl_cmd_repair)                                                                              \
    X(ctl_cmd_rebalance)                                                                           \
    X(ctl_cmd_status)                                                                              \
    X(ctl_cmd_history)                                                                             \
    X(ctl_cmd_verify)                                                                              \
    X(ctl_cmd_jobs)

#define CTL_DECLARE(sym) extern const struct ctl_cmd sym;
#define CTL_ENTRY(sym) &sym,
CLUSTERCTL_COMMANDS(CTL_DECLARE)
static const struct ctl_cmd *const ctl_commands[] = {CLUSTERCTL_COMMANDS(CTL_ENTRY)};
#define CTL_NCOMMANDS (sizeof(ctl_commands) / sizeof(ctl_commands[0]))

static void usage(FILE *f)
{
    fprintf(f, "usage: clusterctl [-c FILE] [--db URL] [--log-level LEVEL] COMMAND [ARGS...]\n\n"
               "Operator CLI of STF: migrations, clusters, storages, modes, repair, status.\n\n"
               "options:\n"
               "  -c, --config FILE    config file (default $STF_CONFIG, else /etc/stf/stf.conf)\n"
               "  --db URL             PostgreSQL url (default $STF_DB_URL, else [database] url)\n"
               "  --log-level LEVEL    debug|info|warn|error (default warn)\n"
               "  --help, --version\n\n"
               "commands:\n");
    for (size_t i = 0; i < CTL_NCOMMANDS; i++) {
        char head[160];

        snprintf(head, sizeof(head), "%s %s", ctl_commands[i]->name, ctl_commands[i]->synopsis);
        if (strlen(head) > 34)
            fprintf(f, "  %s\n  %-34s %s\n", head, "", ctl_commands[i]->summary);
        else
            fprintf(f, "  %-34s %s\n", head, ctl_commands[i]->summary);
    }
    fprintf(f, "\nRun `clusterctl COMMAND --help` for a command's options. Exit status: 0 ok, "
               "1 refused or failed, 2 usage.\n");
}

/* Finds the command named by argv[0] (and argv[1] for two-word commands). Sets *ret_words. */
static const struct ctl_cmd *find_command(int argc, char **argv, int *ret_words)
{
    for (size_t i = 0; i < CTL_NCOMMANDS; i++) {
        const char *name = ctl_commands[i]->name, *sp = strchr(name, ' ');

        if (!sp && strcmp(name, argv[0]) == 0) {
            *ret_words = 1;
            return ctl_commands[i];
        }
        if (sp && argc > 1 && strlen(argv[0]) == (size_t) (sp - name) &&
            strncmp(name, argv[0], (size_t) (sp - name)) == 0 && strcmp(sp + 1, argv[1]) == 0) {
            *ret_words = 2;
            return ctl_commands[i];
        }
    }
    return NULL;
}

/* For "clusterctl cluster" / "clusterctl cluster bogus" / "clusterctl cluster --help". */
static int group_usage(const char *group, const char *sub)
{
    size_t glen = strlen(group);
    char subs[256] = "";
    bool help = sub && (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0);

    for (size_t i = 0; i < CTL_NCOMMANDS; i++) {
        const char *name = ctl_commands[i]->name;

        if (strncmp(name, group, glen) != 0 || name[glen] != ' ')
            continue;
        if (help)
            printf("  clusterctl %s %s\n      %s\n", name, ctl_commands[i]->synopsis,
                   ctl_commands[i]->summary);
        else
            snprintf(subs + strlen(subs), sizeof(subs) - strlen(subs), "%s%s", subs[0] ? ", " : "",
                     name + glen + 1);
    }
    if (help)
        return CTL_OK;
    if (!subs[0]) {
        ctl_err("unknown command '%s' (see clusterctl --help)", group);
        return CTL_USAGE;
    }
    if (sub)
        ctl_err("%s: unknown subcommand '%s' (one of: %s)", group, sub, subs);
    else
        ctl_err("%s: missing subcommand (one of: %s)", group, subs);
    return CTL_USAGE;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", 1, NULL, 'c'}, {"db", 1, NULL, 'd'},      {"log-level", 1, NULL, 'l'},
        {"help", 0, NULL, 'h'},   {"version", 0, NULL, 'V'}, {NULL, 0, NULL, 0},
    };
    struct ctl ctl = {0};
    struct cfg cfg;
    enum log_level level = LOG_WARN;
    int c, words = 0, r;

    log_init("clusterctl", LOG_WARN);
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+:c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            ctl.config_path = optarg;
            break;
        case 'd':
            ctl.db_url = optarg;
            break;
        case 'l':
            if (log_level_parse(optarg, &level) < 0) {
                ctl_err("bad --log-level '%s' (debug|info|warn|error)", optarg);
                return CTL_USAGE;
            }
            log_set_level(level);
            break;
        case 'h':
            usage(stdout);
            return CTL_OK;
        case 'V':
            printf("clusterctl %s\n", STF_VERSION);
            return CTL_OK;
        case ':':
            ctl_err("option '%s' needs a value (see clusterctl --help)", argv[optind - 1]);
            return CTL_USAGE;
        default:
            ctl_err("unknown option '%s' (see clusterctl --help)", argv[optind - 1]);
            return CTL_USAGE;
        }
    }
    if (optind >= argc) {
        ctl_err("missing command (see clusterctl --help)");
        return CTL_USAGE;
    }
    argc -= optind;
    argv += optind;
    ctl.cmd = find_command(argc, argv, &words);
    if (!ctl.cmd)
        return group_usage(argv[0], argc > 1 ? argv[1] : NULL);

    if (!ctl.db_url && getenv("STF_DB_URL") && *getenv("STF_DB_URL"))
        ctl.db_url = getenv("STF_DB_URL");
    if (getenv("STF_REDIS_URL") && *getenv("STF_REDIS_URL"))
        ctl.redis_url = getenv("STF_REDIS_URL");
    cfg_init(&cfg);
    ctl.cfg = &cfg;
    if (http_global_init() < 0) {
        ctl_err("cannot initialise libcurl");
        r = CTL_FAILED;
        goto out;
    }
    /* The command sees its last name word as argv[0]. */
    r = ctl.cmd->fn(&ctl, argc - (words - 1), argv + (words - 1));
    if (fflush(stdout) != 0 && r == CTL_OK) {
        ctl_err("cannot write the output");
        r = CTL_FAILED;
    }
out:
    ctl_release(&ctl);
    cfg_release(&cfg);
    http_global_cleanup();
    return r;
}
