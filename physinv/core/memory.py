"""Peak memory of the current process (for benchmarks measuring one computation in a fresh child)."""

from __future__ import annotations

__all__ = ["peak_rss_kib"]


def peak_rss_kib() -> int:
    """This process's peak resident set size in KiB: ``VmHWM`` of ``/proc/self/status`` (Linux).

    Not ``getrusage``'s ``ru_maxrss``: Linux keeps that across ``execve``, so a child started by a
    large parent reports the parent's peak and hides its own growth.
    """
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status (the peak-memory measurement needs Linux)")
