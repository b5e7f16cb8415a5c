using System.Buffers.Binary;
using System.Text;

namespace NetWire.Spice.Migration;

/// <summary>Where clients are sent: the target's host, plain and TLS ports, and TLS certificate subject.</summary>
/// <param name="Host">Target host name or address (non-empty, no NUL).</param>
/// <param name="Port">Plain port, or -1 for none.</param>
/// <param name="TlsPort">TLS port, or -1 for none.</param>
/// <param name="CertSubject">Subject the client checks the target's certificate against; null for none.</param>
internal sealed record MigrationDestination(string Host, int Port, int TlsPort, string? CertSubject);

/// <summary>
/// Bodies of the main channel's migration messages, by protocol version (protocol.md §4.4). NetWire
/// sends the DstInfo form (spice 0.8.3 / 0.10 and current servers); the older public-key form
/// and the seamless form are built for completeness and tests.
/// </summary>
internal static class MigrationMessages
{
    /// <summary>DstInfo fixed part: u16 port, u16 sport, u32 host_size, u32 host_ptr, u32 cert_subject_size, u32 cert_subject_ptr.</summary>
    public const int DstInfoFixed = 20;

    /// <summary>The pre-0.8.3 form: u16 port, u16 sport, u32 host_size, u32 host_ptr, u16 pub_key_type, u32 pub_key_size, u32 pub_key_ptr.</summary>
    public const int PubKeyFormFixed = 22;

    /// <summary>MIGRATE_BEGIN_SEAMLESS: DstInfo fixed part then u32 src_mig_version.</summary>
    public const int SeamlessFixed = 24;

    /// <summary>Longest host or subject NetWire puts in a message.</summary>
    public const int MaxText = 1024;

    /// <summary>MIGRATE_BEGIN and MIGRATE_SWITCH_HOST (same layout) in the DstInfo form.</summary>
    public static byte[] BuildDstInfo(MigrationDestination destination) => Build(destination, DstInfoFixed, null);

    /// <summary>MIGRATE_BEGIN_SEAMLESS: DstInfo with src_mig_version after the fixed part; host at offset 24.</summary>
    public static byte[] BuildBeginSeamless(MigrationDestination destination, uint sourceVersion) => Build(destination, SeamlessFixed, sourceVersion);

    /// <summary>MIGRATE_BEGIN of spice 0.6 to 0.8.2: host, then the public key bytes.</summary>
    public static byte[] BuildPubKeyForm(MigrationDestination destination, ushort pubKeyType, ReadOnlySpan<byte> pubKey)
    {
        var host = Terminated(destination.Host);
        var body = new byte[PubKeyFormFixed + host.Length + pubKey.Length];
        var span = body.AsSpan();
        BinaryPrimitives.WriteUInt16LittleEndian(span, WirePort(destination.Port));
        BinaryPrimitives.WriteUInt16LittleEndian(span[2..], WirePort(destination.TlsPort));
        BinaryPrimitives.WriteUInt32LittleEndian(span[4..], (uint)host.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(span[8..], PubKeyFormFixed);
        BinaryPrimitives.WriteUInt16LittleEndian(span[12..], pubKeyType);
        BinaryPrimitives.WriteUInt32LittleEndian(span[14..], (uint)pubKey.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(span[18..], pubKey.IsEmpty ? 0u : (uint)(PubKeyFormFixed + host.Length));
        host.CopyTo(span[PubKeyFormFixed..]);
        pubKey.CopyTo(span[(PubKeyFormFixed + host.Length)..]);
        return body;
    }

    /// <summary>
    /// Reads a DstInfo body as a client does (pointer checks, NUL-terminated strings), for tests
    /// and the raw client. <paramref name="fixedLength"/> is 20, or 24 for BEGIN_SEAMLESS.
    /// </summary>
    /// <exception cref="SpiceProtocolException">A pointer or size points outside the body or a string lacks its NUL.</exception>
    public static MigrationDestination ParseDstInfo(ReadOnlySpan<byte> body, int fixedLength = DstInfoFixed)
    {
        if (body.Length < fixedLength)
        {
            ThrowHelper.Protocol($"DstInfo of {body.Length} bytes, fixed part is {fixedLength}");
        }

        var port = BinaryPrimitives.ReadUInt16LittleEndian(body);
        var sport = BinaryPrimitives.ReadUInt16LittleEndian(body[2..]);
        var host = ReadText(body, BinaryPrimitives.ReadUInt32LittleEndian(body[4..]), BinaryPrimitives.ReadUInt32LittleEndian(body[8..]), "host")
            ?? throw new SpiceProtocolException("DstInfo host pointer is null");
        var subject = ReadText(body, BinaryPrimitives.ReadUInt32LittleEndian(body[12..]), BinaryPrimitives.ReadUInt32LittleEndian(body[16..]), "cert subject");
        return new MigrationDestination(host, port is 0 or 0xFFFF ? -1 : port, sport is 0 or 0xFFFF ? -1 : sport, subject);
    }

    /// <summary>Checks a destination NetWire is asked to send.</summary>
    /// <exception cref="ArgumentException">Empty or over-long host, a NUL inside, a port out of range, or no port at all.</exception>
    public static void Validate(MigrationDestination destination)
    {
        if (string.IsNullOrEmpty(destination.Host) || destination.Host.Contains('\0', StringComparison.Ordinal) || Encoding.UTF8.GetByteCount(destination.Host) >= MaxText)
        {
            throw new ArgumentException($"hostname must be 1 to {MaxText - 1} bytes without NUL");
        }

        if (destination.CertSubject is { } subject && (subject.Contains('\0', StringComparison.Ordinal) || Encoding.UTF8.GetByteCount(subject) >= MaxText))
        {
            throw new ArgumentException($"cert-subject must be at most {MaxText - 1} bytes without NUL");
        }

        if (destination.Port is < -1 or > 65534 || destination.TlsPort is < -1 or > 65534)
        {
            throw new ArgumentException("port and tls-port must be 0 to 65534, or -1 for none");
        }

        if (destination.Port <= 0 && destination.TlsPort <= 0)
        {
            throw new ArgumentException("give port or tls-port (0 and -1 mean none)");
        }
    }

    private static byte[] Build(MigrationDestination destination, int fixedLength, uint? sourceVersion)
    {
        var host = Terminated(destination.Host);
        var subject = destination.CertSubject is { Length: > 0 } s ? Terminated(s) : [];
        var body = new byte[fixedLength + host.Length + subject.Length];
        var span = body.AsSpan();
        BinaryPrimitives.WriteUInt16LittleEndian(span, WirePort(destination.Port));
        BinaryPrimitives.WriteUInt16LittleEndian(span[2..], WirePort(destination.TlsPort));
        BinaryPrimitives.WriteUInt32LittleEndian(span[4..], (uint)host.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(span[8..], (uint)fixedLength);
        BinaryPrimitives.WriteUInt32LittleEndian(span[12..], (uint)subject.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(span[16..], subject.Length == 0 ? 0u : (uint)(fixedLength + host.Length));
        if (sourceVersion is { } version)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(span[20..], version);
        }

        host.CopyTo(span[fixedLength..]);
        subject.CopyTo(span[(fixedLength + host.Length)..]);
        return body;
    }

    /// <summary>
    /// -1 (none) is 0 on the wire. spice-server's u16 cast of -1 sends 0xFFFF, which spice-gtk
    /// takes for port 65535 (it keeps a port only when it is above 0), so a target announced with
    /// a TLS port alone could never be reached in clear-text-first order (protocol.md §4.4).
    /// </summary>
    private static ushort WirePort(int port) => port <= 0 ? (ushort)0 : (ushort)port;

    private static byte[] Terminated(string text)
    {
        var bytes = new byte[Encoding.UTF8.GetByteCount(text) + 1];
        Encoding.UTF8.GetBytes(text, bytes);
        return bytes;
    }

    private static string? ReadText(ReadOnlySpan<byte> body, uint size, uint pointer, string what)
    {
        if (pointer == 0)
        {
            return null;
        }

        if (pointer >= (uint)body.Length || size == 0 || size > (uint)body.Length - pointer)
        {
            ThrowHelper.Protocol($"DstInfo {what}: {size} bytes at offset {pointer} do not fit a {body.Length}-byte body");
        }

        var text = body.Slice((int)pointer, (int)size);
        var nul = text.IndexOf((byte)0);
        if (nul < 0)
        {
            ThrowHelper.Protocol($"DstInfo {what} has no NUL");
        }

        return Encoding.UTF8.GetString(text[..nul]);
    }
}
