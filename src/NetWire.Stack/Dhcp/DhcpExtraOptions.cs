using System.Text;
using NetWire.Core.Packets;

namespace NetWire.Stack.Dhcp;

/// <summary>
/// The DHCP options beyond the address plan, encoded once when the gateway starts: host name (12),
/// domain name (15), domain search list (119, RFC 3397), and for network boot the TFTP server name
/// (66) and the bootfile name (67). The bootfile also goes into the BOOTP <c>file</c> field, and
/// <c>siaddr</c> names the gateway, which is what PXE firmware (SeaBIOS with iPXE) reads.
/// </summary>
internal static class DhcpExtraOptions
{
    /// <summary>The BOOTP <c>file</c> field holds 128 bytes, NUL-terminated (RFC 2131 2).</summary>
    public const int MaxBootFileBytes = 127;

    /// <summary>Throws <see cref="FormatException"/> naming the option when a name cannot be encoded.</summary>
    public static void Check(GatewayOptions options) => _ = Encode(options, "0.0.0.0");

    /// <summary>The options as TLVs to copy after the fixed ones, in code order.</summary>
    public static byte[] Encode(GatewayOptions options, string gatewayText)
    {
        var bytes = new List<byte>();
        if (options.Hostname is { } hostname)
        {
            CheckName(hostname, "--hostname");
            Add(bytes, DhcpOptionCode.HostName, Encoding.ASCII.GetBytes(hostname));
        }

        if (options.DomainName is { } domain)
        {
            CheckName(domain, "--domain");
            Add(bytes, DhcpOptionCode.DomainName, Encoding.ASCII.GetBytes(domain));
        }

        if (options.TftpRoot is not null)
        {
            Add(bytes, DhcpOptionCode.TftpServerName, Encoding.ASCII.GetBytes(gatewayText));
        }

        if (options.BootFile is { } bootFile)
        {
            if (bootFile.Length is 0 or > MaxBootFileBytes || !IsPrintableAscii(bootFile))
            {
                throw new FormatException($"--bootfile '{bootFile}': 1 to {MaxBootFileBytes} printable ASCII characters");
            }

            Add(bytes, DhcpOptionCode.BootFileName, Encoding.ASCII.GetBytes(bootFile));
        }

        if (options.DnsSearch.Count > 0)
        {
            var list = new List<byte>();
            foreach (var name in options.DnsSearch)
            {
                CheckName(name, "--dns-search");
                AppendDnsName(list, name.TrimEnd('.'));
            }

            // RFC 3396: a value over 255 bytes is split over several options of the same code,
            // which the client concatenates.
            for (var offset = 0; offset < list.Count; offset += 255)
            {
                Add(bytes, DhcpOptionCode.DomainSearch, list.GetRange(offset, Math.Min(255, list.Count - offset)).ToArray());
            }

            if (list.Count > 1024)
            {
                throw new FormatException("--dns-search: the search list is longer than 1024 bytes");
            }
        }

        return [.. bytes];
    }

    /// <summary>The BOOTP <c>file</c> field's bytes (without the NUL), empty without a bootfile.</summary>
    public static byte[] BootFileField(GatewayOptions options) =>
        options.BootFile is { } bootFile ? Encoding.ASCII.GetBytes(bootFile) : [];

    /// <summary>RFC 1035 3.1: each label as a length byte and its characters, then the root's zero length.</summary>
    private static void AppendDnsName(List<byte> list, string name)
    {
        foreach (var label in name.Split('.'))
        {
            list.Add((byte)label.Length);
            list.AddRange(Encoding.ASCII.GetBytes(label));
        }

        list.Add(0);
    }

    /// <summary>A DNS name: labels of 1 to 63 letters, digits, hyphens or underscores, at most 253 characters.</summary>
    private static void CheckName(string name, string option)
    {
        var trimmed = name.TrimEnd('.');
        if (trimmed.Length is 0 or > 253)
        {
            throw new FormatException($"{option} '{name}': a DNS name of 1 to 253 characters");
        }

        foreach (var label in trimmed.Split('.'))
        {
            if (label.Length is 0 or > 63)
            {
                throw new FormatException($"{option} '{name}': each label has 1 to 63 characters");
            }

            foreach (var c in label)
            {
                if (!(char.IsAsciiLetterOrDigit(c) || c is '-' or '_'))
                {
                    throw new FormatException($"{option} '{name}': '{c}' is not a letter, digit, '-' or '_'");
                }
            }
        }
    }

    private static bool IsPrintableAscii(string text)
    {
        foreach (var c in text)
        {
            if (c is < '!' or > '~')
            {
                return false;
            }
        }

        return true;
    }

    private static void Add(List<byte> bytes, DhcpOptionCode code, byte[] value)
    {
        if (value.Length > 255)
        {
            throw new FormatException($"DHCP option {(int)code}: the value is longer than 255 bytes");
        }

        bytes.Add((byte)code);
        bytes.Add((byte)value.Length);
        bytes.AddRange(value);
    }
}
