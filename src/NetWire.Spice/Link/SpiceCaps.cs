namespace NetWire.Spice.Link;

/// <summary>
/// Capability bit numbers (protocol.md §1.4). Caps travel as arrays of u32 words: capability n is
/// bit n % 32 of word n / 32.
/// </summary>
internal static class SpiceCaps
{
    /// <summary>SPICE_COMMON_CAP_PROTOCOL_AUTH_SELECTION: a u32 auth mechanism follows the reply.</summary>
    public const int AuthSelection = 0;

    /// <summary>SPICE_COMMON_CAP_AUTH_SPICE: RSA ticket authentication.</summary>
    public const int AuthSpice = 1;

    /// <summary>SPICE_COMMON_CAP_AUTH_SASL: never advertised, NetWire has no SASL.</summary>
    public const int AuthSasl = 2;

    /// <summary>SPICE_COMMON_CAP_MINI_HEADER: 6-byte data headers.</summary>
    public const int MiniHeader = 3;

    /// <summary>SPICE_MAIN_CAP_SEMI_SEAMLESS_MIGRATE.</summary>
    public const int MainSemiSeamlessMigrate = 0;

    /// <summary>SPICE_MAIN_CAP_NAME_AND_UUID (a client cap: the server tests it on the client).</summary>
    public const int MainNameAndUuid = 1;

    /// <summary>SPICE_MAIN_CAP_AGENT_CONNECTED_TOKENS (a client cap).</summary>
    public const int MainAgentConnectedTokens = 2;

    /// <summary>SPICE_MAIN_CAP_SEAMLESS_MIGRATE.</summary>
    public const int MainSeamlessMigrate = 3;

    /// <summary>The common caps NetWire's server advertises: auth selection, RSA ticket, mini header (0x0B).</summary>
    public const uint ServerCommonWord = (1u << AuthSelection) | (1u << AuthSpice) | (1u << MiniHeader);

    /// <summary>True when capability <paramref name="cap"/> is set in <paramref name="words"/>.</summary>
    public static bool Has(ReadOnlySpan<uint> words, int cap)
    {
        var word = cap / 32;
        return word < words.Length && (words[word] & (1u << (cap % 32))) != 0;
    }
}
