"""A TCP proxy for the tests, to make a database go away and come back on demand."""

import contextlib
import socket
import threading

from tests.stack import free_port

ACCEPT_POLL = 0.1


class TcpProxy:
    """Forwards connections from 127.0.0.1:<port> to `target` (host, port), until cut.

        proxy = TcpProxy(("127.0.0.1", 5432))
        proxy.restore()  # listening; connect to 127.0.0.1:proxy.port
        proxy.cut()      # connections refused, and every open one dropped
        proxy.restore()  # back, on the same port

    Standard library only, 127.0.0.1 only, and daemon threads that end with each cut.
    """

    def __init__(self, target):
        self.target = target
        self.port = free_port()
        self.stopped = threading.Event()
        self.accepting = None
        self.connections = []
        self.lock = threading.Lock()

    def restore(self):
        listener = socket.create_server(("127.0.0.1", self.port))
        listener.settimeout(ACCEPT_POLL)
        self.stopped.clear()
        self.accepting = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self.accepting.start()

    def cut(self):
        self.stopped.set()
        self.accepting.join()
        with self.lock:
            for connection in self.connections:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
                connection.close()
            self.connections.clear()

    def _accept(self, listener):
        with listener:
            while not self.stopped.is_set():
                try:
                    client, _ = listener.accept()
                except TimeoutError:
                    continue
                self._connect(client)

    def _connect(self, client):
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()
            return
        client.settimeout(None)
        upstream.settimeout(None)
        with self.lock:
            self.connections += [client, upstream]
        for source, destination in ((client, upstream), (upstream, client)):
            threading.Thread(target=pump, args=(source, destination), daemon=True).start()


def pump(source, destination):
    """Copy bytes one way until either side closes."""
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            destination.sendall(data)
    with contextlib.suppress(OSError):
        destination.shutdown(socket.SHUT_WR)
