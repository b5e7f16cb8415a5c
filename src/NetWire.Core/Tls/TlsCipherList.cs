using System.Net.Security;
using System.Security.Authentication;

namespace NetWire.Core.Tls;

/// <summary>
/// <c>--tls-ciphers</c>: the cipher suites a TLS endpoint allows. QEMU hands its text to
/// OpenSSL's cipher-list parser; NetWire takes the same colon-separated form but only names of
/// single suites, by OpenSSL name (<c>ECDHE-RSA-AES128-GCM-SHA256</c>) or by IANA name
/// (<c>TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256</c>, and the TLS 1.3 suites such as
/// <c>TLS_AES_128_GCM_SHA256</c>). OpenSSL's keywords and operators (<c>HIGH</c>,
/// <c>!aNULL</c>, <c>@SECLEVEL</c>) are refused with a message, not guessed at.
/// </summary>
public static class TlsCipherList
{
    /// <summary>OpenSSL's names of the TLS 1.2 suites it offers by default, and their IANA names.</summary>
    private static readonly Dictionary<string, TlsCipherSuite> s_openSslNames = new(StringComparer.OrdinalIgnoreCase)
    {
        ["ECDHE-ECDSA-AES256-GCM-SHA384"] = TlsCipherSuite.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        ["ECDHE-RSA-AES256-GCM-SHA384"] = TlsCipherSuite.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        ["DHE-RSA-AES256-GCM-SHA384"] = TlsCipherSuite.TLS_DHE_RSA_WITH_AES_256_GCM_SHA384,
        ["ECDHE-ECDSA-CHACHA20-POLY1305"] = TlsCipherSuite.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        ["ECDHE-RSA-CHACHA20-POLY1305"] = TlsCipherSuite.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ["DHE-RSA-CHACHA20-POLY1305"] = TlsCipherSuite.TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ["ECDHE-ECDSA-AES128-GCM-SHA256"] = TlsCipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        ["ECDHE-RSA-AES128-GCM-SHA256"] = TlsCipherSuite.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        ["DHE-RSA-AES128-GCM-SHA256"] = TlsCipherSuite.TLS_DHE_RSA_WITH_AES_128_GCM_SHA256,
        ["ECDHE-ECDSA-AES256-SHA384"] = TlsCipherSuite.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384,
        ["ECDHE-RSA-AES256-SHA384"] = TlsCipherSuite.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384,
        ["DHE-RSA-AES256-SHA256"] = TlsCipherSuite.TLS_DHE_RSA_WITH_AES_256_CBC_SHA256,
        ["ECDHE-ECDSA-AES128-SHA256"] = TlsCipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256,
        ["ECDHE-RSA-AES128-SHA256"] = TlsCipherSuite.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256,
        ["DHE-RSA-AES128-SHA256"] = TlsCipherSuite.TLS_DHE_RSA_WITH_AES_128_CBC_SHA256,
        ["ECDHE-ECDSA-AES256-SHA"] = TlsCipherSuite.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
        ["ECDHE-RSA-AES256-SHA"] = TlsCipherSuite.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
        ["DHE-RSA-AES256-SHA"] = TlsCipherSuite.TLS_DHE_RSA_WITH_AES_256_CBC_SHA,
        ["ECDHE-ECDSA-AES128-SHA"] = TlsCipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
        ["ECDHE-RSA-AES128-SHA"] = TlsCipherSuite.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
        ["DHE-RSA-AES128-SHA"] = TlsCipherSuite.TLS_DHE_RSA_WITH_AES_128_CBC_SHA,
        ["AES256-GCM-SHA384"] = TlsCipherSuite.TLS_RSA_WITH_AES_256_GCM_SHA384,
        ["AES128-GCM-SHA256"] = TlsCipherSuite.TLS_RSA_WITH_AES_128_GCM_SHA256,
        ["AES256-SHA256"] = TlsCipherSuite.TLS_RSA_WITH_AES_256_CBC_SHA256,
        ["AES128-SHA256"] = TlsCipherSuite.TLS_RSA_WITH_AES_128_CBC_SHA256,
        ["AES256-SHA"] = TlsCipherSuite.TLS_RSA_WITH_AES_256_CBC_SHA,
        ["AES128-SHA"] = TlsCipherSuite.TLS_RSA_WITH_AES_128_CBC_SHA,
    };

    /// <summary>The TLS 1.3 suites (RFC 8446 B.4); every other suite is a TLS 1.2 one.</summary>
    private static readonly TlsCipherSuite[] s_tls13 =
    [
        TlsCipherSuite.TLS_AES_128_GCM_SHA256,
        TlsCipherSuite.TLS_AES_256_GCM_SHA384,
        TlsCipherSuite.TLS_CHACHA20_POLY1305_SHA256,
        TlsCipherSuite.TLS_AES_128_CCM_SHA256,
        TlsCipherSuite.TLS_AES_128_CCM_8_SHA256,
    ];

    /// <summary>
    /// The versions <paramref name="suites"/> can be negotiated in: TLS 1.3 when a TLS 1.3 suite is
    /// listed, TLS 1.2 when another is. .NET on OpenSSL refuses a policy that leaves an enabled
    /// version without suites, so the versions follow the list.
    /// </summary>
    public static SslProtocols ProtocolsFor(IReadOnlyList<TlsCipherSuite> suites)
    {
        var protocols = SslProtocols.None;
        foreach (var suite in suites)
        {
            protocols |= Array.IndexOf(s_tls13, suite) >= 0 ? SslProtocols.Tls13 : SslProtocols.Tls12;
        }

        return protocols;
    }

    /// <summary>Parses the list (separated by ':', ',' or spaces).</summary>
    /// <exception cref="FormatException">Empty, or a name that is no single known suite.</exception>
    public static IReadOnlyList<TlsCipherSuite> Parse(string text)
    {
        var suites = new List<TlsCipherSuite>();
        foreach (var name in text.Split([':', ',', ' '], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (s_openSslNames.TryGetValue(name, out var suite)
                || (name.StartsWith("TLS_", StringComparison.OrdinalIgnoreCase) && Enum.TryParse(name, ignoreCase: true, out suite) && Enum.IsDefined(suite)))
            {
                if (!suites.Contains(suite))
                {
                    suites.Add(suite);
                }

                continue;
            }

            throw new FormatException($"--tls-ciphers: '{name}' is not a cipher suite NetWire knows; give suites by OpenSSL name (ECDHE-RSA-AES128-GCM-SHA256) or IANA name (TLS_AES_128_GCM_SHA256), separated by ':' (OpenSSL's keywords such as HIGH or !aNULL are not understood)");
        }

        if (suites.Count == 0)
        {
            throw new FormatException("--tls-ciphers: no cipher suite given");
        }

        return suites;
    }
}
