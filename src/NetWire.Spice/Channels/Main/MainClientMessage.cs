using System.Buffers.Binary;

namespace NetWire.Spice.Channels.Main;

/// <summary>What <see cref="MainClientMessage.TryParse"/> found.</summary>
internal enum ClientMessageVerdict
{
    /// <summary>A known message with at least its fixed fields.</summary>
    Ok,

    /// <summary>A known message shorter than its fixed fields.</summary>
    Truncated,

    /// <summary>A known message longer than it may be (AGENT_DATA over 2048 bytes).</summary>
    TooLong,

    /// <summary>A type the main channel does not define.</summary>
    Unknown,
}

/// <summary>
/// A client-to-server main channel message (protocol.md §3 and §4.2), reduced to the scalars NetWire
/// uses. Like spice-server's generated demarshallers, a body must hold at least the fixed
/// fields and extra trailing bytes are ignored. Parsing never allocates and never throws.
/// </summary>
/// <param name="Type">Message id.</param>
/// <param name="Value">The u32 (or u16) field: ACK_SYNC generation, PONG id, DISCONNECTING reason,
/// MOUSE_MODE_REQUEST mode, AGENT_START / AGENT_TOKEN tokens, DST_DO_SEAMLESS version.</param>
/// <param name="Timestamp">The u64 field: PONG and DISCONNECTING time stamp, CLIENT_INFO cache size.</param>
internal readonly record struct MainClientMessage(ushort Type, uint Value, ulong Timestamp)
{
    /// <summary>Largest body the main channel reads from a client: AGENT_DATA's 2048 plus room for QUALITY_INDICATOR.</summary>
    public const int MaxBodySize = 4096;

    public static ClientMessageVerdict TryParse(ushort type, ReadOnlySpan<byte> body, out MainClientMessage message)
    {
        message = new MainClientMessage(type, 0, 0);
        var minimum = MinimumSize(type);
        if (minimum < 0)
        {
            return ClientMessageVerdict.Unknown;
        }

        if (body.Length < minimum)
        {
            return ClientMessageVerdict.Truncated;
        }

        if (body.Length > MaxBodySize || (type == MainMessages.ClientAgentData && body.Length > MainMessages.MaxAgentData))
        {
            return ClientMessageVerdict.TooLong;
        }

        switch (type)
        {
            case CommonMessages.AckSync:
            case MainMessages.AgentStart:
            case MainMessages.ClientAgentToken:
            case MainMessages.MigrateDstDoSeamless:
                message = message with { Value = BinaryPrimitives.ReadUInt32LittleEndian(body) };
                break;
            case CommonMessages.Pong:
                message = message with { Value = BinaryPrimitives.ReadUInt32LittleEndian(body), Timestamp = BinaryPrimitives.ReadUInt64LittleEndian(body[4..]) };
                break;
            case CommonMessages.ClientDisconnecting:
                message = message with { Timestamp = BinaryPrimitives.ReadUInt64LittleEndian(body), Value = BinaryPrimitives.ReadUInt32LittleEndian(body[8..]) };
                break;
            case MainMessages.MouseModeRequest:
                message = message with { Value = BinaryPrimitives.ReadUInt16LittleEndian(body) };
                break;
            case MainMessages.ClientInfo:
                message = message with { Timestamp = BinaryPrimitives.ReadUInt64LittleEndian(body) };
                break;
        }

        return ClientMessageVerdict.Ok;
    }

    /// <summary>Fixed part of each client message; -1 for an unknown type.</summary>
    public static int MinimumSize(ushort type) => type switch
    {
        CommonMessages.AckSync => 4,
        CommonMessages.Ack => 0,
        CommonMessages.Pong => 12,
        CommonMessages.MigrateFlushMark => 0,
        CommonMessages.ClientMigrateData => 0,
        CommonMessages.ClientDisconnecting => 12,
        MainMessages.ClientInfo => 8,
        MainMessages.MigrateConnected => 0,
        MainMessages.MigrateConnectError => 0,
        MainMessages.AttachChannels => 0,
        MainMessages.MouseModeRequest => 2,
        MainMessages.AgentStart => 4,
        MainMessages.ClientAgentData => 0,
        MainMessages.ClientAgentToken => 4,
        MainMessages.ClientMigrateEnd => 0,
        MainMessages.MigrateDstDoSeamless => 4,
        MainMessages.MigrateConnectedSeamless => 0,
        MainMessages.QualityIndicator => 0,
        _ => -1,
    };
}
