using System.Buffers.Binary;
using System.Text;
using NetWire.Spice.Link;

namespace NetWire.Spice.Channels;

/// <summary>Message ids 1-100, common to every channel (protocol.md §3), and builders for the server's.</summary>
internal static class CommonMessages
{
    // Server -> client.
    public const ushort Migrate = 1;
    public const ushort MigrateData = 2;
    public const ushort SetAck = 3;
    public const ushort Ping = 4;
    public const ushort WaitForChannels = 5;
    public const ushort Disconnecting = 6;
    public const ushort Notify = 7;
    public const ushort List = 8;

    // Client -> server.
    public const ushort AckSync = 1;
    public const ushort Ack = 2;
    public const ushort Pong = 3;
    public const ushort MigrateFlushMark = 4;
    public const ushort ClientMigrateData = 5;
    public const ushort ClientDisconnecting = 6;

    /// <summary>Largest client id in the common range.</summary>
    public const ushort LastCommon = 100;

    /// <summary>SET_ACK: u32 generation, u32 window.</summary>
    public static byte[] BuildSetAck(uint generation, uint window)
    {
        var body = new byte[8];
        BinaryPrimitives.WriteUInt32LittleEndian(body, generation);
        BinaryPrimitives.WriteUInt32LittleEndian(body.AsSpan(4), window);
        return body;
    }

    /// <summary>PING: u32 id, u64 timestamp (µs), then <paramref name="filler"/> zero bytes.</summary>
    public static byte[] BuildPing(uint id, ulong timestampMicros, int filler = 0)
    {
        var body = new byte[12 + filler];
        BinaryPrimitives.WriteUInt32LittleEndian(body, id);
        BinaryPrimitives.WriteUInt64LittleEndian(body.AsSpan(4), timestampMicros);
        return body;
    }

    /// <summary>DISCONNECTING: u64 time_stamp, u32 reason.</summary>
    public static byte[] BuildDisconnecting(ulong timestamp, SpiceLinkErr reason)
    {
        var body = new byte[12];
        BinaryPrimitives.WriteUInt64LittleEndian(body, timestamp);
        BinaryPrimitives.WriteUInt32LittleEndian(body.AsSpan(8), (uint)reason);
        return body;
    }

    /// <summary>
    /// NOTIFY: u64 time_stamp, u32 severity, u32 visibility, u32 what (0 = GENERAL),
    /// u32 message_len, message bytes, and one extra NUL as spice-server appends.
    /// </summary>
    public static byte[] BuildNotify(ulong timestamp, NotifySeverity severity, NotifyVisibility visibility, string message)
    {
        var text = Encoding.UTF8.GetBytes(message);
        var body = new byte[24 + text.Length + 1];
        BinaryPrimitives.WriteUInt64LittleEndian(body, timestamp);
        BinaryPrimitives.WriteUInt32LittleEndian(body.AsSpan(8), (uint)severity);
        BinaryPrimitives.WriteUInt32LittleEndian(body.AsSpan(12), (uint)visibility);
        BinaryPrimitives.WriteUInt32LittleEndian(body.AsSpan(16), 0);
        BinaryPrimitives.WriteUInt32LittleEndian(body.AsSpan(20), (uint)text.Length);
        text.CopyTo(body.AsSpan(24));
        return body;
    }
}

/// <summary>NOTIFY severity.</summary>
internal enum NotifySeverity : uint
{
    Info = 0,
    Warn = 1,
    Error = 2,
}

/// <summary>NOTIFY visibility.</summary>
internal enum NotifyVisibility : uint
{
    Low = 0,
    Medium = 1,
    High = 2,
}
