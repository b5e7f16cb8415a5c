#!/usr/bin/python3
"""gtk_client: real spice-gtk (SpiceClientGLib 2.0, via PyGObject) clients for NetWire's tests.

  gtk_client.py [--port P] [--tls-port T --ca-file F [--cert-subject S]] [--host H]
                [--password X] [--clients N] [--seconds S]
                [--stop-after-migration S | --stop-after-move S]

Opens N independent SPICE sessions at once, keeps them for S seconds, and prints one line per
event ("EVENT client=I ...") and a final line per client:

  RESULT client=I opened=0|1 lost=0|1 error=NAME|none

TLS: the session properties tls-port, ca-file and cert-subject (spice-gtk links plaintext first
when it has a port and switches a channel to TLS when the server answers NEED_SECURED; with a
TLS port only it links over TLS). "EVENT client=I main opened port=P tls-port=T server-port=S" says
the server port the main channel is connected to (the TLS port when it runs over TLS).

Migration is followed as spice-gtk reports it: "EVENT client=I migration-started host=H port=P"
(MIGRATE_BEGIN received, a migration session links to the target), "EVENT client=I
migration-state STATE port=P" (none, connecting, migrating, switching; P is the port the
session is on now), "EVENT client=I main opened port=P". With --stop-after-migration S the
run ends S seconds after a migration went back to state none. The RESULT line then also says
where the session ended and which migration states it went through:

  RESULT client=I opened=0|1 lost=0|1 error=NAME|none host=H port=P tls-port=T server-port=S states=a,b,c

Exit status: 0 when every client's main channel opened and stayed open the whole time,
2 when any client got a link/auth/connect error, 1 otherwise. No display is needed: only the
GLib part of spice-gtk is loaded (run with DISPLAY unset). Use the system python (/usr/bin/python3):
python3-gi is a Debian package.
"""
import argparse
import sys
import time

import gi

gi.require_version("SpiceClientGLib", "2.0")
from gi.repository import GLib, GObject, SpiceClientGLib as Spice  # noqa: E402

# PyGObject maps spice_session_connect()/spice_channel_connect() onto .connect(), which
# hides GObject's signal connect(); signals are therefore hooked through the base class.
hook = GObject.Object.connect

ERRORS = {
    Spice.ChannelEvent.ERROR_CONNECT: "error-connect",
    Spice.ChannelEvent.ERROR_TLS: "error-tls",
    Spice.ChannelEvent.ERROR_LINK: "error-link",
    Spice.ChannelEvent.ERROR_AUTH: "error-auth",
    Spice.ChannelEvent.ERROR_IO: "error-io",
}
START = time.monotonic()


def say(text):
    print("%8.3f %s" % (time.monotonic() - START, text), flush=True)


class Client:
    def __init__(self, index, args, on_error):
        self.index = index
        self.opened = False
        self.lost = False
        self.error = None
        self.on_error = on_error
        self.states = []
        self.args = args
        self.on_migrated = None
        self.on_moved = None
        self.start_port = str(args.port)
        self.session = Spice.Session()
        self.session.props.host = args.host
        if args.port is not None:
            self.session.props.port = str(args.port)
        if args.tls_port is not None:
            self.session.props.tls_port = str(args.tls_port)
        if args.ca_file is not None:
            self.session.props.ca_file = args.ca_file
        if args.cert_subject is not None:
            self.session.props.cert_subject = args.cert_subject
        self.main = None
        if args.password is not None:
            self.session.props.password = args.password
        hook(self.session, "channel-new", self.channel_new)
        hook(self.session, "notify::migration-state", self.migration_state)

    def migration_state(self, session, _pspec):
        state = getattr(session.props.migration_state, "value_nick", str(session.props.migration_state))
        self.states.append(state)
        say("EVENT client=%d migration-state %s port=%s" % (self.index, state, session.props.port))
        if state == "none" and self.on_migrated is not None:
            self.on_migrated()
        if state == "none" and self.states[-2:-1] != ["switching"]:
            # After a switch of host the new session's main channel has yet to open.
            self.check_moved()

    def check_moved(self):
        if self.on_moved is not None and self.session.props.port != self.start_port:
            callback, self.on_moved = self.on_moved, None
            callback()

    def migration_started(self, _main, target):
        say("EVENT client=%d migration-started host=%s port=%s tls-port=%s" % (self.index, target.props.host, target.props.port, target.props.tls_port))

    def start(self):
        return Spice.Session.connect(self.session)

    def channel_new(self, _session, channel):
        kind = channel.props.channel_type
        say("EVENT client=%d channel-new type=%d id=%d" % (self.index, kind, channel.props.channel_id))
        if isinstance(channel, Spice.MainChannel):
            self.main = channel
            hook(channel, "channel-event", self.main_event)
            hook(channel, "migration-started", self.migration_started)
        else:
            # A real client opens every channel the server lists (spicy, remote-viewer do).
            Spice.Channel.connect(channel)

    def server_port(self):
        """The server port the main channel's socket is connected to (0 when it has none)."""
        socket = self.main.props.socket if self.main is not None else None
        try:
            return socket.get_remote_address().props.port if socket is not None else 0
        except GLib.Error:
            return 0

    def main_event(self, _channel, event):
        name = getattr(event, "value_nick", str(event))
        say("EVENT client=%d main %s port=%s tls-port=%s server-port=%d" % (
            self.index, name, self.session.props.port, self.session.props.tls_port, self.server_port()))
        if event == Spice.ChannelEvent.OPENED:
            self.opened = True
            self.check_moved()
        elif event in ERRORS:
            self.error = ERRORS[event]
            self.on_error()
        elif event == Spice.ChannelEvent.CLOSED and self.opened and self.states[-1:] != ["switching"]:
            self.lost = True

    def stop(self):
        self.session.disconnect()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, help="plaintext port (session property port)")
    ap.add_argument("--tls-port", type=int, help="TLS port (session property tls-port)")
    ap.add_argument("--ca-file", help="CA certificates (PEM) the server's certificate must chain to")
    ap.add_argument("--cert-subject", help="subject the server's certificate must carry, instead of the host name")
    ap.add_argument("--password")
    ap.add_argument("--clients", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--stop-after-migration", type=float, default=None,
                    help="end the run this many seconds after a migration finished (state back to none)")
    ap.add_argument("--stop-after-move", type=float, default=None,
                    help="end the run this many seconds after the session is on another port")
    args = ap.parse_args()
    if args.port is None and args.tls_port is None:
        ap.error("give --port, --tls-port or both")

    loop = GLib.MainLoop()
    clients = []

    def on_error():
        # A refused client ends the run at once: nothing more will happen.
        GLib.idle_add(loop.quit)

    for i in range(args.clients):
        client = Client(i, args, on_error)
        if args.stop_after_migration is not None:
            client.on_migrated = lambda: GLib.timeout_add(int(args.stop_after_migration * 1000), loop.quit)
        if args.stop_after_move is not None:
            client.on_moved = lambda: GLib.timeout_add(int(args.stop_after_move * 1000), loop.quit)
        clients.append(client)
        if not client.start():
            client.error = "connect-failed"
    GLib.timeout_add(int(args.seconds * 1000), loop.quit)
    if not any(c.error for c in clients):
        loop.run()

    for c in clients:
        say("RESULT client=%d opened=%d lost=%d error=%s host=%s port=%s tls-port=%s server-port=%d states=%s" % (
            c.index, c.opened, c.lost, c.error or "none", c.session.props.host, c.session.props.port,
            c.session.props.tls_port, c.server_port(), ",".join(c.states) or "-"))
    if any(c.error for c in clients):
        status = 2
    else:
        status = 0 if all(c.opened and not c.lost for c in clients) else 1
    for c in clients:
        c.stop()
    ctx = GLib.MainContext.default()
    for _ in range(50):
        ctx.iteration(False)

    return status


if __name__ == "__main__":
    sys.exit(main())
