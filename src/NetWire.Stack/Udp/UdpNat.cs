using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using NetWire.Stack.Ipv4;

namespace NetWire.Stack.Udp;

/// <summary>
/// UDP NAT: each (guest port, destination) pair is a flow with its own connected host socket.
/// Datagrams to 10.0.2.3:53 go to the upstream resolver; to the gateway address, to host
/// loopback when allowed. Replies come back from the address the guest sent to. A flow closes
/// after its idle timeout (shorter for DNS); the table is bounded.
/// </summary>
internal sealed class UdpNat(Gateway gateway)
{
    private readonly Dictionary<FlowKey, UdpFlow> _flows = [];
    private readonly List<FlowKey> _expired = [];
    private IPEndPoint? _dnsUpstream;
    private bool _dnsResolved;

    public int Count => _flows.Count;

    /// <summary>One UDP datagram from the guest. Caller holds the gateway lock.</summary>
    public void OnDatagram(uint source, uint destination, ReadOnlySpan<byte> udp)
    {
        if (udp.Length < 8)
        {
            gateway.Counters.Drop(StackDrop.BadLength);
            return;
        }

        var length = BinaryPrimitives.ReadUInt16BigEndian(udp[4..]);
        if (length < 8 || length > udp.Length)
        {
            gateway.Counters.Drop(StackDrop.BadLength);
            return;
        }

        udp = udp[..length];
        if (BinaryPrimitives.ReadUInt16BigEndian(udp[6..]) != 0
            && !Checksum.IsValid(Checksum.Add(Checksum.AddPseudoHeader(0, source, destination, Gateway.ProtocolUdp, length), udp)))
        {
            gateway.Counters.Drop(StackDrop.BadChecksum);
            return;
        }

        var sourcePort = BinaryPrimitives.ReadUInt16BigEndian(udp);
        var destinationPort = BinaryPrimitives.ReadUInt16BigEndian(udp[2..]);
        if (destinationPort == 67)
        {
            if (destination == 0xffffffff || destination == gateway.GatewayIp)
            {
                gateway.Dhcp.OnRequest(udp[8..]);
            }
            else
            {
                gateway.Counters.Drop(StackDrop.Ignored);
            }

            return;
        }

        if (source == 0)
        {
            gateway.Counters.Drop(StackDrop.BadAddress);
            return;
        }

        var key = new FlowKey(source, sourcePort, destination, destinationPort);
        if (!_flows.TryGetValue(key, out var flow))
        {
            if (!TryResolve(destination, destinationPort, out var target, out var refusal))
            {
                gateway.Counters.Drop(refusal);
                return;
            }

            if (_flows.Count >= gateway.Options.MaxUdpFlows)
            {
                gateway.Counters.Drop(StackDrop.UdpFlowLimit);
                return;
            }

            var isDns = destination == gateway.DnsIp;
            flow = new UdpFlow(gateway, key, target, isDns ? gateway.Options.DnsIdleTimeout : gateway.Options.UdpIdleTimeout);
            _flows.Add(key, flow);
            gateway.Counters.UdpFlow();
            flow.Start();
        }

        flow.Send(udp[8..], gateway.NowMs);
    }

    private bool TryResolve(uint destination, ushort port, out IPEndPoint target, out StackDrop refusal)
    {
        target = null!;
        if (destination == gateway.DnsIp)
        {
            refusal = StackDrop.NoDnsServer;
            if (port != 53 || DnsUpstream() is not { } upstream)
            {
                return false;
            }

            target = upstream;
            return true;
        }

        if (!gateway.TryMapDestination(destination, out var address, out refusal))
        {
            return false;
        }

        target = new IPEndPoint(address, port);
        return true;
    }

    /// <summary>The configured resolver, else the first IPv4 nameserver in /etc/resolv.conf.</summary>
    private IPEndPoint? DnsUpstream()
    {
        if (gateway.Options.DnsUpstream is { } configured)
        {
            return configured;
        }

        if (!_dnsResolved)
        {
            _dnsResolved = true;
            try
            {
                foreach (var line in File.ReadLines("/etc/resolv.conf"))
                {
                    var parts = line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
                    if (parts.Length >= 2 && parts[0] == "nameserver" && IPAddress.TryParse(parts[1], out var address)
                        && address.AddressFamily == AddressFamily.InterNetwork)
                    {
                        _dnsUpstream = new IPEndPoint(address, 53);
                        break;
                    }
                }
            }
            catch (IOException)
            {
            }
            catch (UnauthorizedAccessException)
            {
            }
        }

        return _dnsUpstream;
    }

    /// <summary>Closes idle flows. Caller holds the gateway lock.</summary>
    public void OnTimer(long nowMs)
    {
        foreach (var (key, flow) in _flows)
        {
            if (flow.IsClosed || nowMs - flow.LastUsedMs > flow.IdleTimeoutMs)
            {
                _expired.Add(key);
            }
        }

        foreach (var key in _expired)
        {
            _flows.Remove(key, out var flow);
            flow?.Close();
        }

        _expired.Clear();
    }

    public void CloseAll()
    {
        foreach (var flow in _flows.Values)
        {
            flow.Close();
        }

        _flows.Clear();
    }
}

/// <summary>A UDP flow as the guest sees it: its address and port, and where it sent to.</summary>
internal readonly record struct FlowKey(uint GuestIp, ushort GuestPort, uint RemoteIp, ushort RemotePort);
