using System.Buffers.Binary;
using System.Net;
using Microsoft.Extensions.Logging.Abstractions;
using NetWire.Core.State;
using NetWire.Spice;
using NetWire.Spice.Link;

namespace NetWire.Control.Tests.State;

/// <summary>The appliance state stream: round trip, versions, and every kind of bad input.</summary>
public sealed class StateStreamTests
{
    [Fact]
    public void RoundTrip_EveryFieldKind_ComesBackInOrder()
    {
        var section = new Sample("sample.one") { Text = "héllo", Number = 0xDEADBEEF, Big = -42, Flag = true, Blob = [1, 2, 3] };
        var bytes = StateStream.Build([section, new Sample("b-2_x") { Text = null }]);
        Assert.Equal("NWST"u8.ToArray(), bytes[..4]);
        Assert.Equal(StateStream.CurrentVersion, BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(4)));

        var document = StateStream.Parse(bytes);
        Assert.Equal(["sample.one", "b-2_x"], document.Sections.Select(s => s.Name));
        Assert.Equal(bytes.Length, document.Length);

        var copy = new Sample("sample.one");
        var second = new Sample("b-2_x") { Text = "not null" };
        var registry = new StateRegistry();
        registry.Register(copy);
        registry.Register(second);
        var adoption = registry.Adopt(document);
        Assert.Equal(["sample.one", "b-2_x"], adoption.Adopted);
        Assert.Equal(("héllo", 0xDEADBEEFu, -42L, true), (copy.Text, copy.Number, copy.Big, copy.Flag));
        Assert.Equal([1, 2, 3], copy.Blob);
        Assert.Null(second.Text);
    }

    [Fact]
    public void EveryTruncation_IsRefusedWithAnOffset()
    {
        var bytes = StateStream.Build([new Sample("a") { Text = "x" }, new Sample("b")]);
        for (var length = 0; length < bytes.Length; length++)
        {
            var ex = Assert.Throws<StateFormatException>(() => StateStream.Parse(bytes[..length]));
            Assert.True(ex.Message.Contains("offset", StringComparison.Ordinal) || ex.Message.Contains("not a NetWire", StringComparison.Ordinal), ex.Message);
        }
    }

    [Fact]
    public void EveryFlippedByte_IsRefused()
    {
        var bytes = StateStream.Build([new Sample("a") { Text = "some text" }]);
        for (var i = 0; i < bytes.Length; i++)
        {
            var bad = bytes.ToArray();
            bad[i] ^= 0x5A;
            Assert.Throws<StateFormatException>(() => StateStream.Parse(bad));
        }
    }

    [Theory]
    [InlineData(9, 9, "needs a reader of version 9")]
    [InlineData(0, 0, "inconsistent")]
    [InlineData(1, 2, "inconsistent")]
    public void UnreadableVersions_AreRefusedFromTheHeader(ushort version, ushort oldest, string expected)
    {
        var bytes = StateStream.Build([new Sample("a")], version, oldest);
        var ex = Assert.Throws<StateFormatException>(() => StateStream.CheckHeader(bytes));
        Assert.Contains(expected, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void NewerStreamThatOlderReadersMayRead_IsAccepted()
    {
        var bytes = StateStream.Build([new Sample("a")], version: 5, oldestCompatible: StateStream.CurrentVersion);
        Assert.Equal(5, StateStream.Parse(bytes).Version);
    }

    [Fact]
    public void HugeAnnouncedSection_IsRefusedBeforeAllocating()
    {
        var bytes = Header().Concat(new byte[] { 1, (byte)'a' }).Concat(BitConverter.GetBytes(uint.MaxValue)).ToArray();
        var ex = Assert.Throws<StateFormatException>(() => StateStream.Parse(bytes));
        Assert.Contains("over the limit", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("A")]
    [InlineData("a b")]
    [InlineData("a\0")]
    public void BadSectionNames_AreRefused(string name)
    {
        var raw = System.Text.Encoding.Latin1.GetBytes(name);
        var bytes = Header().Append((byte)raw.Length).Concat(raw).Concat(new byte[4]).ToArray();
        Assert.Throws<StateFormatException>(() => StateStream.Parse(bytes));
        Assert.Throws<ArgumentException>(() => new StateRegistry().Register(new Sample(name)));
    }

    [Fact]
    public void DuplicateSections_AreRefused()
    {
        Assert.Throws<ArgumentException>(() => StateStream.Build([new Sample("a"), new Sample("a")]));
        var one = StateStream.Build([new Sample("a")]);
        var section = one[8..^33];
        var doubled = Header().Concat(section).Concat(section).Append((byte)0).ToArray();
        doubled = [.. doubled, .. System.Security.Cryptography.SHA256.HashData(doubled)];
        var ex = Assert.Throws<StateFormatException>(() => StateStream.Parse(doubled));
        Assert.Contains("repeated", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void UnknownSections_AreSkippedAndReported()
    {
        var registry = new StateRegistry();
        var known = new Sample("known");
        registry.Register(known);
        var adoption = registry.Adopt(StateStream.Parse(StateStream.Build([new Sample("future.part"), new Sample("known") { Text = "t" }])));
        Assert.Equal(["known"], adoption.Adopted);
        Assert.Equal(["future.part"], adoption.Unknown);
        Assert.Equal("t", known.Text);
    }

    [Fact]
    public void AMalformedSection_AppliesNothing_NotEvenTheGoodOnes()
    {
        var registry = new StateRegistry();
        var good = new Sample("good");
        registry.Register(good);
        registry.Register(new Sample("short"));
        var bytes = StateStream.Build([new Sample("good") { Text = "new" }, new RawSection("short", [1, 2])]);
        var ex = Assert.Throws<StateFormatException>(() => registry.Adopt(StateStream.Parse(bytes)));
        Assert.Contains("section 'short': truncated", ex.Message, StringComparison.Ordinal);
        Assert.Equal("initial", good.Text);
    }

    [Fact]
    public async Task SpiceSection_CarriesTickets_AndRejectsHostileContent()
    {
        var sourceTickets = new TicketAuthority(TimeProvider.System);
        sourceTickets.SetPassword("pässword");
        sourceTickets.ExpirePassword(DateTimeOffset.FromUnixTimeSeconds(4_000_000_000));
        await using var source = new SpiceServer(new SpiceServerOptions { EndPoint = new IPEndPoint(IPAddress.Loopback, 0) }, sourceTickets, NullLoggerFactory.Instance);
        var targetTickets = new TicketAuthority(TimeProvider.System);
        targetTickets.DisableTicketing();
        await using var target = new SpiceServer(new SpiceServerOptions { EndPoint = new IPEndPoint(IPAddress.Loopback, 0) }, targetTickets, NullLoggerFactory.Instance);
        var registry = new StateRegistry();
        registry.Register(target.StateSection);

        registry.Adopt(StateStream.Parse(StateStream.Build([source.StateSection])));
        var adopted = targetTickets.Snapshot();
        Assert.False(adopted.TicketingDisabled);
        Assert.Equal("pässword"u8.ToArray(), adopted.Password);
        Assert.Equal(DateTimeOffset.FromUnixTimeSeconds(4_000_000_000), adopted.ExpiresAt);

        // A 61-byte password, a NUL in it, a bad boolean, a session count past the end.
        byte[][] hostile =
        [
            [0, 1, 61, 0, 0, 0, .. new byte[61], 0, 0, 0, 0, 0],
            [0, 1, 2, 0, 0, 0, (byte)'a', 0, 0, 0, 0, 0, 0],
            [2, 0, 0, 0, 0, 0, 0],
            [0, 0, 0, 0xFF, 0xFF, 0, 0],
        ];
        foreach (var data in hostile)
        {
            Assert.Throws<StateFormatException>(() => registry.Adopt(StateStream.Parse(StateStream.Build([new RawSection("spice", data)]))));
        }

        Assert.Equal("pässword"u8.ToArray(), targetTickets.Snapshot().Password);
    }

    private static byte[] Header()
    {
        var header = new byte[8];
        "NWST"u8.CopyTo(header);
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(4), 1);
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(6), 1);
        return header;
    }

    private sealed class Sample(string name) : IStateSection
    {
        public string Name => name;

        public string? Text { get; set; } = "initial";

        public uint Number { get; set; }

        public long Big { get; set; }

        public bool Flag { get; set; }

        public byte[] Blob { get; set; } = [];

        public void Write(StateSectionWriter writer)
        {
            writer.WriteString(Text);
            writer.WriteUInt32(Number);
            writer.WriteInt64(Big);
            writer.WriteBool(Flag);
            writer.WriteBytes(Blob);
            writer.WriteUInt16(7);
            writer.WriteByte(9);
        }

        public Action Read(StateSectionReader reader)
        {
            var text = reader.ReadString(1024);
            var number = reader.ReadUInt32();
            var big = reader.ReadInt64();
            var flag = reader.ReadBool();
            var blob = reader.ReadBytes(16);
            if (reader.ReadUInt16() != 7 || reader.ReadByte() != 9)
            {
                throw reader.Error("trailer");
            }

            return () => (Text, Number, Big, Flag, Blob) = (text, number, big, flag, blob);
        }
    }

    private sealed class RawSection(string name, byte[] data) : IStateSection
    {
        public string Name => name;

        public void Write(StateSectionWriter writer)
        {
            foreach (var b in data)
            {
                writer.WriteByte(b);
            }
        }

        public Action Read(StateSectionReader reader) => () => { };
    }
}
