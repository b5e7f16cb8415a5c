using System.Buffers.Binary;
using System.Text;

namespace NetWire.Spice.Channels.Main;

/// <summary>Main channel message ids (protocol.md §4.1, §4.2) and builders for the server's messages.</summary>
internal static class MainMessages
{
    // Server -> client.
    public const ushort MigrateBegin = 101;
    public const ushort MigrateCancel = 102;
    public const ushort Init = 103;
    public const ushort ChannelsList = 104;
    public const ushort MouseMode = 105;
    public const ushort MultiMediaTime = 106;
    public const ushort AgentConnected = 107;
    public const ushort AgentDisconnected = 108;
    public const ushort AgentData = 109;
    public const ushort AgentToken = 110;
    public const ushort MigrateSwitchHost = 111;
    public const ushort MigrateEnd = 112;
    public const ushort Name = 113;
    public const ushort Uuid = 114;

    // Client -> server.
    public const ushort ClientInfo = 101;
    public const ushort MigrateConnected = 102;
    public const ushort MigrateConnectError = 103;
    public const ushort AttachChannels = 104;
    public const ushort MouseModeRequest = 105;
    public const ushort AgentStart = 106;
    public const ushort ClientAgentData = 107;
    public const ushort ClientAgentToken = 108;
    public const ushort ClientMigrateEnd = 109;
    public const ushort MigrateDstDoSeamless = 110;
    public const ushort MigrateConnectedSeamless = 111;
    public const ushort QualityIndicator = 112;

    /// <summary>SPICE_MOUSE_MODE_SERVER.</summary>
    public const uint MouseModeServer = 1;

    /// <summary>SPICE_MOUSE_MODE_CLIENT.</summary>
    public const uint MouseModeClient = 2;

    /// <summary>REDS_AGENT_WINDOW_SIZE: agent tokens announced in INIT.</summary>
    public const uint AgentWindow = 10;

    /// <summary>Largest AGENT_DATA body (VD_AGENT_MAX_DATA_SIZE).</summary>
    public const int MaxAgentData = 2048;

    /// <summary>INIT: 8 x u32, 32 bytes.</summary>
    public static byte[] BuildInit(in MainInit init)
    {
        var body = new byte[32];
        var span = body.AsSpan();
        BinaryPrimitives.WriteUInt32LittleEndian(span, init.SessionId);
        BinaryPrimitives.WriteUInt32LittleEndian(span[4..], init.DisplayChannelsHint);
        BinaryPrimitives.WriteUInt32LittleEndian(span[8..], init.SupportedMouseModes);
        BinaryPrimitives.WriteUInt32LittleEndian(span[12..], init.CurrentMouseMode);
        BinaryPrimitives.WriteUInt32LittleEndian(span[16..], init.AgentConnected ? 1u : 0u);
        BinaryPrimitives.WriteUInt32LittleEndian(span[20..], init.AgentTokens);
        BinaryPrimitives.WriteUInt32LittleEndian(span[24..], init.MultiMediaTime);
        BinaryPrimitives.WriteUInt32LittleEndian(span[28..], init.RamHint);
        return body;
    }

    /// <summary>CHANNELS_LIST: u32 n, then n x {u8 type, u8 id}.</summary>
    public static byte[] BuildChannelsList(ReadOnlySpan<(byte Type, byte Id)> channels)
    {
        var body = new byte[4 + (2 * channels.Length)];
        BinaryPrimitives.WriteUInt32LittleEndian(body, (uint)channels.Length);
        for (var i = 0; i < channels.Length; i++)
        {
            body[4 + (2 * i)] = channels[i].Type;
            body[5 + (2 * i)] = channels[i].Id;
        }

        return body;
    }

    /// <summary>NAME: u32 name_len (including the NUL), then the name and a NUL.</summary>
    public static byte[] BuildName(string name)
    {
        var text = Encoding.UTF8.GetBytes(name);
        var body = new byte[4 + text.Length + 1];
        BinaryPrimitives.WriteUInt32LittleEndian(body, (uint)(text.Length + 1));
        text.CopyTo(body.AsSpan(4));
        return body;
    }

    /// <summary>UUID: the 16 bytes in RFC 4122 (big-endian) order, as QEMU sends qemu_uuid.</summary>
    public static byte[] BuildUuid(Guid uuid)
    {
        var body = new byte[16];
        uuid.TryWriteBytes(body, bigEndian: true, out _);
        return body;
    }

    /// <summary>MOUSE_MODE: u16 supported, u16 current.</summary>
    public static byte[] BuildMouseMode(uint supported, uint current)
    {
        var body = new byte[4];
        BinaryPrimitives.WriteUInt16LittleEndian(body, (ushort)supported);
        BinaryPrimitives.WriteUInt16LittleEndian(body.AsSpan(2), (ushort)current);
        return body;
    }
}

/// <summary>The fields of MAIN_INIT.</summary>
internal readonly record struct MainInit(
    uint SessionId,
    uint DisplayChannelsHint,
    uint SupportedMouseModes,
    uint CurrentMouseMode,
    bool AgentConnected,
    uint AgentTokens,
    uint MultiMediaTime,
    uint RamHint);
