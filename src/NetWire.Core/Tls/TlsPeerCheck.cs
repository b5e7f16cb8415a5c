using System.Security.Cryptography.X509Certificates;

namespace NetWire.Core.Tls;

/// <summary>
/// Checks a certificate against NetWire's own CA file, never the system's trust store: the chain
/// to a configured authority at a given time, the extended key usage of the peer's role, and the
/// name (a host name or IP address, or a certificate subject as spice-gtk's <c>cert-subject</c>).
/// </summary>
public static class TlsPeerCheck
{
    private static readonly Dictionary<string, string> s_attributeOids = new(StringComparer.OrdinalIgnoreCase)
    {
        ["CN"] = "2.5.4.3",
        ["C"] = "2.5.4.6",
        ["L"] = "2.5.4.7",
        ["ST"] = "2.5.4.8",
        ["S"] = "2.5.4.8",
        ["street"] = "2.5.4.9",
        ["O"] = "2.5.4.10",
        ["OU"] = "2.5.4.11",
        ["serialNumber"] = "2.5.4.5",
        ["emailAddress"] = "1.2.840.113549.1.9.1",
        ["E"] = "1.2.840.113549.1.9.1",
        ["DC"] = "0.9.2342.19200300.100.1.25",
        ["UID"] = "0.9.2342.19200300.100.1.1",
    };

    /// <summary>Null when <paramref name="leaf"/> chains to one of <paramref name="authorities"/> at <paramref name="now"/>; else why not.</summary>
    public static string? ChainError(X509Certificate2 leaf, X509Certificate2Collection intermediates, X509Certificate2Collection authorities, DateTimeOffset now)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(authorities);
        chain.ChainPolicy.ExtraStore.AddRange(intermediates);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.VerificationTime = now.UtcDateTime;
        if (chain.Build(leaf))
        {
            return null;
        }

        var problems = chain.ChainStatus
            .Select(s => string.IsNullOrWhiteSpace(s.StatusInformation) ? s.Status.ToString() : s.StatusInformation.Trim())
            .Distinct(StringComparer.Ordinal);
        return string.Join("; ", problems);
    }

    /// <summary>
    /// Checks the certificate a peer presented in the handshake: present, chained to
    /// <paramref name="authorities"/> (with the intermediates the peer sent, found in
    /// <paramref name="presented"/>'s extra store), valid at <paramref name="now"/>, usable for
    /// <paramref name="peerRole"/>, and named <paramref name="subject"/> when one is given, else
    /// matching <paramref name="host"/> when one is given. Null when it passes; else why not.
    /// </summary>
    public static string? Verify(X509Certificate? certificate, X509Chain? presented, X509Certificate2Collection authorities, TlsRole peerRole, string? host, string? subject, DateTimeOffset now)
    {
        if (certificate is null)
        {
            return "the peer sent no certificate";
        }

        var leaf = certificate as X509Certificate2 ?? X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
        if (!X509Credentials.HasUsage(leaf, peerRole))
        {
            return $"the certificate '{leaf.Subject}' does not allow TLS {(peerRole == TlsRole.Server ? "server" : "client")} authentication";
        }

        var intermediates = presented?.ChainPolicy.ExtraStore ?? [];
        if (ChainError(leaf, intermediates, authorities, now) is { } chainError)
        {
            return $"the certificate '{leaf.Subject}' does not verify against the CA: {chainError}";
        }

        if (subject is not null)
        {
            return SubjectMatches(leaf.SubjectName, subject) ? null : $"the certificate's subject '{leaf.Subject}' is not '{subject}'";
        }

        if (host is not null && !leaf.MatchesHostname(host))
        {
            return $"the certificate '{leaf.Subject}' is not for {host}";
        }

        return null;
    }

    /// <summary>
    /// True when <paramref name="name"/> has exactly the attributes of <paramref name="subject"/>,
    /// in the same order: <c>CN=b,O=NetWire</c> (comma-separated <c>KEY=VALUE</c>, a backslash
    /// escapes a comma), values compared ignoring case and surrounding spaces. This is spice-gtk's
    /// <c>cert-subject</c> form, which it compares in the certificate's encoded order.
    /// </summary>
    /// <exception cref="FormatException">An attribute without '=' or of an unknown type.</exception>
    public static bool SubjectMatches(X500DistinguishedName name, string subject)
    {
        var wanted = ParseSubject(subject);
        var actual = name.EnumerateRelativeDistinguishedNames(reversed: false)
            .Where(r => !r.HasMultipleElements)
            .Select(r => (Oid: r.GetSingleElementType().Value ?? string.Empty, Value: (r.GetSingleElementValue() ?? string.Empty).Trim()))
            .ToArray();
        if (actual.Length != wanted.Count)
        {
            return false;
        }

        for (var i = 0; i < actual.Length; i++)
        {
            if (actual[i].Oid != wanted[i].Oid || !string.Equals(actual[i].Value, wanted[i].Value, StringComparison.OrdinalIgnoreCase))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Parses a <c>cert-subject</c> into attribute OIDs and values, in order.</summary>
    /// <exception cref="FormatException">An attribute without '=' or of an unknown type.</exception>
    public static IReadOnlyList<(string Oid, string Value)> ParseSubject(string subject)
    {
        var parts = new List<string>();
        var current = new System.Text.StringBuilder();
        for (var i = 0; i < subject.Length; i++)
        {
            if (subject[i] == '\\' && i + 1 < subject.Length)
            {
                current.Append(subject[++i]);
            }
            else if (subject[i] == ',')
            {
                parts.Add(current.ToString());
                current.Clear();
            }
            else
            {
                current.Append(subject[i]);
            }
        }

        parts.Add(current.ToString());
        var attributes = new List<(string, string)>();
        foreach (var part in parts)
        {
            var equals = part.IndexOf('=', StringComparison.Ordinal);
            if (equals <= 0)
            {
                throw new FormatException($"certificate subject '{subject}': '{part}' is not KEY=VALUE");
            }

            var key = part[..equals].Trim();
            if (!s_attributeOids.TryGetValue(key, out var oid))
            {
                throw new FormatException($"certificate subject '{subject}': unknown attribute '{key}' (use CN, O, OU, L, ST, C, emailAddress, DC, UID, serialNumber, street)");
            }

            attributes.Add((oid, part[(equals + 1)..].Trim()));
        }

        return attributes;
    }
}
