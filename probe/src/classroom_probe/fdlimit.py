"""Make room for one socket per concurrent stream under RLIMIT_NOFILE."""

import resource

from classroom_probe.errors import BadInput

HEADROOM = 64  # files, the event loop, samplers, records file


def ensure_fd_limit(streams: int, field: str) -> int:
    """Raise the soft limit where the hard limit allows; else BadInput naming the option. Returns the soft limit."""
    need = streams + HEADROOM
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= need:
        return need if soft == resource.RLIM_INFINITY else soft
    if hard != resource.RLIM_INFINITY and hard < need:
        raise BadInput(field, f"{streams} concurrent streams need {need} open files, but the hard limit "
                              f"(ulimit -Hn) is {hard}; lower {field} or raise the limit (LimitNOFILE=)")
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    except (ValueError, OSError) as exc:
        raise BadInput(field, f"{streams} concurrent streams need {need} open files; the soft limit is {soft} "
                              f"and raising it failed: {exc}") from exc
    return need
