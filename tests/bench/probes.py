"""What the benchmark reads from /proc while the servers run (Linux only).

    blocked_on_clients   proves an attack is real: how many of the app's threads are stuck
                         in a socket read or write, waiting on a client
    memory_kib           resident memory of a set of processes
    pss_kib              their proportional set size: shared pages divided among the
                         processes sharing them, so that a sum over processes is honest
    open_files           file descriptors a set of processes holds
    cpu_seconds          CPU time a set of processes has used
    waiting_on_disk      how many of a set of processes sleep waiting for the disk (state D)
    temp_file_kib        disk used by nginx's temporary files
    listen_queue         connections waiting in a unix socket's queue (gunicorn's), and its size
"""

import os
import subprocess
from pathlib import Path

from tests.stack import stat_fields

# What /proc/<pid>/task/<tid>/wchan names while a thread sleeps inside a TCP socket call:
# sending with a full send buffer (a slow reader), or receiving with nothing to read (a slow
# uploader, a slowloris). Idle workers sleep elsewhere (in select, poll, accept or a lock).
WAITING_ON_A_TCP_PEER = {"sk_stream_wait_memory", "wait_woken", "sk_wait_data"}


def blocked_on_clients(pids):
    blocked = 0
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                blocked += (task / "wchan").read_text() in WAITING_ON_A_TCP_PEER
            except OSError:  # the thread has just ended
                pass
    return blocked


def memory_kib(pids):
    """Resident memory of `pids`, in KiB."""
    return summed(pids, lambda pid: kib_line(pid, "status", "VmRSS"))


def pss_kib(pids):
    """Proportional set size of `pids` (shared pages divided among their sharers), in KiB."""
    return summed(pids, lambda pid: kib_line(pid, "smaps_rollup", "Pss"))


def open_files(pids):
    return summed(pids, lambda pid: len(os.listdir(f"/proc/{pid}/fd")))


def cpu_seconds(pids):
    # utime and stime, the 14th and 15th fields of /proc/PID/stat.
    ticks = summed(pids, lambda pid: sum(int(field) for field in stat_fields(pid)[11:13]))
    return ticks / os.sysconf("SC_CLK_TCK")


def waiting_on_disk(pids):
    """Processes in uninterruptible sleep: for nginx, writing temporary files faster than the
    kernel lets dirty pages pile up (it then makes the writer wait)."""
    return summed(pids, lambda pid: stat_fields(pid)[0] == "D")


def summed(pids, measure):
    """measure(pid) summed over `pids`; a process that has just ended counts as nothing."""
    total = 0
    for pid in pids:
        try:
            total += measure(pid)
        except OSError:
            pass
    return total


def kib_line(pid, proc_file, key):
    """The value of the `KEY: N kB` line of /proc/PID/PROC_FILE."""
    for line in Path(f"/proc/{pid}/{proc_file}").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    raise ValueError(f"no {key} line in /proc/{pid}/{proc_file}")


def listen_queue(socket_path):
    """(waiting, size) of a listening unix socket, from `ss`: for a listening socket, its
    Recv-Q column is the connections waiting to be accepted and Send-Q the queue's size."""
    output = subprocess.run(["ss", "-xlnH"], capture_output=True, text=True).stdout
    for line in output.splitlines():
        fields = line.split()
        if len(fields) > 4 and fields[4] == str(socket_path):
            return int(fields[2]), int(fields[3])
    return 0, 0


def temp_file_kib(pids, temp_dir):
    """Disk blocks held by the files under temp_dir that `pids` have open.

    nginx deletes each temporary file as soon as it creates it and keeps only the open
    descriptor, so the directory always looks empty; the descriptors tell the truth.
    """
    total = 0
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").glob("*"):
            try:
                if os.readlink(fd).startswith(str(temp_dir)):
                    total += os.stat(fd).st_blocks * 512
            except OSError:
                pass
    return total // 1024
