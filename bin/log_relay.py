"""Pass on what nginx and the app print, line by line, through this process's stdout and stderr.

bin/start-nginx gives each child a pipe of its own for stdout and another for stderr, and
copies every whole line it reads from them to its own stdout or stderr, rather than let the
children inherit its stdout, for two reasons:

- nginx writes its access log by opening /dev/stdout, which fails when stdout is a socket
  (`heroku local`, systemd's journal, pm2: `open() "/dev/stdout" failed (6: No such device
  or address)`) or a pipe the app's user may not open by name (Dokku). /dev/stdout always
  opens when it is a pipe this script made.
- Lines stay whole. Two nginx workers and several gunicorn workers write at once, and Linux
  keeps a write to a pipe in one piece only up to 4,096 bytes; a longer one may be split and
  mixed with another writer's when the pipe is full. Here each program has pipes of its own,
  1 MiB deep and emptied at once into this process's memory (up to MAX_QUEUED chunks), so
  they do not fill even while whatever reads our output stalls; and one thread writes
  everything this process prints, whole lines at a time, so nothing comes between them.

Why not nginx's syslog target on a unix socket, which keeps lines whole by design: a unix
datagram socket queues only 10 datagrams (net.unix.max_dgram_qlen, which a dyno cannot
change), nginx sends without waiting, and a line that finds the queue full is dropped
without a word. Measured here with a Python reader, 13 % of access lines were lost at
38,000 requests per second and 53 % at 64,000. A pipe never drops a line: when it is full,
nginx waits, as it did when it wrote to the terminal or to Heroku's log pipe itself.

Standard library only, like bin/start_nginx.py, which uses it.
"""

import contextlib
import fcntl
import os
import queue
import select
import selectors
import sys
import threading
import time

# Deep enough for a hundred of the longest access lines (about 9,200 bytes); 1 MiB is the
# most an unprivileged process may ask for (/proc/sys/fs/pipe-max-size).
PIPE_SIZE = 1024 * 1024
READ_SIZE = 64 * 1024
# Output that never ends its line (a progress bar, binary junk) is passed on in pieces of
# this size rather than held forever.
LONGEST_LINE = 64 * 1024
# How long to let output gather once some has come: a line is printed at most this much later.
GATHER_SECONDS = 0.002
# Chunks read but not yet written, each at most READ_SIZE + LONGEST_LINE: about 16 MiB of
# logs held while our reader stalls. Past that the pipes fill and their writers wait.
MAX_QUEUED = 128


class LogRelay:
    """Pipes for children's output, and the thread that writes their lines and ours.

        relay = LogRelay()
        process = subprocess.Popen(command, stdout=relay.pipe_to(sys.stdout),
                                   stderr=relay.pipe_to(sys.stderr))
        relay.close_child_ends()
        while process.poll() is None:
            relay.pump(timeout=0.05)
        relay.drain(timeout=1)
        relay.close(timeout=5)
    """

    def __init__(self):
        self._selector = selectors.DefaultSelector()
        self._unfinished = {}  # read end -> the start of a line whose end has not come yet
        self._child_ends = []
        self._to_write = queue.Queue(MAX_QUEUED)
        self._writer = threading.Thread(target=self._write_until_closed, name="log-writer", daemon=True)
        self._writer.start()

    def print(self, stream, line):
        """Print one line of our own, in its turn with the children's."""
        self._to_write.put((stream.fileno(), line.encode() + b"\n"))

    def pipe_to(self, stream):
        """A new pipe whose lines are copied to `stream`; returns the end to give a child."""
        read_end, write_end = os.pipe()
        if sys.platform == "linux":
            with contextlib.suppress(OSError):
                fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        os.set_blocking(read_end, False)
        self._selector.register(read_end, selectors.EVENT_READ, stream.fileno())
        self._unfinished[read_end] = b""
        self._child_ends.append(write_end)
        return write_end

    def close_child_ends(self):
        """Close our copies of the write ends once the children have theirs, so that a pipe
        reports its end when the last process that could write to it has gone."""
        for write_end in self._child_ends:
            os.close(write_end)
        self._child_ends.clear()

    def pump(self, timeout):
        """Wait at most `timeout` seconds for output, and pass on every whole line that came."""
        if not self._unfinished:
            time.sleep(timeout)
            return
        ready = self._selector.select(timeout)
        if ready:
            # Let more lines come before reading: at thousands of requests a second, one read
            # then carries dozens of lines instead of one, for a fraction of the work.
            time.sleep(GATHER_SECONDS)
        for key, _ in ready:
            self._read(key.fd, key.data)

    def drain(self, timeout):
        """Pass on everything still in the pipes, until each is closed or `timeout` is up.

        Called once the children are gone, so that the last request's access line is printed
        before this script exits. A pipe stays open while anything holds its write end (a
        process the app started and left running), hence the limit."""
        deadline = time.monotonic() + timeout
        while self._unfinished and time.monotonic() < deadline:
            self.pump(deadline - time.monotonic())

    def close(self, timeout):
        """Write out everything queued, waiting at most `timeout` seconds for a stalled reader."""
        with contextlib.suppress(queue.Full):
            self._to_write.put(None, timeout=timeout)
        self._writer.join(timeout)

    def _read(self, read_end, out_fd):
        try:
            chunk = os.read(read_end, READ_SIZE)
        except BlockingIOError:
            return
        if not chunk:
            self._close_pipe(read_end, out_fd)
            return
        text = self._unfinished[read_end] + chunk
        lines, newline, rest = text.rpartition(b"\n")
        if len(rest) > LONGEST_LINE:
            lines, newline, rest = text, b"", b""
        self._unfinished[read_end] = rest
        if lines or newline:
            self._to_write.put((out_fd, lines + newline))

    def _close_pipe(self, read_end, out_fd):
        """Every writer has gone: pass on a last line that had no newline, and let go."""
        rest = self._unfinished.pop(read_end)
        if rest:
            self._to_write.put((out_fd, rest + b"\n"))
        self._selector.unregister(read_end)
        os.close(read_end)

    def _write_until_closed(self):
        while (item := self._to_write.get()) is not None:
            write_all(*item)


def write_all(fd, data):
    """Write `data` in full. With nobody reading our output any more, drop it quietly: the
    web process must go on serving, and there is nowhere left to report the loss."""
    while data:
        try:
            written = os.write(fd, data)
        except BlockingIOError:
            # Someone made our stdout non-blocking; wait until it takes more.
            select.select([], [fd], [])
            continue
        except BrokenPipeError:
            return
        data = data[written:]
