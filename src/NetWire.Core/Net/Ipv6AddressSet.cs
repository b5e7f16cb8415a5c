using System.Net;

namespace NetWire.Core.Net;

/// <summary>
/// The guest's IPv6 addresses as learned from what it sends: at most <see cref="Capacity"/>,
/// the first one kept (the address a host forward reaches), the later ones replacing each other
/// oldest first (a guest with privacy addresses, RFC 8981, makes new ones every day).
/// </summary>
/// <remarks>
/// One writer at a time (the link's receive loop, or the gateway under its lock) calls
/// <see cref="Learn"/>; its check for a known address reads without the lock, as only writers
/// change the entries. Readers from other threads (status, control) take the lock. Learning a
/// known address allocates nothing and takes no lock.
/// </remarks>
public sealed class Ipv6AddressSet
{
    /// <summary>Addresses kept.</summary>
    public const int Capacity = 4;

    private readonly IpAddr[] _addresses = new IpAddr[Capacity];
    private readonly Lock _lock = new();

    /// <summary>Entries in use; written under <see cref="_lock"/>.</summary>
    private int _count;

    /// <summary>The slot the next new address replaces once full (1 to <see cref="Capacity"/> - 1); written under <see cref="_lock"/>.</summary>
    private int _nextReplaced = 1;

    /// <summary>The first address learned, or :: when none.</summary>
    public IpAddr First
    {
        get
        {
            lock (_lock)
            {
                return _count == 0 ? IpAddr.Ipv6Unspecified : _addresses[0];
            }
        }
    }

    /// <summary>Adds <paramref name="address"/> unless it is known; true when it was new.</summary>
    public bool Learn(IpAddr address)
    {
        var count = Volatile.Read(ref _count);
        for (var i = 0; i < count; i++)
        {
            if (_addresses[i] == address)
            {
                return false;
            }
        }

        lock (_lock)
        {
            if (_count < Capacity)
            {
                _addresses[_count] = address;
                Volatile.Write(ref _count, _count + 1);
                return true;
            }

            _addresses[_nextReplaced] = address;
            _nextReplaced = _nextReplaced == Capacity - 1 ? 1 : _nextReplaced + 1;
            return true;
        }
    }

    /// <summary>Makes <paramref name="address"/> the first (an address configured for the guest, as <c>netwire run</c> does).</summary>
    public void SetFirst(IpAddr address)
    {
        lock (_lock)
        {
            for (var i = 0; i < _count; i++)
            {
                if (_addresses[i] == address)
                {
                    (_addresses[0], _addresses[i]) = (_addresses[i], _addresses[0]);
                    return;
                }
            }

            if (_count < Capacity)
            {
                _addresses[_count] = _count == 0 ? address : _addresses[0];
                _addresses[0] = address;
                Volatile.Write(ref _count, _count + 1);
                return;
            }

            _addresses[0] = address;
        }
    }

    /// <summary>The addresses as <see cref="IPAddress"/> values, first first (allocates).</summary>
    public IReadOnlyList<IPAddress> ToList()
    {
        lock (_lock)
        {
            var list = new IPAddress[_count];
            for (var i = 0; i < list.Length; i++)
            {
                list[i] = _addresses[i].ToIPAddress();
            }

            return list;
        }
    }
}
