"""Messages between the service and its child processes (sending processes, API processes).

Each message is one plain `pickle` and one write on a `multiprocessing` pipe: multiprocessing's
own `send` builds a pickler anew for every message, which cost the service about a tenth of its
time at 1,000+ webhooks a second (service/delivery/send/senders.py). Plain pickle is enough:
what crosses is strings, numbers, lists and a message's recipe, never a socket or a handle.
"""

from __future__ import annotations

import multiprocessing.connection
import pickle
from typing import Any


def put(conn: multiprocessing.connection.Connection, message: object) -> None:
    conn.send_bytes(pickle.dumps(message, pickle.HIGHEST_PROTOCOL))


def take(conn: multiprocessing.connection.Connection) -> Any:
    return pickle.loads(conn.recv_bytes())
