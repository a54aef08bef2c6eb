"""The real catalogue app on waitress, on a free loopback port, in a daemon thread (tests and
benchmarks that must go through HTTP)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from catalogue.runtime import Runtime


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (for a server started next)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve(runtime: Runtime, threads: int = 8, settle: bool = False) -> Iterator[str]:
    """Serve ``runtime``'s app; yields its base URL and stops the server on exit. ``settle``
    (benchmarks): ``runtime.settle()`` once the app is made, as ``catalogue serve`` does, so
    that the app's own objects are frozen too (never for tests: frozen objects stay)."""
    from waitress import create_server

    from catalogue.api.app import create_app
    from catalogue.serving import SERVER_OPTIONS

    app = create_app(runtime=runtime, background_indexer=False)
    if settle:
        runtime.settle()
    server: Any = create_server(app, host="127.0.0.1", port=0, threads=threads,
                                **SERVER_OPTIONS)
    thread = threading.Thread(target=server.run, name="catalogue-waitress", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        # closed from the server's own loop (closing its sockets from here races its select())
        try:
            server.trigger.pull_trigger(server.close)
        except OSError:  # the loop already ended and closed its trigger pipe: nothing to stop
            pass
        thread.join(10)
        server.task_dispatcher.shutdown(timeout=5)
