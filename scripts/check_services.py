"""Check that PostgreSQL and RabbitMQ answer; say which one does not and how to start it.

    python scripts/check_services.py [--start]

With --start (CI), a service that is down is started with the machine's own command first.
"""

import os
import socket
import subprocess
import sys
import time
from urllib.parse import urlparse

import psycopg

POSTGRES_URL = os.environ.get("CHECK_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
BROKER_URL = os.environ.get("BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
START = {
    "PostgreSQL": "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    "RabbitMQ": "rabbitmq-server -detached",
}


def postgres_answers() -> bool:
    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=2) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.OperationalError:
        return False


def rabbitmq_answers() -> bool:
    """An AMQP 0-9-1 server answers the protocol header with a Connection.Start frame."""
    url = urlparse(BROKER_URL)
    try:
        with socket.create_connection((url.hostname or "127.0.0.1", url.port or 5672), 2) as s:
            s.settimeout(2)
            s.sendall(b"AMQP\x00\x00\x09\x01")
            frame = s.recv(7)
        return frame[:1] == b"\x01"  # a method frame
    except OSError:
        return False


def main() -> int:
    start = "--start" in sys.argv
    checks = {"PostgreSQL": postgres_answers, "RabbitMQ": rabbitmq_answers}
    down = []
    for name, answers in checks.items():
        if answers():
            continue
        if start:
            print(f"{name} is down; starting it: {START[name]}")
            subprocess.run(START[name], shell=True, check=False)  # noqa: S602 - fixed command
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not answers():
                time.sleep(1)
        if not answers():
            down.append(name)
    for name in down:
        print(f"{name} does not answer. Start it with:\n    {START[name]}", file=sys.stderr)
    if not down:
        print("PostgreSQL and RabbitMQ answer.")
    return 1 if down else 0


if __name__ == "__main__":
    sys.exit(main())
