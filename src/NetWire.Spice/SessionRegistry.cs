using System.Collections.Concurrent;
using System.Security.Cryptography;
using NetWire.Spice.Channels.Main;

namespace NetWire.Spice;

/// <summary>
/// Live sessions by id (the connection_id of MAIN_INIT), for routing channel links and for
/// the migration core. Ids are random, non-zero and unique among live sessions.
/// </summary>
internal sealed class SessionRegistry
{
    private readonly ConcurrentDictionary<uint, SpiceSession> _sessions = new();

    /// <summary>Session ids the migration core announced as incoming; a main link with such an id is a migration target.</summary>
    private readonly ConcurrentDictionary<uint, byte> _expectedIncoming = new();

    /// <summary>Live sessions.</summary>
    public int Count => _sessions.Count;

    /// <summary>A snapshot of the live sessions.</summary>
    public IReadOnlyCollection<SpiceSession> Snapshot() => _sessions.Values.ToArray();

    /// <summary>A fresh random non-zero id not in use, reserved by adding <paramref name="create"/>'s session.</summary>
    public SpiceSession Add(Func<uint, SpiceSession> create)
    {
        while (true)
        {
            var id = (uint)RandomNumberGenerator.GetInt32(1, int.MaxValue) ^ ((uint)RandomNumberGenerator.GetInt32(0, 2) << 31);
            if (id == 0 || _sessions.ContainsKey(id) || _expectedIncoming.ContainsKey(id))
            {
                continue;
            }

            var session = create(id);
            if (_sessions.TryAdd(id, session))
            {
                return session;
            }
        }
    }

    /// <summary>Adds a session under an id chosen elsewhere (a migration target); false when it is taken.</summary>
    public bool TryAdd(SpiceSession session) => _sessions.TryAdd(session.SessionId, session);

    public bool TryGet(uint id, out SpiceSession? session) => _sessions.TryGetValue(id, out session);

    public void Remove(SpiceSession session) => _sessions.TryRemove(new KeyValuePair<uint, SpiceSession>(session.SessionId, session));

    /// <summary>For the migration core: a main link carrying <paramref name="id"/> will be accepted once.</summary>
    public void ExpectIncoming(uint id) => _expectedIncoming[id] = 0;

    /// <summary>
    /// Consumes an expected incoming id. Without one, a main link with a non-zero id is
    /// refused: spice-server adopts such ids unchecked, which lets a client pick its session id
    /// and park a session forever (protocol.md §7.1).
    /// </summary>
    public bool TryClaimIncoming(uint id) => _expectedIncoming.TryRemove(id, out _);
}
