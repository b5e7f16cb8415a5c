#!/usr/bin/python3
"""qmp: a small client for QMP sockets (QEMU's -qmp, NetWire's --qmp), standard library only.

  from qmp import Qmp
  q = Qmp("/run/vm-a.qmp")                 # greeting read, qmp_capabilities sent
  q.execute("migrate", uri="tcp:...")      # returns "return", raises QmpError on "error"
  q.wait_event("MIGRATION", lambda e: e["data"]["status"] in ("completed", "failed"), timeout=60)

A reader thread takes every line: replies go to the caller that is waiting, events are kept
with the monotonic time they arrived (seconds), so a caller can tell when something happened
even if it looked later. As a command:  qmp.py SOCKET COMMAND [key=value ...]
"""
import json
import socket
import sys
import threading
import time


class QmpError(Exception):
    pass


class Qmp:
    def __init__(self, path, timeout=30.0):
        deadline = time.monotonic() + timeout
        while True:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                self._sock.connect(path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                self._sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        self.path = path
        self._file = self._sock.makefile("rb")
        self.greeting = json.loads(self._file.readline())
        self._cond = threading.Condition()
        self._replies = []
        self.events = []  # (monotonic seconds, event dict)
        self._closed = False
        threading.Thread(target=self._read, daemon=True).start()
        self.execute("qmp_capabilities")

    def _read(self):
        try:
            for line in self._file:
                try:
                    message = json.loads(line)
                except ValueError:
                    continue
                with self._cond:
                    if "event" in message:
                        self.events.append((time.monotonic(), message))
                    else:
                        self._replies.append(message)
                    self._cond.notify_all()
        except OSError:
            pass
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def execute(self, command, timeout=60.0, **arguments):
        request = {"execute": command}
        if arguments:
            request["arguments"] = arguments
        with self._cond:
            self._sock.sendall(json.dumps(request).encode() + b"\n")
            deadline = time.monotonic() + timeout
            while not self._replies:
                if self._closed:
                    raise QmpError("%s: the socket closed during %s" % (self.path, command))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise QmpError("%s: no reply to %s within %.0f s" % (self.path, command, timeout))
                self._cond.wait(left)
            reply = self._replies.pop(0)
        if "error" in reply:
            raise QmpError("%s: %s: %s" % (self.path, command, reply["error"].get("desc", reply["error"])))
        return reply.get("return")

    def wait_event(self, name, match=None, timeout=60.0, since=0.0):
        """The first event NAME (for which match(event) is true) that arrived at or after `since`: (time, event)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for at, event in self.events:
                    if at >= since and event.get("event") == name and (match is None or match(event)):
                        return at, event
                left = deadline - time.monotonic()
                if left <= 0:
                    raise QmpError("%s: no %s event within %.0f s" % (self.path, name, timeout))
                if self._closed:
                    raise QmpError("%s: the socket closed while waiting for %s" % (self.path, name))
                self._cond.wait(left)

    def close(self):
        try:
            self._sock.close()
        except OSError:
            pass


def _value(text):
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text, text)


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    q = Qmp(sys.argv[1])
    arguments = dict(arg.split("=", 1) for arg in sys.argv[3:])
    print(json.dumps(q.execute(sys.argv[2], **{k: _value(v) for k, v in arguments.items()}), indent=1))
    q.close()


if __name__ == "__main__":
    main()
