"""Sphinx extension of the book build: the notebook client never sleeps through a kernel's reply.

The hang of issue 31 (``jupyter-book build`` and its kernel both idle until a timeout), caught under
load with both processes' stacks and every Jupyter message logged: the kernel had run the cell and
sent its ``execute_reply`` and the final ``status: idle``; the client (nbclient, inside the build) had
received the idle status on IOPub, and was waiting in ``AsyncZMQSocketChannel.get_msg`` on the shell
socket, one ``poll()`` of the cell's whole timeout (900 s), while the reply already sat in that socket
(``ZMQ_EVENTS`` said POLLIN). Reading ``ZMQ_EVENTS`` once released it at once. So the wake-up for the
reply was lost in the client's zmq.asyncio socket (ZeroMQ signals readiness on an edge-triggered
descriptor). In both hangs caught with a message log, the reply arrived within milliseconds of nbclient
sending an ipywidgets ``Output`` update on that same socket (``OutputWidget.sync_state``): only pages
with an ``Output`` widget (the explorers) are known to hang, and only on a busy machine. A small
zmq.asyncio script that sends while a ``poll()`` waits did not lose the wake-up, so the exact path
inside pyzmq is not pinned down; the remedy below does not depend on it.

The remedy: wait on a kernel socket in slices of at most :data:`SLICE_S` seconds. Every new ``poll()``
asks ZeroMQ for the socket's events before it waits, so a reply whose wake-up was lost is read within
a second, and the total wait (the cell's timeout) is unchanged.
"""

from __future__ import annotations

import time
from queue import Empty
from typing import Any

#: The longest single wait on a kernel socket, in seconds.
SLICE_S = 1.0


def patch_kernel_client() -> None:
    """Make ``jupyter_client``'s asyncio channels wait in slices (idempotent)."""
    from jupyter_client.channels import AsyncZMQSocketChannel

    if getattr(AsyncZMQSocketChannel.get_msg, "sliced", False):
        return

    async def get_msg(self, timeout: float | None = None) -> dict[str, Any]:
        """The next message, waiting at most ``timeout`` seconds (``None``: for ever); ``queue.Empty`` after."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            wait = SLICE_S if left is None else min(SLICE_S, left)
            if await self.socket.poll(int(wait * 1000)):
                return await self._recv()
            if left is not None and left <= wait:
                raise Empty

    get_msg.sliced = True  # type: ignore[attr-defined]
    AsyncZMQSocketChannel.get_msg = get_msg  # type: ignore[method-assign]


def setup(app: Any) -> dict[str, Any]:
    patch_kernel_client()
    return {"parallel_read_safe": True, "parallel_write_safe": True}
