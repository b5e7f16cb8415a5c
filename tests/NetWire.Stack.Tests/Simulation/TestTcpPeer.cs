using NetWire.Core.Net;
using NetWire.Core.Packets;
using static NetWire.Stack.Tests.TestPackets;

namespace NetWire.Stack.Tests.Simulation;

/// <summary>
/// A deliberately small TCP endpoint playing the guest in the loss simulation: it sends a fixed
/// byte array and then a FIN, and receives into a bounded buffer that a seeded "application"
/// drains at its own pace (so its window closes and opens, and the gateway has to probe).
/// </summary>
/// <remarks>
/// Sender: segments of at most the gateway's MSS inside its window, go-back-N on a timeout
/// (200 ms, doubling to 1.6 s), one segment again on the third duplicate ACK, a one-byte probe
/// into a zero window. Receiver: keeps out-of-order segments inside its window, ACKs every
/// segment at once, sends a window update when the application has made room. Sequence numbers
/// are kept as offsets from the initial ones, so the arithmetic is plain and wrap-around is only
/// in the conversion. It checks every frame it is given: addresses, ports and checksums.
/// </remarks>
internal sealed class TestTcpPeer
{
    private const long BaseRtoMs = 200;
    private const long MaxRtoMs = 1600;

    private readonly byte[] _outgoing;
    private readonly int _capacity;
    private readonly int _offeredShift;
    private readonly uint _iss;
    private readonly List<byte[]> _output = [];
    private readonly SortedDictionary<long, byte[]> _outOfOrder = [];
    private readonly MemoryStream _received = new();

    private IpAddr _localIp;
    private ushort _localPort;
    private IpAddr _remoteIp;
    private ushort _remotePort;
    private PeerState _state;

    // Send side, offsets from ISS + 1 (the FIN is at _length).
    private long _length;
    private long _sndUna;
    private long _sndNxt;
    private long _sndMax;
    private long _sndWnd;
    private int _peerShift;
    private int _mss = 536;
    private bool _finSent;
    private int _duplicateAcks;
    private long _rtoDeadline;
    private long _rtoMs = BaseRtoMs;

    // Receive side, offsets from IRS + 1.
    private uint _irs;
    private long _rcvNxt;
    private long _finAt = -1;
    private int _unread;
    private int _shift;
    private long _advertisedRight;

    /// <summary>Creates the guest side. <paramref name="offeredShift"/> -1 offers no window scaling.</summary>
    public TestTcpPeer(byte[] outgoing, int receiveCapacity, int offeredShift, uint iss)
    {
        _outgoing = outgoing;
        _length = outgoing.Length;
        _capacity = receiveCapacity;
        _offeredShift = offeredShift;
        _iss = iss;
    }

    private enum PeerState
    {
        Closed,
        Listen,
        SynSent,
        SynReceived,
        Established,
    }

    /// <summary>Bytes delivered in order so far.</summary>
    public byte[] Received => _received.ToArray();

    public bool GotReset { get; private set; }

    public bool GotFin { get; private set; }

    /// <summary>Everything sent, including the FIN, is acknowledged.</summary>
    public bool AllAcked => _sndUna == _length + 1;

    public int Retransmits { get; private set; }

    public int ZeroWindowProbes { get; private set; }

    public int ZeroWindowsAdvertised { get; private set; }

    public string Describe() =>
        $"state {_state}, sent {_sndUna}/{_sndNxt}/{_sndMax} of {_length} (window {_sndWnd}, fin {_finSent}), " +
        $"received {_rcvNxt} (fin {GotFin}, unread {_unread}, out of order {_outOfOrder.Count}), reset {GotReset}";

    /// <summary>Frames to send, taken by the caller.</summary>
    public List<byte[]> TakeOutput()
    {
        var frames = new List<byte[]>(_output);
        _output.Clear();
        return frames;
    }

    /// <summary>Opens a connection from the guest: a SYN to <paramref name="remoteIp"/>:<paramref name="remotePort"/>.</summary>
    public void Connect(IpAddr localIp, ushort localPort, IpAddr remoteIp, ushort remotePort, long now)
    {
        (_localIp, _localPort, _remoteIp, _remotePort) = (localIp, localPort, remoteIp, remotePort);
        _state = PeerState.SynSent;
        SendSyn(TcpFlags.Syn);
        _rtoDeadline = now + _rtoMs;
    }

    /// <summary>Waits for a SYN to <paramref name="localPort"/> (a host forward into the guest).</summary>
    public void Listen(IpAddr localIp, ushort localPort)
    {
        (_localIp, _localPort) = (localIp, localPort);
        _state = PeerState.Listen;
    }

    /// <summary>While true, the FIN waits after the last byte (the guest keeps its side open).</summary>
    public bool HoldFin { get; set; }

    /// <summary>Everything sent so far is acknowledged.</summary>
    public bool Idle => _sndUna == _sndMax;

    /// <summary>Bytes of its stream sent so far (acknowledged or not).</summary>
    public long Sent => _sndMax;

    /// <summary>The stream ends where it is sent to: the FIN follows at once, whatever the window (the rest of the array is never sent).</summary>
    public void Finish()
    {
        Assert.True(_sndUna == _sndMax && !_finSent, "finish with everything sent acknowledged");
        _length = _sndMax;
        Finished = true;
    }

    /// <summary><see cref="Finish"/> was called.</summary>
    public bool Finished { get; private set; }

    /// <summary>The application reads up to <paramref name="count"/> of the bytes waiting; a window update follows when worth it.</summary>
    public void Read(int count)
    {
        _unread -= Math.Min(count, _unread);
        if (_state == PeerState.Established && AdvertisableWindow - (_advertisedRight - _rcvNxt) >= Math.Max(_capacity / 4, _mss))
        {
            SendAck();
        }
    }

    private int Window => _capacity - _unread;

    private long AdvertisableWindow => (long)Math.Min(Window >> _shift, 65535) << _shift;

    /// <summary>One frame from the gateway.</summary>
    public void OnFrame(byte[] frame, long now)
    {
        if (EthernetFrame.TryParse(frame, out var ethernet) && ethernet.EtherType == EtherType.Ipv6
            && Ipv6Packet.TryParse(ethernet.Payload, out var ip) && ip.NextHeader == IpProtocol.Icmpv6)
        {
            // The gateway's router advertisements, which a TCP endpoint has no use for.
            return;
        }

        var (source, destination, header, bytes) = ParseTcpAny(frame);
        Assert.Equal(_localIp, destination);
        var sourcePort = header.SourcePort;
        Assert.Equal(_localPort, header.DestinationPort);
        var seq = header.SequenceNumber;
        var ack = header.AckNumber;
        var flags = header.Flags;
        var window = header.Window;
        var data = bytes.AsSpan();

        if (_state == PeerState.Listen)
        {
            if ((flags & (TcpFlags.Syn | TcpFlags.Ack)) != TcpFlags.Syn)
            {
                return;
            }

            (_remoteIp, _remotePort) = (source, sourcePort);
            AcceptSynOptions(header.Options, seq);
            _sndWnd = window;
            _state = PeerState.SynReceived;
            SendSyn(TcpFlags.Syn | TcpFlags.Ack);
            _rtoDeadline = now + _rtoMs;
            return;
        }

        Assert.Equal(_remoteIp, source);
        Assert.Equal(_remotePort, sourcePort);
        if ((flags & TcpFlags.Rst) != 0)
        {
            GotReset = true;
            _state = PeerState.Closed;
            return;
        }

        switch (_state)
        {
            case PeerState.SynSent:
                if ((flags & (TcpFlags.Syn | TcpFlags.Ack)) != (TcpFlags.Syn | TcpFlags.Ack) || ack != _iss + 1)
                {
                    return;
                }

                AcceptSynOptions(header.Options, seq);
                _sndUna = _sndNxt = _sndMax = 0;
                _sndWnd = window;
                Established();
                SendAck();
                return;

            case PeerState.SynReceived:
                if ((flags & TcpFlags.Syn) != 0)
                {
                    SendSyn(TcpFlags.Syn | TcpFlags.Ack);
                    return;
                }

                if ((flags & TcpFlags.Ack) == 0 || ack != _iss + 1)
                {
                    return;
                }

                _sndUna = _sndNxt = _sndMax = 0;
                Established();
                break;

            case PeerState.Established:
                break;

            default:
                return;
        }

        if ((flags & TcpFlags.Syn) != 0)
        {
            // A duplicate SYN-ACK (ours was acknowledged already, or the ACK was lost).
            SendAck();
            return;
        }

        if ((flags & TcpFlags.Ack) != 0)
        {
            OnAck((int)(ack - (_iss + 1)), (long)window << _peerShift, data.Length == 0 && (flags & TcpFlags.Fin) == 0, now);
        }

        if (data.Length > 0 || (flags & TcpFlags.Fin) != 0)
        {
            OnData((int)(seq - (_irs + 1)), data, (flags & TcpFlags.Fin) != 0);
            SendAck();
        }
    }

    private void AcceptSynOptions(TcpOptions options, uint seq)
    {
        Assert.True(options.MaxSegmentSize >= 536, "MSS offered");
        _mss = options.MaxSegmentSize!.Value;
        _irs = seq;
        _rcvNxt = 0;
        var scaled = _offeredShift >= 0 && options.WindowScale.HasValue;
        _peerShift = scaled ? options.WindowScale!.Value : 0;
        _shift = scaled ? _offeredShift : 0;
    }

    private void Established()
    {
        _state = PeerState.Established;
        _rtoDeadline = 0;
        _rtoMs = BaseRtoMs;
    }

    private void OnAck(long ack, long window, bool pureAck, long now)
    {
        if (ack > _sndMax || ack < _sndUna)
        {
            return;
        }

        if (ack > _sndUna)
        {
            _sndUna = ack;
            _sndNxt = Math.Max(_sndNxt, _sndUna);
            _duplicateAcks = 0;
            _rtoMs = BaseRtoMs;
            _rtoDeadline = _sndUna == _sndMax ? 0 : now + _rtoMs;
        }
        else if (pureAck && _sndMax > _sndUna && window == _sndWnd && ++_duplicateAcks == 3)
        {
            Retransmits++;
            SendFrom(_sndUna, (int)Math.Min(_mss, Math.Max(0, _length - _sndUna)));
        }

        _sndWnd = window;
    }

    private void OnData(long offset, ReadOnlySpan<byte> data, bool fin)
    {
        if (fin)
        {
            _finAt = offset + data.Length;
        }

        var right = _rcvNxt + Window;
        var start = Math.Max(offset, _rcvNxt);
        var end = Math.Min(offset + data.Length, right);
        if (end > start)
        {
            var part = data.Slice((int)(start - offset), (int)(end - start)).ToArray();
            if (start == _rcvNxt)
            {
                Deliver(part);
            }
            else if (!_outOfOrder.TryGetValue(start, out var held) || held.Length < part.Length)
            {
                _outOfOrder[start] = part;
            }
        }

        while (_outOfOrder.Count > 0)
        {
            var (first, bytes) = _outOfOrder.First();
            if (first > _rcvNxt)
            {
                break;
            }

            _outOfOrder.Remove(first);
            var skip = _rcvNxt - first;
            if (skip < bytes.Length)
            {
                Deliver(bytes.AsSpan((int)skip).ToArray());
            }
        }

        if (!GotFin && _finAt >= 0 && _finAt == _rcvNxt)
        {
            GotFin = true;
            _rcvNxt++;
        }
    }

    private void Deliver(byte[] bytes)
    {
        Assert.False(GotFin, "no data after the FIN");
        _received.Write(bytes);
        _rcvNxt += bytes.Length;
        _unread += bytes.Length;
    }

    /// <summary>Sends what the gateway's window allows, then the FIN.</summary>
    public void TrySend(long now)
    {
        if (_state != PeerState.Established)
        {
            return;
        }

        while (true)
        {
            var inFlight = _sndNxt - _sndUna;
            var unsent = _length - _sndNxt;
            var usable = _sndWnd - inFlight;
            if (unsent > 0 && usable > 0)
            {
                var length = (int)Math.Min(Math.Min(unsent, usable), _mss);
                SendFrom(_sndNxt, length);
                _sndNxt += length;
                _sndMax = Math.Max(_sndMax, _sndNxt);
                ArmIfIdle(now);
                continue;
            }

            if (unsent == 0 && !_finSent && !HoldFin)
            {
                SendSegment(_sndNxt, TcpFlags.Fin | TcpFlags.Ack, []);
                _finSent = true;
                _sndNxt++;
                _sndMax = Math.Max(_sndMax, _sndNxt);
                ArmIfIdle(now);
            }

            if (unsent > 0 && _sndWnd == 0)
            {
                // The persist timer.
                ArmIfIdle(now);
            }

            return;
        }
    }

    private void ArmIfIdle(long now)
    {
        if (_rtoDeadline == 0)
        {
            _rtoDeadline = now + _rtoMs;
        }
    }

    /// <summary>Retransmission and persist timer.</summary>
    public void OnTimer(long now)
    {
        if (_rtoDeadline == 0 || now < _rtoDeadline || _state == PeerState.Closed)
        {
            return;
        }

        _rtoMs = Math.Min(_rtoMs * 2, MaxRtoMs);
        _rtoDeadline = now + _rtoMs;
        switch (_state)
        {
            case PeerState.SynSent:
                SendSyn(TcpFlags.Syn);
                return;
            case PeerState.SynReceived:
                SendSyn(TcpFlags.Syn | TcpFlags.Ack);
                return;
            case PeerState.Established:
                break;
            default:
                return;
        }

        if (_sndWnd == 0 && _sndNxt < _length && _sndMax == _sndUna)
        {
            // RFC 9293 3.8.6.1: probe the zero window with the next byte.
            ZeroWindowProbes++;
            SendFrom(_sndNxt, 1);
            _sndMax = Math.Max(_sndMax, _sndNxt + 1);
            return;
        }

        if (_sndMax == _sndUna)
        {
            _rtoDeadline = 0;
            return;
        }

        // Go back to SND.UNA; a FIN in flight is sent again with the data before it.
        Retransmits++;
        _sndNxt = _sndUna;
        if (_sndUna <= _length)
        {
            _finSent = false;
        }

        var length = (int)Math.Min(_mss, _length - _sndNxt);
        if (length > 0)
        {
            SendFrom(_sndNxt, length);
            _sndNxt += length;
            _sndMax = Math.Max(_sndMax, _sndNxt);
        }

        TrySend(now);
    }

    private void SendFrom(long offset, int length)
    {
        if (length > 0)
        {
            SendSegment(offset, TcpFlags.Ack | TcpFlags.Psh, _outgoing.AsSpan((int)offset, length));
        }
    }

    private void SendAck() => SendSegment(_sndNxt, TcpFlags.Ack, []);

    private void SendSegment(long offset, TcpFlags flags, ReadOnlySpan<byte> data)
    {
        var window = Math.Min(Window >> _shift, 65535);
        _advertisedRight = _rcvNxt + ((long)window << _shift);
        if (window == 0)
        {
            ZeroWindowsAdvertised++;
        }

        _output.Add(BuildTcpAny(_localIp, _localPort, _remoteIp, _remotePort, _iss + 1 + (uint)offset, _irs + 1 + (uint)_rcvNxt, flags, (ushort)window, data));
    }

    private void SendSyn(TcpFlags flags)
    {
        var options = new TcpOptions { MaxSegmentSize = 1460, WindowScale = _offeredShift >= 0 ? (byte)_offeredShift : null };
        var ack = flags == TcpFlags.Syn ? 0 : _irs + 1;
        _output.Add(BuildTcpAny(_localIp, _localPort, _remoteIp, _remotePort, _iss, ack, flags, (ushort)Math.Min(_capacity, 65535), [], options));
    }
}
