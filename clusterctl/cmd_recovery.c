/* clusterctl/cmd_recovery.c — `clusterctl repair`, `rebalance` and `verify`: their arguments are
 * checked, then they refuse honestly, because repaird's recovery work is not in this build. */
#include "config.h"
#include "ctl.h"

#include <stdint.h>

#define RECOVERY_UNAVAILABLE "not available yet: repaird recovery is not implemented in this build"

static int cmd_repair(struct ctl *ctl, int argc, char **argv)
{
    const char *name = NULL, *from = NULL;
    bool wait = false;
    const struct ctl_opt opts[] = {
        {"from", true, &from, NULL},
        {"wait", false, NULL, &wait},
        {0},
    };
    int r = ctl_parse(ctl, argc, argv, opts, &name, 1, 1, NULL);

    if (r != 0)
        return r == CTL_HELP_SHOWN ? CTL_OK : r;
    if (!ctl_name_valid(name))
        return ctl_usage_err(ctl, "bad storage name '%s'", name);
    if (from && !ctl_name_valid(from))
        return ctl_usage_err(ctl, "bad --from storage name '%s'", from);
    ctl_err("%s", RECOVERY_UNAVAILABLE);
    return CTL_FAILED;
}

static int cmd_rebalance(struct ctl *ctl, int argc, char **argv)
{
    const char *window = NULL, *rate = NULL;
    bool dry_run = false, wait = false;
    const struct ctl_opt opts[] = {
        {"window", true, &window, NULL},
        {"max-bytes-per-sec", true, &rate, NULL},
        {"dry-run", false, NULL, &dry_run},
        {"wait", false, NULL, &wait},
        {0},
    };
    unsigned start, end;
    uint64_t bytes;
    int r = ctl_parse(ctl, argc, argv, opts, NULL, 0, 0, NULL);

    if (r != 0)
        return r == CTL_HELP_SHOWN ? CTL_OK : r;
    if (window && parse_window(window, &start, &end) < 0)
        return ctl_usage_err(ctl, "bad --window '%s' (HH:MM-HH:MM)", window);
    if (rate && parse_size(rate, &bytes) < 0)
        return ctl_usage_err(ctl, "bad --max-bytes-per-sec '%s' (a size such as 64M)", rate);
    ctl_err("%s", RECOVERY_UNAVAILABLE);
    return CTL_FAILED;
}

static int cmd_verify(struct ctl *ctl, int argc, char **argv)
{
    const char *name = NULL;
    bool repair = false;
    const struct ctl_opt opts[] = {
        {"repair", false, NULL, &repair},
        {0},
    };
    int r = ctl_parse(ctl, argc, argv, opts, &name, 1, 1, NULL);

    if (r != 0)
        return r == CTL_HELP_SHOWN ? CTL_OK : r;
    if (!ctl_name_valid(name))
        return ctl_usage_err(ctl, "bad cluster name '%s'", name);
    ctl_err("%s", RECOVERY_UNAVAILABLE);
    return CTL_FAILED;
}

#define RECOVERY_NOTE                                                                              \
    "\nNot available in this build: repaird's recovery work is not implemented yet, so this\n"     \
    "command changes nothing and exits 1.\n"

const struct ctl_cmd ctl_cmd_repair = {
    .name = "repair",
    .fn = cmd_repair,
    .synopsis = "STORAGE [--from PEER] [--wait]",
    .summary = "rebuild a down or spare storage: whole-disk copy + narrow recovery (not yet)",
    .help = "options:\n"
            "  --from PEER   the readable storage to copy from (default: chosen by repaird)\n"
            "  --wait        follow the progress until the storage is rw again\n" RECOVERY_NOTE,
};

const struct ctl_cmd ctl_cmd_rebalance = {
    .name = "rebalance",
    .fn = cmd_rebalance,
    .synopsis = "[--window HH:MM-HH:MM] [--max-bytes-per-sec N] [--dry-run] [--wait]",
    .summary = "move objects from fuller clusters to emptier ones (not yet)",
    .help = "options:\n"
            "  --window HH:MM-HH:MM      only inside this daily window\n"
            "  --max-bytes-per-sec N     throttle (e.g. 64M)\n"
            "  --dry-run                 say what would move\n"
            "  --wait                    follow the progress\n" RECOVERY_NOTE,
};

const struct ctl_cmd ctl_cmd_verify = {
    .name = "verify",
    .fn = cmd_verify,
    .synopsis = "CLUSTER [--repair]",
    .summary = "compare metadata with the disks: missing, extra, corrupt (not yet)",
    .help = "options:\n"
            "  --repair   queue repairs for what is found\n" RECOVERY_NOTE,
};
