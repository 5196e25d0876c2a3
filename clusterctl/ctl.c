/* clusterctl/ctl.c — the shared plumbing of clusterctl commands: lazy database/Redis
 * connections, option parsing, one-line errors and help, the operator's name. */
#include "ctl.h"

#include "config.h"
#include "db.h"
#include "kv.h"
#include "log.h"
#include "mode_change.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CTL_MAX_OPTS 32
#define CTL_REDIS_TIMEOUT_MS 500

void ctl_err(const char *fmt, ...)
{
    char line[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    line[strcspn(line, "\r\n")] = '\0'; /* one line, whatever the message held */
    fprintf(stderr, "clusterctl: %s\n", line);
}

int ctl_usage_err(const struct ctl *ctl, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    ctl_err("%s: %s (usage: clusterctl %s %s)", ctl->cmd->name, msg, ctl->cmd->name,
            ctl->cmd->synopsis);
    return CTL_USAGE;
}

void ctl_print_help(const struct ctl_cmd *cmd)
{
    printf("usage: clusterctl [-c FILE] [--db URL] %s%s%s\n\n%s\n", cmd->name,
           cmd->synopsis[0] ? " " : "", cmd->synopsis, cmd->summary);
    if (cmd->help)
        printf("\n%s", cmd->help);
}

struct cfg *ctl_config(struct ctl *ctl)
{
    char err[512];

    if (ctl->cfg_loaded)
        return ctl->cfg;
    if (cfg_load(ctl->cfg, ctl->config_path, err, sizeof(err)) < 0) {
        ctl_err("%s", err);
        return NULL;
    }
    ctl->cfg_loaded = true;
    return ctl->cfg;
}

struct db *ctl_db(struct ctl *ctl)
{
    const char *url = ctl->db_url;
    char err[512];

    if (ctl->db)
        return ctl->db;
    /* An explicit config file is always read (and validated), even when --db overrides it. */
    if ((!url || ctl->config_path) && !ctl_config(ctl))
        return NULL;
    if (!url)
        url = ctl->cfg->database.url;
    ctl->db = db_open(url, err, sizeof(err));
    if (!ctl->db)
        ctl_err("%s", err);
    return ctl->db;
}

struct kv *ctl_kv(struct ctl *ctl)
{
    const char *url = ctl->redis_url;
    char err[256];

    if (ctl->kv)
        return ctl->kv;
    if (!url) {
        if (!ctl_config(ctl))
            return NULL;
        url = ctl->cfg->redis.url;
    }
    if (url) {
        ctl->kv = kv_open(url, CTL_REDIS_TIMEOUT_MS, err, sizeof(err));
        if (!ctl->kv)
            log_debug("event=redis_url_invalid err=\"%s\"", err);
    }
    return ctl->kv;
}

void ctl_release(struct ctl *ctl)
{
    db_free(ctl->db);
    ctl->db = NULL;
    kv_free(ctl->kv);
    ctl->kv = NULL;
}

void ctl_notify_topology(struct ctl *ctl, const char *msg)
{
    struct kv *kv = ctl_kv(ctl);

    if (kv && kv_publish(kv, MODES_CHANNEL, msg) < 0)
        log_debug("event=notify_failed err=\"%s\"", kv_error(kv));
}

const char *ctl_actor(void)
{
    return mode_who_os_user();
}

bool ctl_name_valid(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > 63)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');

        if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-')))
            return false;
    }
    return true;
}

int ctl_parse(const struct ctl *ctl, int argc, char **argv, const struct ctl_opt *opts,
              const char **pos, int min_pos, int max_pos, int *ret_npos)
{
    struct option lopts[CTL_MAX_OPTS + 2];
    size_t nopts = 0;
    int npos = 0, c, idx;

    for (; opts && opts[nopts].name; nopts++) {
        if (nopts == CTL_MAX_OPTS)
            return ctl_usage_err(ctl, "too many options");
        lopts[nopts] = (struct option){opts[nopts].name, opts[nopts].has_arg ? 1 : 0, NULL, 0};
    }
    lopts[nopts] = (struct option){"help", 0, NULL, 0};
    lopts[nopts + 1] = (struct option){NULL, 0, NULL, 0};

    optind = 0; /* glibc: full re-initialisation */
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", lopts, &idx)) != -1) {
        if (c == 'h' || (c == 0 && (size_t) idx == nopts)) {
            ctl_print_help(ctl->cmd);
            return CTL_HELP_SHOWN;
        }
        if (c == ':')
            return ctl_usage_err(ctl, "option '%s' needs a value", argv[optind - 1]);
        if (c == '?')
            return ctl_usage_err(ctl, "unknown option '%s'", argv[optind - 1]);
        if (opts[idx].has_arg)
            *opts[idx].value = optarg;
        else
            *opts[idx].flag = true;
    }
    for (int i = optind; i < argc; i++) {
        if (npos >= max_pos)
            return ctl_usage_err(ctl, "unexpected argument '%s'", argv[i]);
        pos[npos++] = argv[i];
    }
    if (npos < min_pos)
        return ctl_usage_err(ctl, "missing argument");
    if (ret_npos)
        *ret_npos = npos;
    return 0;
}

int ctl_parse_name(const struct ctl *ctl, int argc, char **argv, const struct ctl_opt *opts,
                   const char *kind, const char **name, const char *const *reason)
{
    const char *bad;
    int r = ctl_parse(ctl, argc, argv, opts, name, 1, 1, NULL);

    if (r != 0)
        return r;
    if (!ctl_name_valid(*name))
        return ctl_usage_err(ctl, "bad %s name '%s': 1-63 of A-Z a-z 0-9 . _ -, starting with a "
                                  "letter or digit", kind, *name);
    if (reason && (bad = mode_reason_invalid(*reason)))
        return ctl_usage_err(ctl, "%s", bad);
    return 0;
}
