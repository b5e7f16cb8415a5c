using System.Net;
using NetWire.Core.Net;
using NetWire.Core.State;
using NetWire.Stack.Nat;
using NetWire.Stack.Tcp;

namespace NetWire.Stack.Migration;

/// <summary>Where a TCP connection's far side is.</summary>
internal enum TcpFlowOrigin : byte
{
    /// <summary>The guest opened it: a host socket the gateway connected.</summary>
    Nat = 0,

    /// <summary>A host forward: a socket the gateway accepted.</summary>
    Forward = 1,

    /// <summary>A virtual service (the tunnel's): a socket pair the tunnel relays.</summary>
    Virtual = 2,
}

/// <summary>
/// One gateway TCP connection as the migration carries it: the guest-side endpoint (sequence
/// numbers, windows, timers, both buffers) and, for a connection with a host socket, that
/// socket's dump. Sequence numbers are as on the wire; buffers hold committed bytes only
/// (out-of-order bytes from the guest are not carried: the guest sends them again).
/// </summary>
internal sealed record TcpFlowState
{
    /// <summary>Most bytes one endpoint buffer may hold (the gateway's largest buffer).</summary>
    public const int MaxBuffer = 1 << 20;

    private const long MaxRtoMs = 60_000;

    public required FlowKey Key { get; init; }

    public TcpFlowOrigin Origin { get; init; }

    /// <summary>Both FINs were acknowledged: the connection only answers retransmitted FINs.</summary>
    public bool TimeWait { get; init; }

    public uint Iss { get; init; }

    public uint SndUna { get; init; }

    public uint SndNxt { get; init; }

    public uint SndMax { get; init; }

    public long SndWnd { get; init; }

    /// <summary>The guest's window shift; -1 when it offered no scaling.</summary>
    public int SendShift { get; init; }

    /// <summary>The shift the gateway announced.</summary>
    public int ReceiveShift { get; init; }

    public int Mss { get; init; }

    public uint RcvNxt { get; init; }

    public bool GuestFin { get; init; }

    public bool HostEof { get; init; }

    public bool FinSent { get; init; }

    public bool FinAcked { get; init; }

    /// <summary>shutdown(SHUT_WR) was called on the host socket.</summary>
    public bool HostShutdown { get; init; }

    public long RtoMs { get; init; }

    public long SrttMs { get; init; }

    public long RttvarMs { get; init; }

    public long TimeWaitLeftMs { get; init; }

    /// <summary>Bytes towards the guest: SND.UNA onwards, acknowledged by nobody yet.</summary>
    public byte[] ToGuest { get; init; } = [];

    /// <summary>Bytes from the guest not yet written to the far side.</summary>
    public byte[] ToHost { get; init; } = [];

    /// <summary>The host socket, for <see cref="TcpFlowOrigin.Nat"/> and <see cref="TcpFlowOrigin.Forward"/> connections whose host side is still open.</summary>
    public TcpRepairState? Host { get; init; }

    /// <summary>
    /// What is left of the host's stream when its socket was closed both ways (our FIN acknowledged,
    /// the peer's received) with bytes not yet read: no socket moves, these bytes and then the
    /// host's EOF go to the guest. Null otherwise. Flag 32 says it follows <see cref="Host"/>.
    /// </summary>
    public byte[]? HostTail { get; init; }

    /// <summary>Bytes this flow adds to a stream, about.</summary>
    public long Size => 128 + ToGuest.Length + ToHost.Length + (Host is null ? 0 : 128 + Host.SendQueue.Length + Host.RecvQueue.Length) + (HostTail?.Length ?? 0);

    public void Write(StateSectionWriter writer)
    {
        FlowCodec.WriteKey(writer, Key);
        writer.WriteByte((byte)Origin);
        writer.WriteBool(TimeWait);
        writer.WriteUInt32(Iss);
        writer.WriteUInt32(SndUna);
        writer.WriteUInt32(SndNxt);
        writer.WriteUInt32(SndMax);
        writer.WriteInt64(SndWnd);
        writer.WriteByte((byte)(SendShift + 1));
        writer.WriteByte((byte)ReceiveShift);
        writer.WriteUInt16((ushort)Mss);
        writer.WriteUInt32(RcvNxt);
        writer.WriteByte((byte)((GuestFin ? 1 : 0) | (HostEof ? 2 : 0) | (FinSent ? 4 : 0) | (FinAcked ? 8 : 0) | (HostShutdown ? 16 : 0) | (HostTail is null ? 0 : 32)));
        writer.WriteInt64(RtoMs);
        writer.WriteInt64(SrttMs);
        writer.WriteInt64(RttvarMs);
        writer.WriteInt64(TimeWaitLeftMs);
        writer.WriteBytes(ToGuest);
        writer.WriteBytes(ToHost);
        writer.WriteBool(Host is not null);
        Host?.Write(writer);
        if (HostTail is not null)
        {
            writer.WriteBytes(HostTail);
        }
    }

    /// <summary>Reads one flow and refuses anything no gateway could have written.</summary>
    public static TcpFlowState Read(StateSectionReader reader)
    {
        var key = FlowCodec.ReadKey(reader);
        var origin = reader.ReadByte();
        if (origin > (byte)TcpFlowOrigin.Virtual)
        {
            throw reader.Error($"flow {key}: unknown origin {origin}");
        }

        var state = new TcpFlowState
        {
            Key = key,
            Origin = (TcpFlowOrigin)origin,
            TimeWait = reader.ReadBool(),
            Iss = reader.ReadUInt32(),
            SndUna = reader.ReadUInt32(),
            SndNxt = reader.ReadUInt32(),
            SndMax = reader.ReadUInt32(),
            SndWnd = reader.ReadInt64(),
            SendShift = reader.ReadByte() - 1,
            ReceiveShift = reader.ReadByte(),
            Mss = reader.ReadUInt16(),
            RcvNxt = reader.ReadUInt32(),
        };
        var flags = reader.ReadByte();
        if ((flags & ~63) != 0)
        {
            throw reader.Error($"flow {key}: unknown flags 0x{flags:X2}");
        }

        state = state with
        {
            GuestFin = (flags & 1) != 0,
            HostEof = (flags & 2) != 0,
            FinSent = (flags & 4) != 0,
            FinAcked = (flags & 8) != 0,
            HostShutdown = (flags & 16) != 0,
            RtoMs = reader.ReadInt64(),
            SrttMs = reader.ReadInt64(),
            RttvarMs = reader.ReadInt64(),
            TimeWaitLeftMs = reader.ReadInt64(),
            ToGuest = reader.ReadBytes(MaxBuffer),
            ToHost = reader.ReadBytes(MaxBuffer),
        };
        state = state with { Host = reader.ReadBool() ? TcpRepairState.Read(reader) : null };
        if ((flags & 32) != 0)
        {
            state = state with { HostTail = reader.ReadBytes(TcpRepairState.MaxQueue) };
        }

        state.Check(reader);
        return state;
    }

    private void Check(StateSectionReader reader)
    {
        // What the endpoint keeps true (TcpConnection): UNA <= NXT <= MAX in sequence space, and
        // what is in flight is in the buffer, plus one for a FIN.
        var inFlight = SndMax - SndUna;
        var fin = FinSent || FinAcked ? 1u : 0u;
        if (SndNxt - SndUna > inFlight || inFlight > (uint)ToGuest.Length + fin)
        {
            throw reader.Error($"flow {Key}: impossible sequence numbers (una {SndUna}, nxt {SndNxt}, max {SndMax}, {ToGuest.Length} bytes buffered)");
        }

        if (SendShift is < -1 or > 14 || ReceiveShift is < 0 or > 14 || Mss is < 64 or > 65495 || SndWnd is < 0 or > 1L << 30)
        {
            throw reader.Error($"flow {Key}: impossible window or segment size (shifts {SendShift}/{ReceiveShift}, mss {Mss}, window {SndWnd})");
        }

        if (RtoMs is < 0 or > MaxRtoMs || SrttMs is < 0 or > MaxRtoMs || RttvarMs is < 0 or > MaxRtoMs || TimeWaitLeftMs is < 0 or > 3_600_000)
        {
            throw reader.Error($"flow {Key}: impossible timers");
        }

        if ((FinAcked && !FinSent) || (FinSent && !HostEof) || (HostShutdown && !GuestFin) || (TimeWait && !(GuestFin && FinAcked)))
        {
            throw reader.Error($"flow {Key}: contradictory FIN state");
        }

        // A connection in TIME-WAIT keeps its host socket only while the guest's bytes are not all written.
        if (Host is not null && (Origin == TcpFlowOrigin.Virtual || (TimeWait && HostShutdown)))
        {
            throw reader.Error($"flow {Key}: a host socket for a {(TimeWait ? "TIME-WAIT" : "tunnel")} connection");
        }

        // A host stream carried as bytes comes from a socket closed both ways: our FIN went (the
        // guest's), the host's EOF is still to be read, and no socket moves with it.
        if (HostTail is not null && (Host is not null || Origin == TcpFlowOrigin.Virtual || !HostShutdown || HostEof))
        {
            throw reader.Error($"flow {Key}: a host stream tail beside a host socket, for a tunnel connection, or with the host's EOF read or the host not shut down");
        }

        if (Key.GuestPort == 0 || Key.RemotePort == 0)
        {
            throw reader.Error($"flow {Key}: port 0");
        }
    }
}

/// <summary>A connection the migration ends: the target sends the guest a RST with these numbers.</summary>
internal sealed record ResetFlowState(FlowKey Key, uint Seq, uint Ack, FlowResetReason Reason)
{
    public void Write(StateSectionWriter writer)
    {
        FlowCodec.WriteKey(writer, Key);
        writer.WriteUInt32(Seq);
        writer.WriteUInt32(Ack);
        writer.WriteByte((byte)Reason);
    }

    public static ResetFlowState Read(StateSectionReader reader)
    {
        var key = FlowCodec.ReadKey(reader);
        var seq = reader.ReadUInt32();
        var ack = reader.ReadUInt32();
        var reason = reader.ReadByte();
        if (!Enum.IsDefined((FlowResetReason)reason))
        {
            throw reader.Error($"flow {key}: unknown reset reason {reason}");
        }

        return new ResetFlowState(key, seq, ack, (FlowResetReason)reason);
    }
}

/// <summary>
/// A UDP flow or a relayed ping conversation: the guest's side (the key) and the host socket's
/// addresses; the target binds the same local port when it is free.
/// </summary>
internal sealed record DatagramFlowState(FlowKey Key, bool Icmp, IPEndPoint Local, IPEndPoint Remote, bool Dns, long IdleMs)
{
    public void Write(StateSectionWriter writer)
    {
        FlowCodec.WriteKey(writer, Key);
        writer.WriteBool(Icmp);
        FlowCodec.WriteEndPoint(writer, Local);
        FlowCodec.WriteEndPoint(writer, Remote);
        writer.WriteBool(Dns);
        writer.WriteInt64(IdleMs);
    }

    public static DatagramFlowState Read(StateSectionReader reader)
    {
        var key = FlowCodec.ReadKey(reader);
        var icmp = reader.ReadBool();
        var local = FlowCodec.ReadEndPoint(reader);
        var remote = FlowCodec.ReadEndPoint(reader);
        var dns = reader.ReadBool();
        var idle = reader.ReadInt64();
        if (idle is < 0 or > 3_600_000 || local.AddressFamily != remote.AddressFamily || (!icmp && (key.RemotePort == 0 || remote.Port == 0)))
        {
            throw reader.Error($"datagram flow {key}: impossible addresses or idle time");
        }

        return new DatagramFlowState(key, icmp, local, remote, dns, idle);
    }
}

/// <summary>The field encodings the flow states share.</summary>
internal static class FlowCodec
{
    public static void WriteKey(StateSectionWriter writer, FlowKey key)
    {
        WriteAddress(writer, key.GuestIp);
        writer.WriteUInt16(key.GuestPort);
        WriteAddress(writer, key.RemoteIp);
        writer.WriteUInt16(key.RemotePort);
    }

    public static FlowKey ReadKey(StateSectionReader reader)
    {
        var guest = ReadAddress(reader);
        var guestPort = reader.ReadUInt16();
        var remote = ReadAddress(reader);
        var remotePort = reader.ReadUInt16();
        if (guest.IsIpv4 != remote.IsIpv4)
        {
            throw reader.Error($"flow {guest}:{guestPort} -> {remote}:{remotePort} mixes address families");
        }

        return new FlowKey(guest, guestPort, remote, remotePort);
    }

    public static void WriteEndPoint(StateSectionWriter writer, IPEndPoint endPoint)
    {
        WriteAddress(writer, IpAddr.FromAddress(endPoint.Address));
        writer.WriteUInt16((ushort)endPoint.Port);
    }

    public static IPEndPoint ReadEndPoint(StateSectionReader reader) => new(ReadAddress(reader).ToIPAddress(), reader.ReadUInt16());

    private static void WriteAddress(StateSectionWriter writer, IpAddr address)
    {
        Span<byte> bytes = stackalloc byte[16];
        writer.WriteBytes(bytes[..address.WriteTo(bytes)]);
    }

    private static IpAddr ReadAddress(StateSectionReader reader)
    {
        var bytes = reader.ReadBytes(16);
        return bytes.Length switch
        {
            4 => IpAddr.FromIpv4(System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(bytes)),
            16 => IpAddr.FromIpv6(bytes),
            _ => throw reader.Error($"an address of {bytes.Length} bytes"),
        };
    }
}
