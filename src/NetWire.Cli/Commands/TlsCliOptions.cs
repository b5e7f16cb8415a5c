using System.CommandLine;
using System.Net;
using System.Net.Security;
using NetWire.Control.Migration;
using NetWire.Core.Tls;
using NetWire.Spice;
using NetWire.Spice.Link;

namespace NetWire.Cli.Commands;

/// <summary>
/// <c>netwire serve</c>'s TLS options, with QEMU's <c>-spice</c> names: <c>--tls-port</c>,
/// <c>--x509-dir</c>, <c>--tls-ciphers</c>, <c>--tls-channel</c>, <c>--plaintext-channel</c>;
/// and <c>--migration-x509-dir</c> for the migration stream. <see cref="Read"/> checks the
/// options (a usage error, exit 2); <see cref="Load"/> reads and checks the certificates (a
/// setup error, exit 3, naming the file).
/// </summary>
internal sealed class TlsCliOptions
{
    public Option<int?> TlsPort { get; } = new("--tls-port")
    {
        Description = "SPICE TLS port on --spice-addr (0: any free port); needs --x509-dir. Without --spice-port, the only SPICE port",
        HelpName = "P",
    };

    public Option<string?> X509Dir { get; } = new("--x509-dir")
    {
        Description = "Directory with the TLS port's ca-cert.pem, server-cert.pem and server-key.pem (QEMU's x509-dir layout)",
        HelpName = "DIR",
    };

    public Option<string?> Ciphers { get; } = new("--tls-ciphers")
    {
        Description = "Cipher suites the TLS port allows, ':'-separated OpenSSL or IANA names (ECDHE-RSA-AES256-GCM-SHA384:TLS_AES_256_GCM_SHA384); default: the system's. TLS 1.2 and 1.3 only, always",
        HelpName = "LIST",
    };

    public Option<string[]> TlsChannels { get; } = new("--tls-channel")
    {
        Description = "A SPICE channel (main, tunnel, ..., or default for all) that must link over TLS; on the plaintext port it is answered NEED_SECURED (repeatable)",
        HelpName = "NAME",
        AllowMultipleArgumentsPerToken = false,
    };

    public Option<string[]> PlaintextChannels { get; } = new("--plaintext-channel")
    {
        Description = "A SPICE channel (or default) that must link over plaintext (repeatable)",
        HelpName = "NAME",
        AllowMultipleArgumentsPerToken = false,
    };

    public Option<string?> MigrationX509Dir { get; } = new("--migration-x509-dir")
    {
        Description = "Migrate over mutual TLS with ca-cert.pem and, on a target (--incoming), server-cert.pem/server-key.pem, on a source client-cert.pem/client-key.pem; plaintext or foreign-CA peers are refused",
        HelpName = "DIR",
    };

    public IEnumerable<Option> All => [TlsPort, X509Dir, Ciphers, TlsChannels, PlaintextChannels, MigrationX509Dir];

    /// <summary>Checks the options; the plaintext port is <paramref name="spicePort"/> as given (null: not given).</summary>
    /// <exception cref="FormatException">Options that contradict each other or name nothing.</exception>
    public TlsRequest Read(ParseResult parse, int? spicePort)
    {
        var tlsPort = parse.GetValue(TlsPort);
        var dir = parse.GetValue(X509Dir);
        if (spicePort is < 0 or > 65535)
        {
            throw new FormatException($"--spice-port {spicePort} is not a TCP port");
        }

        if (tlsPort is < 0 or > 65535)
        {
            throw new FormatException($"--tls-port {tlsPort} is not a TCP port");
        }

        if (tlsPort is not null && dir is null)
        {
            throw new FormatException("--tls-port needs --x509-dir (ca-cert.pem, server-cert.pem, server-key.pem)");
        }

        if (dir is not null && tlsPort is null)
        {
            throw new FormatException("--x509-dir is for the TLS port: give --tls-port too");
        }

        var ciphers = parse.GetValue(Ciphers) is { } text ? TlsCipherList.Parse(text) : null;
        if (ciphers is not null && tlsPort is null)
        {
            throw new FormatException("--tls-ciphers needs --tls-port");
        }

        var security = ChannelSecurity.Parse(parse.GetValue(TlsChannels) ?? [], parse.GetValue(PlaintextChannels) ?? []);
        if (security.RequiresTls && tlsPort is null)
        {
            // QEMU: "tried to setup tls-channel without specifying a TLS port".
            throw new FormatException("--tls-channel needs --tls-port");
        }

        // QEMU's -spice has a plaintext port only when port= is given; NetWire keeps its default
        // 5930 unless the TLS port is asked for alone.
        var plain = spicePort ?? (tlsPort is null ? SpiceServerOptions.DefaultPort : null);
        return new TlsRequest(plain, tlsPort, dir, ciphers, security, parse.GetValue(MigrationX509Dir));
    }

    /// <summary>What <see cref="Read"/> found.</summary>
    internal sealed record TlsRequest(int? SpicePort, int? TlsPort, string? X509Dir, IReadOnlyList<TlsCipherSuite>? Ciphers, ChannelSecurity Security, string? MigrationX509Dir)
    {
        /// <summary>Sets the ports of <paramref name="options"/> on <paramref name="address"/>, and the channel policy.</summary>
        public void Apply(SpiceServerOptions options, IPAddress address)
        {
            options.EndPoint = SpicePort is { } plain ? new IPEndPoint(address, plain) : null;
            options.TlsEndPoint = TlsPort is { } secure ? new IPEndPoint(address, secure) : null;
            options.ChannelSecurity = Security;
        }

        /// <summary>The TLS port's settings, or null without one.</summary>
        /// <exception cref="TlsCredentialsException">A certificate or key of <c>--x509-dir</c> is missing or wrong.</exception>
        public TlsSettings? LoadSpice(DateTimeOffset now) =>
            X509Dir is { } dir ? new TlsSettings(X509Credentials.Load(dir, TlsRole.Server, now), Ciphers) : null;

        /// <summary>The migration stream's TLS: a target accepts with the server certificate, a source connects with the client one.</summary>
        /// <exception cref="TlsCredentialsException">A certificate or key of <c>--migration-x509-dir</c> is missing or wrong.</exception>
        public MigrationTls? LoadMigration(bool incoming, DateTimeOffset now)
        {
            if (MigrationX509Dir is not { } dir)
            {
                return null;
            }

            // A target may itself be migrated on later (chained), so its client certificate is
            // taken when it has one; a source must have one.
            var accept = incoming ? new TlsSettings(X509Credentials.Load(dir, TlsRole.Server, now), requirePeerCertificate: true) : null;
            var connect = !incoming || X509Credentials.HasRole(dir, TlsRole.Client)
                ? new TlsSettings(X509Credentials.Load(dir, TlsRole.Client, now))
                : null;
            return new MigrationTls(dir, accept, connect);
        }
    }
}
