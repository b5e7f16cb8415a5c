using NetWire.Core.Packets;

namespace NetWire.Core.Tests.Packets;

/// <summary>Headers whose fields contradict the bytes: each view refuses them with false.</summary>
public sealed class MalformedPacketTests
{
    private static byte[] Ipv4(int payloadLength)
    {
        var packet = new byte[Ipv4Packet.MinHeaderLength + payloadLength];
        new Ipv4Header(0x0A00020F, 0x0A000202, IpProtocol.Udp, payloadLength).WriteTo(packet);
        return packet;
    }

    [Theory]
    [InlineData(0, 0x65)] // version 6
    [InlineData(0, 0x44)] // IHL 4: shorter than the fixed header
    [InlineData(0, 0x4f)] // IHL 15: 60 bytes, past the packet
    [InlineData(2, 0x00)] // total length 0x0008: shorter than the header
    [InlineData(2, 0x7f)] // total length 0x7f08: past the bytes
    public void Ipv4_WithAContradictoryField_IsRefused(int offset, byte value)
    {
        var packet = Ipv4(8);
        packet[offset] = value;
        if (offset == 2)
        {
            packet[3] = 8;
        }

        Assert.False(Ipv4Packet.TryParse(packet, out _));
        Assert.False(Ipv4Header.TryParse(packet, out _));
    }

    [Fact]
    public void Ipv4_WithOptions_HasThemBetweenHeaderAndPayload()
    {
        var packet = new byte[28];
        new Ipv4Header(1, 2, IpProtocol.Icmp, 8).WriteTo(packet);
        packet[0] = 0x46;
        packet[20] = 1;
        Assert.True(Ipv4Packet.TryParse(packet, out var view));
        Assert.Equal(24, view.HeaderLength);
        Assert.Equal([1, 0, 0, 0], view.Options.ToArray());
        Assert.Equal(4, view.Payload.Length);
    }

    [Fact]
    public void Ipv4_FragmentFields_ReadAsWritten()
    {
        var packet = new byte[Ipv4Packet.MinHeaderLength];
        new Ipv4Header(1, 2, IpProtocol.Udp, 0) { DontFragment = false, MoreFragments = true, FragmentOffset = 1480 }.WriteTo(packet);
        Assert.True(Ipv4Packet.TryParse(packet, out var view));
        Assert.False(view.DontFragment);
        Assert.True(view.MoreFragments);
        Assert.Equal(1480, view.FragmentOffset);
        Assert.True(view.IsFragment);
        Assert.True(view.IsHeaderChecksumValid);
    }

    [Theory]
    [InlineData(0x40)] // data offset 4
    [InlineData(0x00)] // data offset 0
    [InlineData(0x60)] // data offset 6: 24 bytes, past a 20-byte segment
    public void Tcp_WithABadDataOffset_IsRefused(byte dataOffset)
    {
        var segment = new byte[TcpPacket.MinHeaderLength];
        new TcpHeader(1, 2, 3, 4, TcpFlags.Ack, 5).WriteTo(segment, PseudoHeader.Ipv4(1, 2, IpProtocol.Tcp));
        segment[12] = dataOffset;
        Assert.False(TcpPacket.TryParse(segment, out _));
        Assert.False(TcpHeader.TryParse(segment, out _));
    }

    [Theory]
    [InlineData(7)]
    [InlineData(0)]
    [InlineData(13)]
    public void Udp_WithALengthFieldOutsideHeaderAndBytes_IsRefused(int length)
    {
        var datagram = new byte[12];
        new UdpHeader(1, 2).WriteTo(datagram, PseudoHeader.Ipv4(1, 2, IpProtocol.Udp));
        datagram[4] = (byte)(length >> 8);
        datagram[5] = (byte)length;
        Assert.False(UdpPacket.TryParse(datagram, out _));
    }

    [Fact]
    public void Udp_IsTrimmedToItsLengthField_AndAZeroChecksumIsNotValid()
    {
        var datagram = new byte[20];
        new UdpHeader(5353, 53).WriteTo(datagram.AsSpan(0, 12), PseudoHeader.Ipv4(1, 2, IpProtocol.Udp));
        Assert.True(UdpPacket.TryParse(datagram, out var view));
        Assert.Equal(12, view.Bytes.Length);
        Assert.Equal(4, view.Payload.Length);
        Assert.True(view.IsChecksumValid(PseudoHeader.Ipv4(1, 2, IpProtocol.Udp)));
        Assert.False(view.IsChecksumValid(PseudoHeader.Ipv4(1, 3, IpProtocol.Udp)));
        datagram[6] = 0;
        datagram[7] = 0;
        Assert.True(UdpPacket.TryParse(datagram, out view));
        Assert.Equal(0, view.Checksum);
        Assert.False(view.IsChecksumValid(PseudoHeader.Ipv4(1, 2, IpProtocol.Udp)));
    }

    [Theory]
    [InlineData(0, 0x00)] // hardware type 0x0006 (IEEE 802) is not Ethernet
    [InlineData(2, 0x86)] // protocol type 0x86dd
    [InlineData(4, 8)]    // hardware address length 8
    [InlineData(5, 16)]   // protocol address length 16
    public void Arp_NotForEthernetAndIpv4_IsRefused(int offset, byte value)
    {
        var packet = new byte[ArpPacket.Length];
        new ArpHeader(ArpOperation.Request, new MacAddress(0x020000000001), 1, default, 2).WriteTo(packet);
        packet[offset] = value;
        if (offset == 0)
        {
            packet[1] = 6;
        }

        Assert.False(ArpPacket.TryParse(packet, out _));
    }

    [Fact]
    public void Dhcp_WithoutTheMagicCookie_IsRefused()
    {
        var message = new byte[DhcpPacket.OptionsOffset + 1];
        new DhcpHeader(DhcpPacket.BootRequest, 7, new MacAddress(0x020000000001)).WriteTo(message);
        message[^1] = (byte)DhcpOptionCode.End;
        Assert.True(DhcpPacket.TryParse(message, out _));
        message[DhcpPacket.BootpLength] = 0;
        Assert.False(DhcpPacket.TryParse(message, out _));
        Assert.False(DhcpHeader.TryParse(message, out _));
    }

    [Theory]
    [InlineData(new byte[] { 53, 1 })]          // the value runs past the bytes
    [InlineData(new byte[] { 0, 0, 53 })]       // a code with no length
    [InlineData(new byte[] { 53, 1, 1, 50, 4, 10, 0, 2 })]
    public void DhcpOptions_RunningPastTheBytes_StopAsMalformed(byte[] options)
    {
        var reader = new DhcpOptionReader(options);
        while (reader.MoveNext())
        {
            Assert.Equal(DhcpOptionCode.MessageType, reader.Code);
        }

        Assert.True(reader.IsMalformed);
    }

    [Fact]
    public void DhcpOptions_SkipPads_AndStopAtEnd()
    {
        byte[] options = [0, 0, 53, 1, 3, 0, 50, 4, 10, 0, 2, 15, 255, 53, 1, 7];
        var reader = new DhcpOptionReader(options);
        Assert.True(reader.MoveNext());
        Assert.Equal(DhcpOptionCode.MessageType, reader.Code);
        Assert.Equal([3], reader.Value.ToArray());
        Assert.True(reader.MoveNext());
        Assert.Equal(DhcpOptionCode.RequestedAddress, reader.Code);
        Assert.Equal([10, 0, 2, 15], reader.Value.ToArray());
        Assert.False(reader.MoveNext());
        Assert.False(reader.IsMalformed);
        Assert.False(reader.MoveNext());
    }

    [Fact]
    public void IcmpError_QuotesThePacketItIsAbout()
    {
        // A port unreachable quoting a UDP datagram's header and first 8 bytes (RFC 792).
        var original = Ipv4(100);
        var message = new byte[IcmpPacket.HeaderLength + Ipv4Packet.MinHeaderLength + 8];
        original.AsSpan(0, Ipv4Packet.MinHeaderLength + 8).CopyTo(message.AsSpan(IcmpPacket.HeaderLength));
        new IcmpHeader(IcmpType.DestinationUnreachable, 3, 0).WriteTo(message);
        Assert.True(IcmpPacket.TryParse(message, out var icmp));
        Assert.True(icmp.IsChecksumValid);
        Assert.True(icmp.IsError);
        Assert.True(icmp.TryGetQuotedPacket(out var quoted));
        Assert.Equal(0x0A00020Fu, quoted.Source);
        Assert.Equal(IpProtocol.Udp, quoted.Protocol);
        Assert.Equal(8, quoted.Payload.Length);
        Assert.Equal(120, quoted.TotalLength);

        // A quote cut inside the IP header is not a packet.
        Assert.True(IcmpPacket.TryParse(message.AsSpan(0, IcmpPacket.HeaderLength + 12), out icmp));
        Assert.False(icmp.TryGetQuotedPacket(out _));
    }

    [Fact]
    public void IcmpEcho_QuotesNothing_AndFragmentationNeededCarriesTheMtu()
    {
        var echo = new byte[12];
        IcmpHeader.Echo(IcmpType.EchoRequest, 0xbeef, 3).WriteTo(echo);
        Assert.True(IcmpPacket.TryParse(echo, out var icmp));
        Assert.Equal((0xbeef, 3), (icmp.Identifier, icmp.SequenceNumber));
        Assert.False(icmp.IsError);
        Assert.False(icmp.TryGetQuotedPacket(out _));

        var tooBig = new byte[IcmpPacket.HeaderLength + Ipv4Packet.MinHeaderLength + 8];
        new IcmpHeader(IcmpType.DestinationUnreachable, 4, 1400).WriteTo(tooBig);
        Assert.True(IcmpPacket.TryParse(tooBig, out icmp));
        Assert.Equal(1400, icmp.NextHopMtu);
    }

    [Fact]
    public void DnsHeader_FlagsReadAsWritten()
    {
        var message = new byte[DnsPacket.HeaderLength];
        new DnsHeader(0xabcd, 0x8183, 1, 0, 1, 0).WriteTo(message);
        Assert.True(DnsPacket.TryParse(message, out var dns));
        Assert.True(dns.IsResponse);
        Assert.Equal(0, dns.Opcode);
        Assert.Equal(3, dns.ResponseCode);
        Assert.Equal((1, 0, 1, 0), (dns.QuestionCount, dns.AnswerCount, dns.AuthorityCount, dns.AdditionalCount));
        Assert.True(DnsHeader.TryParse(message, out var header));
        Assert.Equal(new DnsHeader(0xabcd, 0x8183, 1, 0, 1, 0), header);
    }
}
