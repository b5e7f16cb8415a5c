# Helpers shared by /init, /etc/udhcpc.script and test scripts.
# A test script uses them with:  . /lib/nw.sh
#
#   mark WORDS...         print "NW:WORDS..." on the serial console
#   nw_arg NAME [DEF]     value of NAME=VALUE on the kernel command line, else DEF
#   nw_uptime             seconds since the guest kernel started, e.g. 2.31
#   nw_nc_recv PORT       accept one TCP connection on PORT, copy it to stdout
#   nw_wait_listen PORT [TENTHS]   wait until a TCP socket listens on PORT (default 10 s)
#   nw_wait_addr6 DEV [SECONDS]     wait for a global IPv6 address on DEV, past duplicate
#                                   address detection; print it (ADDR/PFX)

# Markers go straight to the console so that they reach the host even when
# the caller has redirected its stdout (for example inside $(...)).
mark() {
    if [ -w /dev/console ]; then
        echo "NW:$*" > /dev/console
    else
        echo "NW:$*"
    fi
}

nw_arg() {
    for _nw_a in $(cat /proc/cmdline); do
        case "$_nw_a" in
            "$1"=*)
                echo "${_nw_a#*=}"
                return 0
                ;;
        esac
    done
    [ $# -ge 2 ] && echo "$2"
    return 0
}

nw_uptime() {
    cut -d' ' -f1 /proc/uptime
}

# busybox nc half-closes the connection as soon as its stdin reaches EOF, and
# a busybox nc sender quits (exit 0) on that half-close, before it has sent
# everything. A receiver therefore needs a stdin that never ends: a FIFO
# opened read-write gives one without blocking the open.
nw_nc_recv() {
    _nw_fifo=/tmp/.nw-hold.$$.$1
    rm -f "$_nw_fifo"
    mkfifo "$_nw_fifo" || return 1
    nc -l -p "$1" <> "$_nw_fifo"
    _nw_rc=$?
    rm -f "$_nw_fifo"
    return $_nw_rc
}

# A marker printed just before `nc -l` starts can reach the host before the socket
# listens, and an early connect is refused. Start the receiver in the background,
# wait for this, then mark.
nw_wait_listen() {
    _nw_port=$(printf '%04X' "$1")
    _nw_left=${2:-100}
    while [ "$_nw_left" -gt 0 ]; do
        if awk -v p=":$_nw_port" '$4 == "0A" && substr($2, length($2) - 4) == p { found = 1 } END { exit !found }' \
            /proc/net/tcp /proc/net/tcp6 2>/dev/null; then
            return 0
        fi
        usleep 100000
        _nw_left=$((_nw_left - 1))
    done
    return 1
}

# A SLAAC address appears once a router advertisement arrives, and stays
# "tentative" (unusable) until duplicate address detection has passed (1 s).
nw_wait_addr6() {
    _nw_left=$(( ${2:-15} * 10 ))
    while [ "$_nw_left" -gt 0 ]; do
        _nw_a=$(ip -6 -o addr show dev "$1" scope global 2>/dev/null | awk '!/tentative/ { print $4; exit }')
        if [ -n "$_nw_a" ]; then
            echo "$_nw_a"
            return 0
        fi
        usleep 100000
        _nw_left=$((_nw_left - 1))
    done
    return 1
}
