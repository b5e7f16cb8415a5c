using System.Net;
using NetWire.Core.Net;
using NetWire.Core.Packets;
using Pdn = PacketDotNet;

namespace NetWire.Core.Tests.Packets;

/// <summary>
/// The IPv6, extension-header, ICMPv6, neighbour discovery and DHCPv6 views: what they write
/// reads back, agrees with PacketDotNet, and what contradicts the bytes is refused.
/// </summary>
public sealed class Ipv6PacketTests
{
    private static readonly IpAddr Guest = IpAddr.FromAddress(IPAddress.Parse("fd00::5054:ff:fe12:3456"));
    private static readonly IpAddr Router = IpAddr.FromAddress(IPAddress.Parse("fd00::2"));

    /// <summary>An IPv6 packet from <see cref="Guest"/> to <see cref="Router"/>: the fixed header, then <paramref name="payload"/>.</summary>
    private static byte[] Packet(IpProtocol nextHeader, ReadOnlySpan<byte> payload, byte hopLimit = 64)
    {
        var packet = new byte[Ipv6Packet.HeaderLength + payload.Length];
        new Ipv6Header(Guest, Router, nextHeader, payload.Length) { HopLimit = hopLimit }.WriteTo(packet);
        payload.CopyTo(packet.AsSpan(Ipv6Packet.HeaderLength));
        return packet;
    }

    /// <summary>An ICMPv6 echo request with 12 bytes of data, checksum over the pseudo-header.</summary>
    private static byte[] Echo()
    {
        var icmp = new byte[Icmpv6Packet.HeaderLength + 12];
        "hello, ipv6!"u8.CopyTo(icmp.AsSpan(Icmpv6Packet.HeaderLength));
        Icmpv6Header.Echo(Icmpv6Type.EchoRequest, 0x1234, 7).WriteTo(icmp, PseudoHeader.Create(Guest, Router, IpProtocol.Icmpv6));
        return icmp;
    }

    [Fact]
    public void Header_WrittenAndRead_AgreesWithPacketDotNet()
    {
        var packet = Packet(IpProtocol.Icmpv6, Echo(), hopLimit: 255);
        packet[1] |= 0x0a; // flow label 0xa0000 + traffic class stays 0
        Assert.True(Ipv6Packet.TryParse(packet, out var view));
        Assert.Equal(20, view.PayloadLength);
        Assert.Equal(IpProtocol.Icmpv6, view.NextHeader);
        Assert.Equal(255, view.HopLimit);
        Assert.Equal(Guest, view.Source);
        Assert.Equal(Router, view.Destination);
        Assert.Equal(0xa0000u, view.FlowLabel);

        var pdn = new Pdn.IPv6Packet(new PacketDotNet.Utils.ByteArraySegment(packet));
        Assert.Equal(IPAddress.Parse("fd00::5054:ff:fe12:3456"), pdn.SourceAddress);
        Assert.Equal(IPAddress.Parse("fd00::2"), pdn.DestinationAddress);
        Assert.Equal(20, pdn.PayloadLength);
        Assert.Equal(255, pdn.HopLimit);
        Assert.Equal((int)view.FlowLabel, pdn.FlowLabel);
        Assert.Equal(Pdn.ProtocolType.IcmpV6, pdn.NextHeader);

        Assert.True(Ipv6Header.TryParse(packet, out var header));
        var written = new byte[Ipv6Packet.HeaderLength];
        header.WriteTo(written);
        Assert.Equal(packet[..Ipv6Packet.HeaderLength], written);
    }

    [Fact]
    public void Icmpv6_ChecksumCoversThePseudoHeader()
    {
        var packet = Packet(IpProtocol.Icmpv6, Echo());
        Assert.True(Ipv6Packet.TryParse(packet, out var ip));
        Assert.True(Icmpv6Packet.TryParse(ip.Payload, out var icmp));
        Assert.Equal(Icmpv6Type.EchoRequest, icmp.Type);
        Assert.Equal(0x1234, icmp.Identifier);
        Assert.Equal(7, icmp.SequenceNumber);
        Assert.False(icmp.IsError);
        Assert.True(icmp.IsChecksumValid(ip.PseudoHeaderFor(IpProtocol.Icmpv6)));

        // The same message under another destination (the pseudo-header) no longer verifies.
        Assert.False(icmp.IsChecksumValid(PseudoHeader.Create(Guest, IpAddr.FromAddress(IPAddress.Parse("fd00::3")), IpProtocol.Icmpv6)));

        // PacketDotNet computes the same checksum from the packet.
        var pdn = new Pdn.IPv6Packet(new PacketDotNet.Utils.ByteArraySegment(packet));
        var pdnIcmp = pdn.Extract<Pdn.IcmpV6Packet>();
        Assert.Equal(icmp.Checksum, pdnIcmp.Checksum);
        pdnIcmp.UpdateIcmpChecksum();
        Assert.Equal(icmp.Checksum, pdnIcmp.Checksum);
    }

    [Theory]
    [InlineData(39)]
    [InlineData(0)]
    public void Packet_ShorterThanTheHeader_IsRefused(int length)
    {
        Assert.False(Ipv6Packet.TryParse(new byte[length], out _));
        Assert.False(Ipv6Packet.TryParseQuoted(new byte[length], out _));
    }

    [Fact]
    public void Packet_WithAContradictoryField_IsRefused()
    {
        var packet = Packet(IpProtocol.Udp, new byte[8]);
        packet[0] = 0x40; // version 4
        Assert.False(Ipv6Packet.TryParse(packet, out _));
        packet = Packet(IpProtocol.Udp, new byte[8]);
        packet[5] = 9; // payload length one past the bytes
        Assert.False(Ipv6Packet.TryParse(packet, out _));
        Assert.True(Ipv6Packet.TryParseQuoted(packet, out var quoted));
        Assert.Equal(8, quoted.Payload.Length);
    }

    [Fact]
    public void Packet_IsTrimmedToItsPayloadLength()
    {
        var packet = Packet(IpProtocol.Udp, new byte[8]).Concat(new byte[10]).ToArray();
        Assert.True(Ipv6Packet.TryParse(packet, out var view));
        Assert.Equal(48, view.Bytes.Length);
        Assert.Equal(8, view.Payload.Length);
    }

    [Fact]
    public void HeaderChain_WalksToTheUpperLayer()
    {
        // Hop-by-hop (router alert, PadN), routing type 2 with no segments left, destination options (Pad1s), then UDP.
        byte[] hopByHop = [(byte)IpProtocol.Ipv6Routing, 0, 0x05, 2, 0, 0, 1, 0];
        byte[] routing = [(byte)IpProtocol.Ipv6DestinationOptions, 2, 2, 0, 0, 0, 0, 0, .. new byte[16]];
        byte[] destination = [(byte)IpProtocol.Udp, 0, 0, 0, 0, 0, 0, 0];
        var packet = Packet(IpProtocol.Ipv6HopByHop, [.. hopByHop, .. routing, .. destination, .. new byte[8]]);
        Assert.True(Ipv6Packet.TryParse(packet, out var view));
        var chain = view.GetHeaderChain();

        Assert.True(chain.MoveNext());
        Assert.Equal(IpProtocol.Ipv6HopByHop, chain.Current.Type);
        var options = chain.Current.GetOptions();
        Assert.True(options.MoveNext());
        Assert.Equal(Ipv6OptionReader.RouterAlert, options.Type);
        Assert.Equal(0, options.UnknownAction);
        Assert.Equal([0, 0], options.Value.ToArray());
        Assert.False(options.MoveNext());
        Assert.False(options.IsMalformed);

        Assert.True(chain.MoveNext());
        Assert.Equal(IpProtocol.Ipv6Routing, chain.Current.Type);
        Assert.Equal(24, chain.Current.Bytes.Length);
        Assert.Equal(2, chain.Current.RoutingType);
        Assert.Equal(0, chain.Current.SegmentsLeft);

        Assert.True(chain.MoveNext());
        Assert.Equal(IpProtocol.Ipv6DestinationOptions, chain.Current.Type);
        options = chain.Current.GetOptions();
        Assert.False(options.MoveNext());
        Assert.False(options.IsMalformed);

        Assert.False(chain.MoveNext());
        Assert.False(chain.IsMalformed);
        Assert.Equal(3, chain.Count);
        Assert.Equal(IpProtocol.Udp, chain.UpperProtocol);
        Assert.Equal(8, chain.UpperPayload.Length);
    }

    [Fact]
    public void HeaderChain_FragmentHeader_ReadsItsFields()
    {
        byte[] fragment = [(byte)IpProtocol.Udp, 0, 0x05, 0xc9, 0xde, 0xad, 0xbe, 0xef];
        var packet = Packet(IpProtocol.Ipv6Fragment, [.. fragment, .. new byte[8]]);
        Assert.True(Ipv6Packet.TryParse(packet, out var view));
        var chain = view.GetHeaderChain();
        Assert.True(chain.MoveNext());
        Assert.Equal(IpProtocol.Ipv6Fragment, chain.Current.Type);
        Assert.Equal(0x5c8, chain.Current.FragmentOffset);
        Assert.True(chain.Current.MoreFragments);
        Assert.Equal(0xdeadbeefu, chain.Current.Identification);
        Assert.False(chain.MoveNext());
        Assert.Equal(IpProtocol.Udp, chain.UpperProtocol);
    }

    [Theory]
    [InlineData(4)] // shorter than 8 bytes
    [InlineData(8)] // says 16 bytes, has 8
    public void HeaderChain_PastThePayload_IsMalformed(int length)
    {
        var header = new byte[length];
        header[0] = (byte)IpProtocol.Udp;
        header[1] = 1;
        var packet = Packet(IpProtocol.Ipv6DestinationOptions, header);
        Assert.True(Ipv6Packet.TryParse(packet, out var view));
        var chain = view.GetHeaderChain();
        Assert.False(chain.MoveNext());
        Assert.True(chain.IsMalformed);
    }

    [Fact]
    public void HeaderChain_OfAThousandHeaders_EndsAfterEachOnce()
    {
        var payload = new byte[8 * 1000];
        for (var i = 0; i < 1000; i++)
        {
            payload[i * 8] = (byte)(i == 999 ? IpProtocol.Ipv6NoNextHeader : IpProtocol.Ipv6DestinationOptions);
        }

        Assert.True(Ipv6Packet.TryParse(Packet(IpProtocol.Ipv6DestinationOptions, payload), out var view));
        var chain = view.GetHeaderChain();
        while (chain.MoveNext())
        {
        }

        Assert.Equal(1000, chain.Count);
        Assert.False(chain.IsMalformed);
        Assert.Equal(IpProtocol.Ipv6NoNextHeader, chain.UpperProtocol);
    }

    [Fact]
    public void Options_JumboAndUnknown_AreReported()
    {
        byte[] options = [Ipv6OptionReader.JumboPayload, 4, 0, 1, 0, 0, 0x80, 0];
        var reader = new Ipv6OptionReader(options);
        Assert.True(reader.MoveNext());
        Assert.Equal(Ipv6OptionReader.JumboPayload, reader.Type);
        Assert.Equal(3, reader.UnknownAction);
        Assert.True(reader.MoveNext());
        Assert.Equal(0x80, reader.Type);
        Assert.Equal(2, reader.UnknownAction);
        Assert.False(reader.MoveNext());

        reader = new Ipv6OptionReader([0x1e, 9, 0, 0]);
        Assert.False(reader.MoveNext());
        Assert.True(reader.IsMalformed);
    }

    [Fact]
    public void Icmpv6Error_QuotesAnIpv6Packet()
    {
        var inner = Packet(IpProtocol.Udp, new byte[8]);
        var error = new byte[Icmpv6Packet.HeaderLength + inner.Length];
        inner.CopyTo(error, Icmpv6Packet.HeaderLength);
        new Icmpv6Header(Icmpv6Type.DestinationUnreachable, 4, 0).WriteTo(error, PseudoHeader.Create(Router, Guest, IpProtocol.Icmpv6));
        Assert.True(Icmpv6Packet.TryParse(error, out var icmp));
        Assert.True(icmp.IsError);
        Assert.True(icmp.TryGetQuotedPacket(out var quoted));
        Assert.Equal(Guest, quoted.Source);
        Assert.Equal(IpProtocol.Udp, quoted.NextHeader);

        error.AsSpan(Icmpv6Packet.HeaderLength).Fill(0x41);
        Assert.True(Icmpv6Packet.TryParse(error, out icmp));
        Assert.False(icmp.TryGetQuotedPacket(out _));
        Assert.False(Icmpv6Packet.TryParse(error.AsSpan(0, 7), out _));
    }

    [Fact]
    public void RouterAdvertisement_WrittenWithTheOptionWriter_ReadsBack()
    {
        var prefix = IpAddr.FromAddress(IPAddress.Parse("fd00::"));
        var message = new byte[16 + 8 + 8 + 32 + 24];
        message[0] = (byte)Icmpv6Type.RouterAdvertisement;
        message[4] = 64;
        message[5] = NdpFlags.OtherConfig;
        message[6] = 0x07;
        message[7] = 0x08;
        var writer = new NdpOptionWriter(message.AsSpan(16));
        writer.WriteLinkLayerAddress(NdpOptionType.SourceLinkLayerAddress, new MacAddress(0x52550a000202));
        writer.WriteMtu(1500);
        writer.WritePrefixInformation(prefix, 64, NdpFlags.OnLink | NdpFlags.Autonomous, 86_400, 14_400);
        writer.WriteRecursiveDnsServer(1800, IpAddr.FromAddress(IPAddress.Parse("fd00::3")));
        Assert.Equal(message.Length - 16, writer.Written);

        Assert.True(NdpMessage.TryParse(message, out var ra));
        Assert.Equal(64, ra.CurrentHopLimit);
        Assert.False(ra.ManagedFlag);
        Assert.True(ra.OtherConfigFlag);
        Assert.Equal(1800, ra.RouterLifetime);
        var options = ra.GetOptions();
        Assert.True(options.MoveNext());
        Assert.Equal(NdpOptionType.SourceLinkLayerAddress, options.Type);
        Assert.True(options.TryGetLinkLayerAddress(out var mac));
        Assert.Equal("52:55:0a:00:02:02", mac.ToString());
        Assert.True(options.MoveNext());
        Assert.Equal(NdpOptionType.Mtu, options.Type);
        Assert.Equal([0, 0, 0, 0, 0x05, 0xdc], options.Value.ToArray());
        Assert.True(options.MoveNext());
        Assert.Equal(NdpOptionType.PrefixInformation, options.Type);
        Assert.Equal(64, options.Value[0]);
        Assert.Equal(NdpFlags.OnLink | NdpFlags.Autonomous, options.Value[1]);
        Assert.Equal(prefix, IpAddr.FromIpv6(options.Value.Slice(14, 16)));
        Assert.True(options.MoveNext());
        Assert.Equal(NdpOptionType.RecursiveDnsServer, options.Type);
        Assert.Equal("fd00::3", IpAddr.FromIpv6(options.Value.Slice(6, 16)).ToString());
        Assert.False(options.MoveNext());
        Assert.False(options.IsMalformed);
    }

    [Fact]
    public void NdpOptions_OfLengthZero_AreMalformed()
    {
        var options = new NdpOptionReader([1, 0, 0, 0, 0, 0, 0, 0]);
        Assert.False(options.MoveNext());
        Assert.True(options.IsMalformed);
        options = new NdpOptionReader([1, 2, 0, 0, 0, 0, 0, 0]);
        Assert.False(options.MoveNext());
        Assert.True(options.IsMalformed);
    }

    [Theory]
    [InlineData(Icmpv6Type.RouterSolicitation, 8)]
    [InlineData(Icmpv6Type.RouterAdvertisement, 16)]
    [InlineData(Icmpv6Type.NeighborSolicitation, 24)]
    [InlineData(Icmpv6Type.NeighborAdvertisement, 24)]
    [InlineData(Icmpv6Type.Redirect, 40)]
    public void NdpMessage_ShorterThanItsFixedPart_IsRefused(Icmpv6Type type, int fixedLength)
    {
        var message = new byte[fixedLength];
        message[0] = (byte)type;
        Assert.True(NdpMessage.TryParse(message, out var view));
        Assert.Equal(0, view.Options.Length);
        Assert.False(NdpMessage.TryParse(message.AsSpan(0, fixedLength - 1), out _));
        message[0] = (byte)Icmpv6Type.EchoRequest;
        Assert.False(NdpMessage.TryParse(message, out _));
    }

    [Fact]
    public void Dhcpv6_OptionsWriteAndReadBack()
    {
        var message = new byte[Dhcpv6Packet.HeaderLength + 14 + 20 + 12];
        message[0] = (byte)Dhcpv6MessageType.Reply;
        message[1] = 0xab;
        message[2] = 0xcd;
        message[3] = 0xef;
        var writer = new Dhcpv6OptionWriter(message.AsSpan(Dhcpv6Packet.HeaderLength));
        writer.WriteLinkLayerDuid(Dhcpv6OptionCode.ServerId, new MacAddress(0x52550a000202));
        writer.Write(Dhcpv6OptionCode.DnsServers, IpAddr.FromAddress(IPAddress.Parse("fd00::3")));
        writer.Write(Dhcpv6OptionCode.ClientId, [0, 3, 0, 1, 2, 3, 4, 5]);
        Assert.Equal(message.Length - Dhcpv6Packet.HeaderLength, writer.Written);

        Assert.True(Dhcpv6Packet.TryParse(message, out var view));
        Assert.Equal(Dhcpv6MessageType.Reply, view.MessageType);
        Assert.Equal(0xabcdefu, view.TransactionId);
        var options = view.GetOptions();
        Assert.True(options.MoveNext());
        Assert.Equal(Dhcpv6OptionCode.ServerId, options.Code);
        Assert.Equal([0, 3, 0, 1, 0x52, 0x55, 0x0a, 0, 2, 2], options.Value.ToArray());
        Assert.True(options.MoveNext());
        Assert.Equal(Dhcpv6OptionCode.DnsServers, options.Code);
        Assert.Equal("fd00::3", IpAddr.FromIpv6(options.Value).ToString());
        Assert.True(options.MoveNext());
        Assert.Equal(Dhcpv6OptionCode.ClientId, options.Code);
        Assert.False(options.MoveNext());
        Assert.False(options.IsMalformed);

        var truncated = new Dhcpv6OptionReader([0, 1, 0, 9, 1, 2]);
        Assert.False(truncated.MoveNext());
        Assert.True(truncated.IsMalformed);
        Assert.False(Dhcpv6Packet.TryParse([11, 0, 0], out _));
    }
}
