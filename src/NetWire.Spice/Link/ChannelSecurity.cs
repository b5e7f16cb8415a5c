namespace NetWire.Spice.Link;

/// <summary>The transports a channel may link over.</summary>
[Flags]
internal enum ChannelTransport
{
    /// <summary>The plaintext port (<c>--spice-port</c>).</summary>
    Plaintext = 1,

    /// <summary>The TLS port (<c>--tls-port</c>).</summary>
    Tls = 2,

    /// <summary>Either port.</summary>
    Any = Plaintext | Tls,
}

/// <summary>
/// The channel security policy of QEMU's <c>-spice tls-channel=NAME,plaintext-channel=NAME</c>
/// (spice-server's <c>spice_server_set_channel_security</c>): each named channel links over TLS
/// only or plaintext only; <c>default</c> sets every channel not named; without options a
/// channel may use either port. A link on the wrong port is refused in the link reply before
/// authentication (protocol.md §1.7): NEED_SECURED on the plaintext port, which makes spice-gtk
/// link that channel again on the TLS port, NEED_UNSECURED on the TLS port.
/// </summary>
internal sealed class ChannelSecurity
{
    /// <summary>The channel names spice-server accepts, by type (protocol.md §1.8).</summary>
    private static readonly Dictionary<string, SpiceChannelType> s_names = new(StringComparer.Ordinal)
    {
        ["main"] = SpiceChannelType.Main,
        ["display"] = SpiceChannelType.Display,
        ["inputs"] = SpiceChannelType.Inputs,
        ["cursor"] = SpiceChannelType.Cursor,
        ["playback"] = SpiceChannelType.Playback,
        ["record"] = SpiceChannelType.Record,
        ["tunnel"] = SpiceChannelType.Tunnel,
        ["smartcard"] = SpiceChannelType.Smartcard,
        ["usbredir"] = SpiceChannelType.Usbredir,
        ["port"] = SpiceChannelType.Port,
        ["webdav"] = SpiceChannelType.Webdav,
    };

    /// <summary>Channels named by an option; read-only after <see cref="Parse"/>.</summary>
    private readonly Dictionary<SpiceChannelType, ChannelTransport> _channels = [];

    /// <summary>Every channel may use either port.</summary>
    public static ChannelSecurity Open { get; } = new();

    /// <summary>The transport of channels no option names.</summary>
    public ChannelTransport Default { get; private set; } = ChannelTransport.Any;

    /// <summary>True when some channel is held to TLS.</summary>
    public bool RequiresTls => Default == ChannelTransport.Tls || _channels.ContainsValue(ChannelTransport.Tls);

    /// <summary>Builds the policy from <c>--tls-channel</c> and <c>--plaintext-channel</c> names (<c>default</c> for every channel).</summary>
    /// <exception cref="FormatException">An unknown channel name, or one name in both lists.</exception>
    public static ChannelSecurity Parse(IEnumerable<string> tls, IEnumerable<string> plaintext)
    {
        var policy = new ChannelSecurity();
        var seen = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (names, transport, option) in new[] { (tls, ChannelTransport.Tls, "--tls-channel"), (plaintext, ChannelTransport.Plaintext, "--plaintext-channel") })
        {
            foreach (var name in names)
            {
                if (seen.TryGetValue(name, out var other) && other != option)
                {
                    throw new FormatException($"{option} {name} contradicts {other} {name}");
                }

                seen[name] = option;
                if (name == "default")
                {
                    policy.Default = transport;
                }
                else if (s_names.TryGetValue(name, out var type))
                {
                    policy._channels[type] = transport;
                }
                else
                {
                    throw new FormatException($"{option} '{name}': not a SPICE channel; use default or one of {string.Join(", ", s_names.Keys)}");
                }
            }
        }

        return policy;
    }

    /// <summary>The transports <paramref name="channelType"/> may link over.</summary>
    public ChannelTransport For(byte channelType) =>
        _channels.TryGetValue((SpiceChannelType)channelType, out var transport) ? transport : Default;

    /// <summary>OK, or the link reply error for a channel arriving over the wrong transport.</summary>
    public SpiceLinkErr Check(byte channelType, bool secure)
    {
        var allowed = For(channelType);
        if (secure)
        {
            return (allowed & ChannelTransport.Tls) != 0 ? SpiceLinkErr.Ok : SpiceLinkErr.NeedUnsecured;
        }

        return (allowed & ChannelTransport.Plaintext) != 0 ? SpiceLinkErr.Ok : SpiceLinkErr.NeedSecured;
    }

    /// <summary>The policy by name: <c>default</c> first, then each channel an option named.</summary>
    public IReadOnlyList<(string Channel, ChannelTransport Transport)> Describe()
    {
        var list = new List<(string, ChannelTransport)> { ("default", Default) };
        foreach (var (name, type) in s_names)
        {
            if (_channels.TryGetValue(type, out var transport))
            {
                list.Add((name, transport));
            }
        }

        return list;
    }

    /// <summary>The lowercase name QEMU's options use: "any", "tls", "plaintext".</summary>
    public static string Name(ChannelTransport transport) => transport switch
    {
        ChannelTransport.Tls => "tls",
        ChannelTransport.Plaintext => "plaintext",
        _ => "any",
    };
}
