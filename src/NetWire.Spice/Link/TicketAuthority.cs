using System.Security.Cryptography;
using System.Text;

namespace NetWire.Spice.Link;

/// <summary>
/// The server's ticket policy (protocol.md §1.6): one password, an optional expiry, or ticketing
/// disabled. QEMU's <c>set_password</c> / <c>expire_password</c> map onto
/// <see cref="SetPassword"/> and <see cref="ExpirePassword"/>, so the control socket can drive it.
/// </summary>
/// <remarks>
/// The ticket check never throws on client bytes. The plaintext is decrypted into a 128-byte
/// stack buffer (RSA-1024 OAEP-SHA1 yields at most 86 bytes), must hold a NUL (spice-gtk sends
/// strlen + 1 bytes), and the bytes before it are compared in constant time. That is the
/// CVE-2013-4282 shape done right: no fixed 60-byte buffer, no reliance on a terminator.
/// </remarks>
internal sealed class TicketAuthority
{
    /// <summary>SPICE_MAX_PASSWORD_LENGTH: spice-gtk refuses longer passwords.</summary>
    public const int MaxPasswordBytes = 60;

    /// <summary>RSA_size of a 1024-bit key: the ticket is exactly this long.</summary>
    public const int TicketLength = 128;

    private readonly TimeProvider _time;
    private readonly Lock _gate = new();

    /// <summary>Password bytes (UTF-8, no NUL); null when none is set. Guarded by <see cref="_gate"/>.</summary>
    private byte[]? _password;

    /// <summary>When the password stops being accepted; null = never. Guarded by <see cref="_gate"/>.</summary>
    private DateTimeOffset? _expiresAt;

    /// <summary>True: tickets are read and ignored. Guarded by <see cref="_gate"/>.</summary>
    private bool _ticketingDisabled;

    public TicketAuthority(TimeProvider time) => _time = time;

    /// <summary>True when tickets are read but not checked (<c>--disable-ticketing</c>).</summary>
    public bool TicketingDisabled
    {
        get
        {
            lock (_gate)
            {
                return _ticketingDisabled;
            }
        }
    }

    /// <summary>Turns ticketing off: every ticket is accepted.</summary>
    public void DisableTicketing()
    {
        lock (_gate)
        {
            _ticketingDisabled = true;
        }
    }

    /// <summary>
    /// Sets the password (null clears it: with ticketing on, every link is then refused) and
    /// turns ticketing on, like QEMU's <c>set_password</c>. The expiry is reset to never.
    /// </summary>
    /// <exception cref="ArgumentException">Longer than 60 bytes in UTF-8, or contains a NUL.</exception>
    public void SetPassword(string? password)
    {
        var bytes = password is null ? null : Encode(password);
        lock (_gate)
        {
            _password = bytes;
            _expiresAt = null;
            _ticketingDisabled = false;
        }
    }

    /// <summary>The password expires at <paramref name="when"/> (null: never), like <c>expire_password</c>.</summary>
    public void ExpirePassword(DateTimeOffset? when)
    {
        lock (_gate)
        {
            _expiresAt = when;
        }
    }

    /// <summary>Password, expiry and ticketing switch at once, for the migration state.</summary>
    public TicketState Snapshot()
    {
        lock (_gate)
        {
            return new TicketState(_password?.ToArray(), _expiresAt, _ticketingDisabled);
        }
    }

    /// <summary>Takes over a <see cref="Snapshot"/> from a migration source.</summary>
    /// <exception cref="ArgumentException">The password is not a valid SPICE password.</exception>
    public void Restore(TicketState state)
    {
        if (state.Password is { } bytes && (bytes.Length > MaxPasswordBytes || Array.IndexOf(bytes, (byte)0) >= 0))
        {
            throw new ArgumentException($"a SPICE password is 0 to {MaxPasswordBytes} bytes without NUL");
        }

        lock (_gate)
        {
            _password = state.Password?.ToArray();
            _expiresAt = state.ExpiresAt;
            _ticketingDisabled = state.TicketingDisabled;
        }
    }

    /// <summary>Validates a password the way <see cref="SetPassword"/> will; returns its UTF-8 bytes.</summary>
    public static byte[] Encode(string password)
    {
        var bytes = Encoding.UTF8.GetBytes(password);
        if (bytes.Length > MaxPasswordBytes)
        {
            throw new ArgumentException($"a SPICE password is at most {MaxPasswordBytes} bytes (spice-gtk refuses longer ones); this one is {bytes.Length}", nameof(password));
        }

        if (Array.IndexOf(bytes, (byte)0) >= 0)
        {
            throw new ArgumentException("a SPICE password cannot contain a NUL byte", nameof(password));
        }

        return bytes;
    }

    /// <summary>
    /// Checks a 128-byte ticket encrypted to <paramref name="key"/>: OK or PERMISSION_DENIED.
    /// With ticketing disabled the ticket is not even decrypted.
    /// </summary>
    public SpiceLinkErr Check(ReadOnlySpan<byte> ticket, RSA key)
    {
        byte[]? password;
        DateTimeOffset? expiresAt;
        lock (_gate)
        {
            if (_ticketingDisabled)
            {
                return SpiceLinkErr.Ok;
            }

            password = _password;
            expiresAt = _expiresAt;
        }

        if (password is null || ticket.Length != TicketLength)
        {
            return SpiceLinkErr.PermissionDenied;
        }

        Span<byte> plain = stackalloc byte[TicketLength];
        int written;
        try
        {
            if (!key.TryDecrypt(ticket, plain, RSAEncryptionPadding.OaepSHA1, out written))
            {
                return SpiceLinkErr.PermissionDenied;
            }
        }
        catch (CryptographicException)
        {
            // OAEP padding check failed: not encrypted to this key, or garbage.
            return SpiceLinkErr.PermissionDenied;
        }

        var text = plain[..written];
        var nul = text.IndexOf((byte)0);
        var ok = nul >= 0 && CryptographicOperations.FixedTimeEquals(text[..nul], password);
        CryptographicOperations.ZeroMemory(plain);
        if (!ok)
        {
            return SpiceLinkErr.PermissionDenied;
        }

        // Expiry is checked after the password, as spice-server does: both give PERMISSION_DENIED.
        if (expiresAt is { } limit && _time.GetUtcNow() >= limit)
        {
            return SpiceLinkErr.PermissionDenied;
        }

        return SpiceLinkErr.Ok;
    }

    /// <summary>Client side: the ticket spice-gtk would send for <paramref name="password"/> (tests, benchmark).</summary>
    public static byte[] EncryptTicket(ReadOnlySpan<byte> publicKeyDer, ReadOnlySpan<byte> passwordWithNul)
    {
        using var rsa = RSA.Create();
        rsa.ImportSubjectPublicKeyInfo(publicKeyDer, out _);
        return rsa.Encrypt(passwordWithNul.ToArray(), RSAEncryptionPadding.OaepSHA1);
    }
}

/// <summary>The ticket settings as carried by migration: password bytes (null: none), expiry, ticketing switch.</summary>
internal sealed record TicketState(byte[]? Password, DateTimeOffset? ExpiresAt, bool TicketingDisabled);
