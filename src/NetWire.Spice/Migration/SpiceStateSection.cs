using NetWire.Core.State;
using NetWire.Spice.Link;

namespace NetWire.Spice.Migration;

/// <summary>
/// State section <c>spice</c>: the ticket settings (password, expiry, ticketing switch) and
/// the session ids of the clients that are moving to the target.
/// </summary>
/// <remarks>
/// Layout: u8 ticketing disabled, u8 has password, [bytes password], u8 has expiry,
/// [i64 expiry in Unix ms], u32 n, n × u32 session id. On the target, a client migrating in
/// whose id is not in the adopted list is refused at its MIGRATE_END.
/// </remarks>
internal sealed class SpiceStateSection : IStateSection
{
    /// <summary>Most session ids one stream may carry.</summary>
    public const int MaxSessions = 4096;

    private readonly SpiceServer _server;
    private readonly Lock _gate = new();
    private HashSet<uint> _adoptedSessions = [];

    public SpiceStateSection(SpiceServer server) => _server = server;

    public string Name => "spice";

    /// <summary>True when a session id came with the adopted state.</summary>
    public bool WasAdopted(uint sessionId)
    {
        lock (_gate)
        {
            return _adoptedSessions.Contains(sessionId);
        }
    }

    public void Write(StateSectionWriter writer)
    {
        var tickets = _server.Tickets.Snapshot();
        writer.WriteBool(tickets.TicketingDisabled);
        writer.WriteBool(tickets.Password is not null);
        if (tickets.Password is { } password)
        {
            writer.WriteBytes(password);
        }

        writer.WriteBool(tickets.ExpiresAt is not null);
        if (tickets.ExpiresAt is { } when)
        {
            writer.WriteInt64(when.ToUnixTimeMilliseconds());
        }

        var moving = _server.Sessions.Snapshot().Where(s => s.MigrationState == MigrationClientState.Connected).Select(s => s.SessionId).ToArray();
        writer.WriteUInt32((uint)moving.Length);
        foreach (var id in moving)
        {
            writer.WriteUInt32(id);
        }
    }

    public Action Read(StateSectionReader reader)
    {
        var disabled = reader.ReadBool();
        var password = reader.ReadBool() ? reader.ReadBytes(TicketAuthority.MaxPasswordBytes) : null;
        if (password is not null && Array.IndexOf(password, (byte)0) >= 0)
        {
            throw reader.Error("password contains a NUL");
        }

        DateTimeOffset? expires = null;
        if (reader.ReadBool())
        {
            var ms = reader.ReadInt64();
            if (ms is < -62135596800000 or > 253402300799999)
            {
                throw reader.Error($"password expiry {ms} ms is out of range");
            }

            expires = DateTimeOffset.FromUnixTimeMilliseconds(ms);
        }

        var count = reader.ReadCount(MaxSessions, 4);
        var ids = new HashSet<uint>();
        for (var i = 0; i < count; i++)
        {
            ids.Add(reader.ReadUInt32());
        }

        var tickets = new TicketState(password, expires, disabled);
        return () =>
        {
            _server.Tickets.Restore(tickets);
            lock (_gate)
            {
                _adoptedSessions = ids;
            }
        };
    }
}
