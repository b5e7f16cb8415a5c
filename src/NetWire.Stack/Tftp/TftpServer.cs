using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using Microsoft.Win32.SafeHandles;
using NetWire.Core.Packets;

namespace NetWire.Stack.Tftp;

/// <summary>
/// A read-only TFTP server (RFC 1350) on the gateway address, port 69, serving
/// <see cref="GatewayOptions.TftpRoot"/>, with option negotiation (RFC 2347): blksize (RFC 2348),
/// tsize and timeout (RFC 2349) and windowsize (RFC 7440).
/// </summary>
/// <remarks>
/// How this works: a read request (RRQ) to port 69 opens the file (<see cref="TftpDirectory"/>
/// keeps names inside the folder) and starts a transfer from a port of its own (the server's
/// transfer id) on the gateway address. With options, the transfer first sends an OACK holding
/// the ones it took and waits for ACK 0; then it sends a window of DATA blocks (one block
/// without windowsize) and waits for the ACK of a block in it, sending the next window from the
/// block after the acknowledged one. Block numbers roll over from 65535 to 0. A window not
/// acknowledged within the timeout (1 s, or the client's <c>timeout</c>) is sent again, five
/// times at most; then the transfer is given up. Blocks are read from the file straight into
/// the frame, so a transfer allocates nothing per block. Everything runs under the gateway lock
/// (requests, ACKs, the timer); the file reads are local and small.
///
/// Refused, with an ERROR packet and counted as <see cref="StackDrop.TftpRefused"/>: write
/// requests, requests over 512 bytes or that do not parse, modes other than octet, a bad option
/// value, names outside the folder, and packets for no transfer (error 5). Unknown options are
/// left out of the OACK, as RFC 2347 says. An ERROR from the client ends its transfer; an ERROR
/// is never answered.
/// </remarks>
internal sealed class TftpServer
{
    /// <summary>The well-known port.</summary>
    public const ushort Port = 69;

    /// <summary>RFC 2347: a request, options included, fits in 512 bytes.</summary>
    public const int MaxRequestBytes = 512;

    /// <summary>RFC 1350's block size, without the blksize option.</summary>
    public const int DefaultBlockSize = 512;

    /// <summary>RFC 2348's largest block size.</summary>
    public const int MaxBlockSize = 65464;

    /// <summary>The largest window taken; a larger windowsize is answered with this.</summary>
    public const int MaxWindow = 64;

    private const ushort OpRrq = 1;
    private const ushort OpWrq = 2;
    private const ushort OpData = 3;
    private const ushort OpAck = 4;
    private const ushort OpError = 5;
    private const ushort OpOack = 6;
    private const int HeaderBytes = 4;
    private const int MaxRetries = 5;
    private const long DefaultTimeoutMs = 1000;
    private const ushort FirstTid = 50000;
    private const ushort LastTid = 59999;

    private readonly Gateway _gateway;
    private readonly TftpDirectory _directory;
    private readonly Dictionary<(uint GuestIp, ushort GuestPort, ushort ServerPort), Transfer> _transfers = [];
    private readonly List<Transfer> _scan = [];
    private ushort _nextTid = FirstTid;

    public TftpServer(Gateway gateway, string root)
    {
        _gateway = gateway;
        _directory = new TftpDirectory(root);
    }

    /// <summary>Transfers running now.</summary>
    public int Count => _transfers.Count;

    /// <summary>True when a datagram from the guest to the gateway's <paramref name="serverPort"/> is TFTP's.</summary>
    public bool Owns(uint guestIp, ushort guestPort, ushort serverPort) =>
        serverPort == Port || _transfers.ContainsKey((guestIp, guestPort, serverPort));

    /// <summary>A datagram for port 69 or a transfer's port. Caller holds the gateway lock.</summary>
    public void OnDatagram(uint guestIp, ushort guestPort, ushort serverPort, ReadOnlySpan<byte> payload)
    {
        if (serverPort == Port)
        {
            OnRequest(guestIp, guestPort, payload);
            return;
        }

        var transfer = _transfers[(guestIp, guestPort, serverPort)];
        var opcode = payload.Length >= 2 ? BinaryPrimitives.ReadUInt16BigEndian(payload) : (ushort)0;
        switch (opcode)
        {
            case OpAck when payload.Length >= 4:
                OnAck(transfer, BinaryPrimitives.ReadUInt16BigEndian(payload[2..]));
                break;
            case OpError:
                End(transfer);
                break;
            default:
                Refuse(guestIp, guestPort, serverPort, TftpErrorCode.IllegalOperation, "expected an ACK");
                End(transfer);
                break;
        }
    }

    /// <summary>Retransmits what timed out, gives up transfers that retried too often. Caller holds the gateway lock.</summary>
    public void OnTimer(long nowMs)
    {
        _scan.AddRange(_transfers.Values);
        foreach (var transfer in _scan)
        {
            if (nowMs < transfer.DeadlineMs)
            {
                continue;
            }

            if (transfer.Stalled)
            {
                // The guest end was full: carry on where the window stopped.
                transfer.Stalled = false;
                SendWindow(transfer, transfer.Sent + 1);
            }
            else if (++transfer.Retries > MaxRetries)
            {
                End(transfer);
            }
            else if (transfer.Oack is { } oack)
            {
                Send(transfer.GuestIp, transfer.GuestPort, transfer.ServerPort, oack);
                transfer.DeadlineMs = nowMs + transfer.TimeoutMs;
            }
            else
            {
                SendWindow(transfer, transfer.Acked + 1);
            }
        }

        _scan.Clear();
    }

    /// <summary>Ends every transfer. Caller holds the gateway lock.</summary>
    public void CloseAll()
    {
        foreach (var transfer in _transfers.Values)
        {
            transfer.File.Dispose();
        }

        _transfers.Clear();
    }

    private void OnRequest(uint guestIp, ushort guestPort, ReadOnlySpan<byte> payload)
    {
        if (payload.Length < 2)
        {
            Refuse(guestIp, guestPort, Port, TftpErrorCode.IllegalOperation, "malformed request");
            return;
        }

        var opcode = BinaryPrimitives.ReadUInt16BigEndian(payload);
        switch (opcode)
        {
            case OpRrq:
                break;
            case OpWrq:
                Refuse(guestIp, guestPort, Port, TftpErrorCode.AccessViolation, "read-only server: write requests are refused");
                return;
            case OpError:
                _gateway.Counters.Drop(StackDrop.TftpRefused);
                return;
            default:
                Refuse(guestIp, guestPort, Port, TftpErrorCode.IllegalOperation, "not a request");
                return;
        }

        if (payload.Length > MaxRequestBytes)
        {
            Refuse(guestIp, guestPort, Port, TftpErrorCode.IllegalOperation, "request longer than 512 bytes");
            return;
        }

        foreach (var existing in _transfers.Values)
        {
            if (existing.GuestIp == guestIp && existing.GuestPort == guestPort)
            {
                // RFC 1350 4: a retransmitted request; the transfer it started answers it.
                return;
            }
        }

        if (!TryParseRequest(payload[2..], out var request, out var problem))
        {
            Refuse(guestIp, guestPort, Port, problem.Code, problem.Message);
            return;
        }

        if (_transfers.Count >= _gateway.Options.MaxTftpTransfers)
        {
            Refuse(guestIp, guestPort, Port, TftpErrorCode.NotDefined, "too many transfers");
            return;
        }

        if (_directory.TryOpen(request.Name, out var file, out var length) is { } error)
        {
            Refuse(guestIp, guestPort, Port, error, error == TftpErrorCode.FileNotFound ? "file not found" : "access violation");
            return;
        }

        var blockSize = DefaultBlockSize;
        var options = new StringBuilder();
        var ceiling = _gateway.Options.Mtu - Ipv4Packet.MinHeaderLength - UdpPacket.HeaderLength - HeaderBytes;
        if (request.BlockSize is { } wanted)
        {
            // RFC 2348: the server may answer with a smaller size; the gateway never fragments.
            blockSize = Math.Min(wanted, ceiling);
            options.Append("blksize\0").Append(blockSize.ToString(CultureInfo.InvariantCulture)).Append('\0');
        }

        if (request.WantsSize)
        {
            options.Append("tsize\0").Append(length.ToString(CultureInfo.InvariantCulture)).Append('\0');
        }

        if (request.TimeoutSeconds is { } timeout)
        {
            options.Append("timeout\0").Append(timeout.ToString(CultureInfo.InvariantCulture)).Append('\0');
        }

        var window = 1;
        if (request.Window is { } requestedWindow)
        {
            window = Math.Min(requestedWindow, MaxWindow);
            options.Append("windowsize\0").Append(window.ToString(CultureInfo.InvariantCulture)).Append('\0');
        }

        var serverPort = NextTid(guestIp, guestPort);
        var transfer = new Transfer(guestIp, guestPort, serverPort, file!, length, blockSize, window,
            (request.TimeoutSeconds ?? (DefaultTimeoutMs / 1000)) * 1000L);
        _transfers.Add((guestIp, guestPort, serverPort), transfer);
        _gateway.Counters.TftpTransfer();
        if (options.Length > 0)
        {
            var oack = new byte[2 + Encoding.ASCII.GetByteCount(options.ToString())];
            BinaryPrimitives.WriteUInt16BigEndian(oack, OpOack);
            Encoding.ASCII.GetBytes(options.ToString(), oack.AsSpan(2));
            transfer.Oack = oack;
            Send(guestIp, guestPort, serverPort, oack);
            transfer.DeadlineMs = _gateway.NowMs + transfer.TimeoutMs;
            return;
        }

        SendWindow(transfer, 1);
    }

    private void OnAck(Transfer transfer, ushort block)
    {
        if (transfer.Oack is not null)
        {
            if (block == 0)
            {
                transfer.Oack = null;
                transfer.Retries = 0;
                SendWindow(transfer, 1);
            }

            return;
        }

        // The block of the outstanding window this ACK names; an older one is a duplicate, and
        // answering duplicates would double the traffic (RFC 1350's Sorcerer's Apprentice).
        for (var k = transfer.Acked + 1; k <= transfer.Sent; k++)
        {
            if ((ushort)k != block)
            {
                continue;
            }

            transfer.Acked = k;
            transfer.Retries = 0;
            if (k >= transfer.LastBlock)
            {
                End(transfer);
                return;
            }

            SendWindow(transfer, k + 1);
            return;
        }
    }

    /// <summary>Sends blocks from <paramref name="first"/> to the end of the window (or of the file).</summary>
    private void SendWindow(Transfer transfer, long first)
    {
        var last = Math.Min(transfer.Acked + transfer.Window, transfer.LastBlock);
        transfer.Sent = first - 1;
        for (var k = first; k <= last; k++)
        {
            if (!_gateway.CanEmit)
            {
                transfer.Stalled = true;
                transfer.DeadlineMs = _gateway.NowMs + 10;
                return;
            }

            if (!SendBlock(transfer, k))
            {
                End(transfer);
                return;
            }

            transfer.Sent = k;
        }

        transfer.DeadlineMs = _gateway.NowMs + transfer.TimeoutMs;
    }

    private bool SendBlock(Transfer transfer, long block)
    {
        var offset = (block - 1) * transfer.BlockSize;
        var size = (int)Math.Clamp(transfer.Length - offset, 0, transfer.BlockSize);
        var udpLength = UdpPacket.HeaderLength + HeaderBytes + size;
        var frame = _gateway.RentIpv4(udpLength);
        var udp = frame.Span.Slice(Gateway.Ipv4PayloadOffset, udpLength);
        var tftp = udp[UdpPacket.HeaderLength..];
        BinaryPrimitives.WriteUInt16BigEndian(tftp, OpData);
        BinaryPrimitives.WriteUInt16BigEndian(tftp[2..], (ushort)block);
        try
        {
            var read = size == 0 ? 0 : RandomAccess.Read(transfer.File, tftp.Slice(HeaderBytes, size), offset);
            if (read < size)
            {
                // The file shrank under the transfer: what was read ends it.
                transfer.LastBlock = block;
                udpLength = UdpPacket.HeaderLength + HeaderBytes + read;
                frame.Truncate(Gateway.Ipv4PayloadOffset + udpLength);
                udp = udp[..udpLength];
            }
        }
        catch (IOException)
        {
            frame.Dispose();
            Refuse(transfer.GuestIp, transfer.GuestPort, transfer.ServerPort, TftpErrorCode.NotDefined, "read error");
            return false;
        }

        new UdpHeader(transfer.ServerPort, transfer.GuestPort).WriteTo(udp, PseudoHeader.Ipv4(_gateway.GatewayIp, transfer.GuestIp, IpProtocol.Udp));
        _gateway.EmitIpv4(frame, IpProtocol.Udp, _gateway.GatewayIp, transfer.GuestIp);
        return true;
    }

    private void End(Transfer transfer)
    {
        _transfers.Remove((transfer.GuestIp, transfer.GuestPort, transfer.ServerPort));
        transfer.File.Dispose();
    }

    /// <summary>Sends an ERROR (never in answer to one) and counts the refusal.</summary>
    private void Refuse(uint guestIp, ushort guestPort, ushort serverPort, TftpErrorCode code, string message)
    {
        _gateway.Counters.Drop(StackDrop.TftpRefused);
        var packet = new byte[HeaderBytes + message.Length + 1];
        BinaryPrimitives.WriteUInt16BigEndian(packet, OpError);
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(2), (ushort)code);
        Encoding.ASCII.GetBytes(message, packet.AsSpan(HeaderBytes));
        Send(guestIp, guestPort, serverPort, packet);
    }

    private void Send(uint guestIp, ushort guestPort, ushort serverPort, ReadOnlySpan<byte> payload) =>
        Udp.UdpNat.EmitToGuest(_gateway, new Nat.FlowKey(Core.Net.IpAddr.FromIpv4(guestIp), guestPort, Core.Net.IpAddr.FromIpv4(_gateway.GatewayIp), serverPort), payload);

    private ushort NextTid(uint guestIp, ushort guestPort)
    {
        while (true)
        {
            var port = _nextTid;
            _nextTid = _nextTid == LastTid ? FirstTid : (ushort)(_nextTid + 1);
            if (!_transfers.ContainsKey((guestIp, guestPort, port)))
            {
                return port;
            }
        }
    }

    /// <summary>
    /// Reads filename, mode and options (RFC 2347: NUL-terminated strings in pairs). False with
    /// the error to send for a missing terminator, an odd field count, a mode other than octet,
    /// or a value blksize, timeout, tsize or windowsize cannot take.
    /// </summary>
    private static bool TryParseRequest(ReadOnlySpan<byte> fields, out Request request, out (TftpErrorCode Code, string Message) problem)
    {
        request = default;
        problem = (TftpErrorCode.IllegalOperation, "malformed request");
        if (fields.IsEmpty || fields[^1] != 0)
        {
            return false;
        }

        var strings = new List<string>();
        foreach (var range in fields[..^1].Split((byte)0))
        {
            var field = fields[range];
            foreach (var b in field)
            {
                if (b is < 0x20 or > 0x7e)
                {
                    return false;
                }
            }

            strings.Add(Encoding.ASCII.GetString(field));
        }

        if (strings.Count < 2 || strings.Count % 2 != 0 || strings[0].Length == 0)
        {
            return false;
        }

        if (!strings[1].Equals("octet", StringComparison.OrdinalIgnoreCase))
        {
            problem = (TftpErrorCode.IllegalOperation, "only octet mode is served");
            return false;
        }

        request = new Request(strings[0]);
        for (var i = 2; i < strings.Count; i += 2)
        {
            var name = strings[i].ToLowerInvariant();
            var text = strings[i + 1];
            var isNumber = long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value);
            problem = (TftpErrorCode.OptionRefused, $"bad value for {name}");
            switch (name)
            {
                case "blksize":
                    if (!isNumber || value is < 8 or > MaxBlockSize)
                    {
                        return false;
                    }

                    request = request with { BlockSize = (int)value };
                    break;
                case "tsize":
                    if (!isNumber)
                    {
                        return false;
                    }

                    request = request with { WantsSize = true };
                    break;
                case "timeout":
                    if (!isNumber || value is < 1 or > 255)
                    {
                        return false;
                    }

                    request = request with { TimeoutSeconds = (int)value };
                    break;
                case "windowsize":
                    if (!isNumber || value is < 1 or > 65535)
                    {
                        return false;
                    }

                    request = request with { Window = (int)value };
                    break;
            }
        }

        return true;
    }

    private readonly record struct Request(string Name)
    {
        public int? BlockSize { get; init; }

        public bool WantsSize { get; init; }

        public int? TimeoutSeconds { get; init; }

        public int? Window { get; init; }
    }

    /// <summary>One read transfer. Touched only under the gateway lock.</summary>
    private sealed class Transfer(uint guestIp, ushort guestPort, ushort serverPort, SafeFileHandle file, long length, int blockSize, int window, long timeoutMs)
    {
        public uint GuestIp { get; } = guestIp;

        public ushort GuestPort { get; } = guestPort;

        public ushort ServerPort { get; } = serverPort;

        public SafeFileHandle File { get; } = file;

        public long Length { get; } = length;

        public int BlockSize { get; } = blockSize;

        public int Window { get; } = window;

        public long TimeoutMs { get; } = timeoutMs;

        /// <summary>The last block: the first shorter than the block size (empty when the length is a multiple of it).</summary>
        public long LastBlock { get; set; } = (length / blockSize) + 1;

        /// <summary>Blocks acknowledged (64-bit: the wire's 16-bit numbers roll over).</summary>
        public long Acked { get; set; }

        /// <summary>The highest block sent in the current window.</summary>
        public long Sent { get; set; }

        /// <summary>The OACK until ACK 0 arrives (resent on timeout); null once data flows.</summary>
        public byte[]? Oack { get; set; }

        public int Retries { get; set; }

        public long DeadlineMs { get; set; }

        /// <summary>The window stopped because the guest end was full; the timer carries on soon.</summary>
        public bool Stalled { get; set; }
    }
}
