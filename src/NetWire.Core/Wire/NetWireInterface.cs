namespace NetWire.Core.Wire;

/// <summary>
/// The name and version of the interface a wire end implements, checked when it is attached,
/// as spice_server_add_interface checked SpiceBaseInterface: the major version must be equal and
/// the end's minor version must not be newer than the one this build knows.
/// </summary>
/// <param name="Name">Interface type name; <c>net_wire</c> for every wire end.</param>
/// <param name="Major">Incompatible changes bump this.</param>
/// <param name="Minor">Compatible additions bump this.</param>
public readonly record struct NetWireInterface(string Name, int Major, int Minor)
{
    /// <summary>SPICE_INTERFACE_NET_WIRE ("net_wire"), major 1, minor 1: the version NetWire implements.</summary>
    public static NetWireInterface Current { get; } = new("net_wire", 1, 1);

    /// <summary>True when an end declaring <paramref name="offered"/> can be attached to this build.</summary>
    public static bool IsSupported(NetWireInterface offered, out string? reason)
    {
        if (!string.Equals(offered.Name, Current.Name, StringComparison.Ordinal))
        {
            reason = $"interface '{offered.Name}' is not '{Current.Name}'";
            return false;
        }

        if (offered.Major != Current.Major || offered.Minor > Current.Minor)
        {
            reason = $"unsupported {Current.Name} interface version {offered.Major}.{offered.Minor} (this build: {Current.Major}.{Current.Minor})";
            return false;
        }

        reason = null;
        return true;
    }

    /// <inheritdoc/>
    public override string ToString() => $"{Name} {Major}.{Minor}";
}

/// <summary>An end whose interface name or version cannot be attached.</summary>
public sealed class NetWireVersionException(string message) : InvalidOperationException(message);
