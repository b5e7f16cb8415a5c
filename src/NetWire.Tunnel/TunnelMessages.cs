using System.Buffers.Binary;
using System.Text;
using NetWire.Spice;

namespace NetWire.Tunnel;

/// <summary>
/// Tunnel channel message ids and layouts (protocol.md §6.2), the packed <c>spice.proto</c> form in
/// both directions. All integers little-endian; IPv4 address bytes in network order.
/// </summary>
/// <remarks>
/// Fixed-size messages must have exactly their size: the real server read fixed structs out of
/// a shared buffer with no size check (protocol.md §7.3), so a short or long one is a protocol error
/// here. SERVICE_ADD's name and description are pointers (u32 offsets from the body start)
/// to NUL-terminated strings inside the body; both are checked (CVE-2018-10873 shape).
/// </remarks>
internal static class TunnelMessages
{
    // Server -> client.
    public const ushort Init = 101;
    public const ushort ServiceIpMap = 102;
    public const ushort SocketOpen = 103;
    public const ushort SocketFin = 104;
    public const ushort SocketClose = 105;
    public const ushort SocketData = 106;
    public const ushort SocketClosedAck = 107;
    public const ushort SocketToken = 108;

    // Client -> server.
    public const ushort ServiceAdd = 101;
    public const ushort ServiceRemove = 102;
    public const ushort SocketOpenAck = 103;
    public const ushort SocketOpenNack = 104;
    public const ushort ClientSocketFin = 105;
    public const ushort SocketClosed = 106;
    public const ushort ClientSocketClosedAck = 107;
    public const ushort ClientSocketData = 108;
    public const ushort ClientSocketToken = 109;

    /// <summary>
    /// Tunnel channel cap (bit 0 of the channel caps; the tunnel defined none before): the peer
    /// moves its sockets with a migration (docs/tunnel.md, "Migration"). A client with it answers
    /// MIGRATE (NEED_FLUSH) with MIGRATE_FLUSH_MARK and reads MIGRATE_DATA after a target's INIT.
    /// </summary>
    public const int CapMigrate = 0;

    /// <summary>MIGRATE's flag NEED_FLUSH (protocol.md §3.1).</summary>
    public const uint MigrateNeedFlush = 1;

    /// <summary>TunnelServiceType.</summary>
    public const ushort ServiceGeneric = 1;

    /// <summary>TunnelServiceType IPP (print).</summary>
    public const ushort ServiceIpp = 2;

    /// <summary>TunnelIpType IPv4.</summary>
    public const ushort IpTypeIpv4 = 1;

    /// <summary>SERVICE_ADD fixed part for a generic service: type u16, id, group, port, name ptr, description ptr.</summary>
    public const int ServiceAddFixed = 22;

    /// <summary>SERVICE_ADD fixed part for IPP: the generic part plus TunnelIpInfo (u16 type + 4 bytes).</summary>
    public const int ServiceAddIppFixed = 28;

    /// <summary>Longest name or description accepted (bytes, without the NUL).</summary>
    public const int MaxStringBytes = 255;

    /// <summary>Largest SERVICE_ADD body accepted.</summary>
    public const int MaxServiceAddSize = ServiceAddIppFixed + (2 * (MaxStringBytes + 1));

    /// <summary>A migration target's MIGRATE_DATA (common type 2): u16 count, then the u16 connection ids that continue.</summary>
    public static byte[] BuildMigrateData(IReadOnlyList<ushort> ids)
    {
        var body = new byte[2 + (2 * ids.Count)];
        BinaryPrimitives.WriteUInt16LittleEndian(body, (ushort)ids.Count);
        for (var i = 0; i < ids.Count; i++)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(body.AsSpan(2 + (2 * i)), ids[i]);
        }

        return body;
    }

    /// <summary>Reads MIGRATE_DATA; null when its length does not match its count.</summary>
    public static ushort[]? ParseMigrateData(ReadOnlySpan<byte> body)
    {
        if (body.Length < 2 || body.Length != 2 + (2 * BinaryPrimitives.ReadUInt16LittleEndian(body)))
        {
            return null;
        }

        var ids = new ushort[(body.Length - 2) / 2];
        for (var i = 0; i < ids.Length; i++)
        {
            ids[i] = BinaryPrimitives.ReadUInt16LittleEndian(body[(2 + (2 * i))..]);
        }

        return ids;
    }

    public static byte[] BuildInit(ushort maxSockets, uint maxDataSize)
    {
        var body = new byte[6];
        BinaryPrimitives.WriteUInt16LittleEndian(body, maxSockets);
        BinaryPrimitives.WriteUInt32LittleEndian(body.AsSpan(2), maxDataSize);
        return body;
    }

    public static byte[] BuildServiceIpMap(uint serviceId, uint virtualIp)
    {
        var body = new byte[10];
        BinaryPrimitives.WriteUInt32LittleEndian(body, serviceId);
        BinaryPrimitives.WriteUInt16LittleEndian(body.AsSpan(4), IpTypeIpv4);
        BinaryPrimitives.WriteUInt32BigEndian(body.AsSpan(6), virtualIp);
        return body;
    }

    public static byte[] BuildSocketOpen(ushort connectionId, uint serviceId, uint tokens)
    {
        var body = new byte[10];
        BinaryPrimitives.WriteUInt16LittleEndian(body, connectionId);
        BinaryPrimitives.WriteUInt32LittleEndian(body.AsSpan(2), serviceId);
        BinaryPrimitives.WriteUInt32LittleEndian(body.AsSpan(6), tokens);
        return body;
    }

    /// <summary>A message whose body is only a u16 connection id (FIN, CLOSE, CLOSED, CLOSED_ACK, OPEN_NACK).</summary>
    public static byte[] BuildId(ushort connectionId)
    {
        var body = new byte[2];
        BinaryPrimitives.WriteUInt16LittleEndian(body, connectionId);
        return body;
    }

    /// <summary>SOCKET_TOKEN (both directions) and SOCKET_OPEN_ACK: u16 connection id, u32 tokens.</summary>
    public static byte[] BuildIdTokens(ushort connectionId, uint tokens)
    {
        var body = new byte[6];
        BinaryPrimitives.WriteUInt16LittleEndian(body, connectionId);
        BinaryPrimitives.WriteUInt32LittleEndian(body.AsSpan(2), tokens);
        return body;
    }

    /// <summary>SOCKET_DATA (both directions): u16 connection id, then the bytes.</summary>
    public static byte[] BuildData(ushort connectionId, ReadOnlySpan<byte> data)
    {
        var body = new byte[2 + data.Length];
        BinaryPrimitives.WriteUInt16LittleEndian(body, connectionId);
        data.CopyTo(body.AsSpan(2));
        return body;
    }

    public static byte[] BuildServiceRemove(uint serviceId)
    {
        var body = new byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(body, serviceId);
        return body;
    }

    /// <summary>SERVICE_ADD in the spice.proto layout: fixed part, then name and description with their NULs.</summary>
    public static byte[] BuildServiceAdd(TunnelService service)
    {
        var name = Encoding.UTF8.GetBytes(service.Name);
        var description = Encoding.UTF8.GetBytes(service.Description);
        var isIpp = service.Type == ServiceIpp;
        var fixedPart = isIpp ? ServiceAddIppFixed : ServiceAddFixed;
        var body = new byte[fixedPart + name.Length + 1 + description.Length + 1];
        BinaryPrimitives.WriteUInt16LittleEndian(body, service.Type);
        BinaryPrimitives.WriteUInt32LittleEndian(body.AsSpan(2), service.Id);
        BinaryPrimitives.WriteUInt32LittleEndian(body.AsSpan(6), service.Group);
        BinaryPrimitives.WriteUInt32LittleEndian(body.AsSpan(10), service.Port);
        BinaryPrimitives.WriteUInt32LittleEndian(body.AsSpan(14), (uint)fixedPart);
        BinaryPrimitives.WriteUInt32LittleEndian(body.AsSpan(18), (uint)(fixedPart + name.Length + 1));
        if (isIpp)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(body.AsSpan(22), IpTypeIpv4);
            BinaryPrimitives.WriteUInt32BigEndian(body.AsSpan(24), service.PrinterIp);
        }

        name.CopyTo(body.AsSpan(fixedPart));
        description.CopyTo(body.AsSpan(fixedPart + name.Length + 1));
        return body;
    }

    /// <summary>Parses SERVICE_ADD; null (and why) when a field or pointer is bad.</summary>
    public static TunnelService? ParseServiceAdd(ReadOnlySpan<byte> body, out string error)
    {
        error = string.Empty;
        if (body.Length < ServiceAddFixed)
        {
            error = $"SERVICE_ADD of {body.Length} bytes is shorter than its fixed part ({ServiceAddFixed})";
            return null;
        }

        var type = BinaryPrimitives.ReadUInt16LittleEndian(body);
        var id = BinaryPrimitives.ReadUInt32LittleEndian(body[2..]);
        var group = BinaryPrimitives.ReadUInt32LittleEndian(body[6..]);
        var port = BinaryPrimitives.ReadUInt32LittleEndian(body[10..]);
        var namePointer = BinaryPrimitives.ReadUInt32LittleEndian(body[14..]);
        var descriptionPointer = BinaryPrimitives.ReadUInt32LittleEndian(body[18..]);
        uint printerIp = 0;
        int fixedPart;
        switch (type)
        {
            case ServiceGeneric:
                fixedPart = ServiceAddFixed;
                break;
            case ServiceIpp:
                // protocol.md §7.3: the real server compared the service type with the IP type here and
                // rejected every print service; the IP type is the one at offset 22.
                fixedPart = ServiceAddIppFixed;
                if (body.Length < fixedPart)
                {
                    error = $"IPP SERVICE_ADD of {body.Length} bytes is shorter than its fixed part ({ServiceAddIppFixed})";
                    return null;
                }

                if (BinaryPrimitives.ReadUInt16LittleEndian(body[22..]) != IpTypeIpv4)
                {
                    error = $"IPP SERVICE_ADD with printer address type {BinaryPrimitives.ReadUInt16LittleEndian(body[22..])} (only IPv4 = 1)";
                    return null;
                }

                printerIp = BinaryPrimitives.ReadUInt32BigEndian(body[24..]);
                break;
            default:
                error = $"SERVICE_ADD with service type {type} (1 generic, 2 IPP)";
                return null;
        }

        if (port is 0 or > 65535)
        {
            error = $"SERVICE_ADD with port {port}";
            return null;
        }

        if (!TryReadString(body, namePointer, fixedPart, out var name, out error)
            || !TryReadString(body, descriptionPointer, fixedPart, out var description, out error))
        {
            return null;
        }

        if (name.Length == 0)
        {
            error = "SERVICE_ADD with an empty name";
            return null;
        }

        return new TunnelService(type, id, group, (ushort)port, name, description, printerIp);
    }

    /// <summary>A fixed-size message of any other size is a protocol violation (protocol.md §7.3).</summary>
    /// <exception cref="SpiceProtocolException">The size differs.</exception>
    public static void Expect(ReadOnlySpan<byte> body, int size, string name)
    {
        if (body.Length != size)
        {
            ThrowHelper.Protocol($"{name} of {body.Length} bytes (must be {size})");
        }
    }

    /// <summary>A u16 connection id from a message that must be exactly <paramref name="size"/> bytes.</summary>
    public static bool TryReadId(ReadOnlySpan<byte> body, int size, out ushort connectionId)
    {
        connectionId = 0;
        if (body.Length != size)
        {
            return false;
        }

        connectionId = BinaryPrimitives.ReadUInt16LittleEndian(body);
        return true;
    }

    private static bool TryReadString(ReadOnlySpan<byte> body, uint pointer, int fixedPart, out string value, out string error)
    {
        value = string.Empty;
        error = string.Empty;
        if (pointer < fixedPart || pointer >= (uint)body.Length)
        {
            error = $"SERVICE_ADD string pointer {pointer} outside {fixedPart}..{body.Length - 1}";
            return false;
        }

        var rest = body[(int)pointer..];
        var end = rest.IndexOf((byte)0);
        if (end < 0)
        {
            error = $"SERVICE_ADD string at {pointer} has no NUL before the end of the message";
            return false;
        }

        if (end > MaxStringBytes)
        {
            error = $"SERVICE_ADD string at {pointer} is {end} bytes (at most {MaxStringBytes})";
            return false;
        }

        try
        {
            value = new UTF8Encoding(false, true).GetString(rest[..end]);
        }
        catch (DecoderFallbackException)
        {
            error = $"SERVICE_ADD string at {pointer} is not UTF-8";
            return false;
        }

        return true;
    }
}

/// <summary>A service as SERVICE_ADD describes it. <see cref="PrinterIp"/> only for IPP (host order).</summary>
internal sealed record TunnelService(ushort Type, uint Id, uint Group, ushort Port, string Name, string Description, uint PrinterIp);
