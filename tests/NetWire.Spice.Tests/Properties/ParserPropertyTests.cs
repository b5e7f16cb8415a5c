using System.Buffers.Binary;
using CsCheck;
using NetWire.Spice.Channels.Main;
using NetWire.Spice.Framing;
using NetWire.Spice.Link;
using NetWire.Testing;

namespace NetWire.Spice.Tests.Properties;

/// <summary>
/// Random and mutated input to the link and main-channel parsers: they never throw, accept
/// only what fits, and allocate no more than the message allows (caps words at most).
/// </summary>
public sealed class ParserPropertyTests
{
    private static readonly Gen<byte[]> s_anyBytes = Gen.Byte.Array[0, 4200];

    /// <summary>A valid link message (as spice-gtk builds them), then 1-8 random byte mutations.</summary>
    private static readonly Gen<byte[]> s_mutatedLinkMess =
        Gen.Select(Gen.UInt, Gen.Byte, Gen.UInt.Array[0, 4], Gen.UInt.Array[0, 4], Gen.Select(Gen.Int, Gen.Byte).Array[1, 8])
            .Select((id, type, common, channel, mutations) =>
            {
                var mess = new SpiceLinkMess(id, type, 0, common, channel);
                var bytes = new byte[mess.Length];
                mess.WriteTo(bytes);
                foreach (var (at, value) in mutations)
                {
                    bytes[(int)((uint)at % (uint)bytes.Length)] = value;
                }

                return bytes;
            });

    private static void CheckLinkMess(byte[] bytes)
    {
        var before = GC.GetAllocatedBytesForCurrentThread();
        var ok = SpiceLinkMess.TryParse(bytes, out var mess);
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        // The parse allocates the record and two arrays of caps that lie inside the message.
        Assert.True(allocated <= bytes.Length + 256, $"allocated {allocated} bytes for a {bytes.Length}-byte message");
        if (ok)
        {
            Assert.True(mess!.CommonCaps.Length + mess.ChannelCaps.Length <= (bytes.Length - SpiceLinkMess.FixedLength) / 4);
            Assert.True(mess.CommonCaps.Length <= SpiceLinkMess.MaxCapsWords && mess.ChannelCaps.Length <= SpiceLinkMess.MaxCapsWords);
        }
        else
        {
            Assert.Null(mess);
        }
    }

    [Fact]
    public void LinkMess_RandomBytes_NeverThrow_AndAllocateWithinTheMessage() =>
        s_anyBytes.Sample(CheckLinkMess, iter: 20_000);

    [Fact]
    public void LinkMess_MutatedValidMessages_NeverThrow_AndAllocateWithinTheMessage() =>
        s_mutatedLinkMess.Sample(CheckLinkMess, iter: 20_000);

    [Fact]
    public void LinkMess_RoundTrips() =>
        Gen.Select(Gen.UInt, Gen.Byte, Gen.Byte, Gen.UInt.Array[0, 8], Gen.UInt.Array[0, 8]).Sample((id, type, chid, common, channel) =>
        {
            var mess = new SpiceLinkMess(id, type, chid, common, channel);
            var bytes = new byte[mess.Length];
            mess.WriteTo(bytes);
            Assert.True(SpiceLinkMess.TryParse(bytes, out var back));
            Assert.Equal(id, back!.ConnectionId);
            Assert.Equal(type, back.ChannelType);
            Assert.Equal(chid, back.ChannelId);
            Assert.Equal(common, back.CommonCaps);
            Assert.Equal(channel, back.ChannelCaps);
        });

    [Fact]
    public void LinkHeader_AnyBytes_ValidateToOkOnlyWithinBounds() =>
        Gen.Byte.Array[16].Sample(bytes =>
        {
            Assert.True(SpiceLinkHeader.TryParse(bytes, out var header));
            if (header.Validate() == SpiceLinkErr.Ok)
            {
                Assert.Equal(SpiceLinkHeader.RedqMagic, header.Magic);
                Assert.InRange(header.Size, (uint)SpiceLinkMess.FixedLength, SpiceLinkHeader.MaxLinkMessSize);
            }
        }, iter: 20_000);

    [Fact]
    public void LinkHeader_AnySize_OutsideTheBounds_IsInvalidData() =>
        Gen.UInt.Where(s => s < 18 || s > 4096).Sample(size =>
            Assert.Equal(SpiceLinkErr.InvalidData, SpiceLinkHeader.ForServer(size).Validate()));

    [Fact]
    public void MainClientMessage_AnyTypeAndBody_NeverThrows_NeverAllocates() =>
        Gen.Select(Gen.UShort[0, 130], Gen.Byte.Array[0, 4200]).Sample((type, body) =>
        {
            var before = GC.GetAllocatedBytesForCurrentThread();
            var verdict = MainClientMessage.TryParse(type, body, out var message);
            Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
            var minimum = MainClientMessage.MinimumSize(type);
            if (verdict == ClientMessageVerdict.Ok)
            {
                Assert.True(minimum >= 0 && body.Length >= minimum && body.Length <= MainClientMessage.MaxBodySize);
                Assert.Equal(type, message.Type);
            }
        }, iter: 20_000);

    [Fact]
    public void DataHeader_RoundTrips_InBothForms() =>
        Gen.Select(Gen.ULong, Gen.UShort, Gen.UInt, Gen.Bool).Sample((serial, type, size, mini) =>
        {
            var bytes = new byte[DataHeader.FullLength];
            var length = new DataHeader(serial, type, size).WriteTo(bytes, mini);
            Assert.Equal(DataHeader.LengthFor(mini), length);
            Assert.True(DataHeader.TryParse(bytes.AsSpan(0, length), mini, out var back));
            Assert.Equal(type, back.Type);
            Assert.Equal(size, back.Size);
            Assert.Equal(mini ? 0ul : serial, back.Serial);
        });

    [Fact]
    public void LinkMess_FromTheCapture_Parses()
    {
        // spice-gtk 0.42's main link from captures/spice-migration-semi-seamless.pcap (stream 0).
        var bytes = Convert.FromHexString("5245445102000000020000001a0000000000000001000100000001000000120000000d0000000f000000");
        Assert.True(SpiceLinkHeader.TryParse(bytes, out var header));
        Assert.Equal(SpiceLinkErr.Ok, header.Validate());
        Assert.Equal(26u, header.Size);
        Assert.True(SpiceLinkMess.TryParse(bytes.AsSpan(16), out var mess));
        Assert.Equal(0u, mess!.ConnectionId);
        Assert.Equal((byte)1, mess.ChannelType);
        Assert.True(mess.HasCommonCap(SpiceCaps.AuthSelection));
        Assert.True(mess.HasCommonCap(SpiceCaps.MiniHeader));
        Assert.True(mess.HasChannelCap(SpiceCaps.MainNameAndUuid));
        Assert.Equal(0x0Fu, mess.ChannelCaps[0]);
    }

    [Fact]
    public void LinkReply_HasTheCapturedLayout()
    {
        var key = RsaKeyPool.Generate();
        var bytes = new byte[SpiceLinkReply.Length(1, 1)];
        SpiceLinkReply.WriteOk(bytes, key.PublicKeyDer, [SpiceCaps.ServerCommonWord], [0]);
        key.Dispose();

        // QEMU's reply in the capture: header size 0xBA (186), key DER starting 30 81 9f, caps at 178.
        Assert.Equal(Convert.FromHexString("524544510200000002000000ba000000"), bytes.AsSpan(0, 16).ToArray());
        Assert.Equal(Convert.FromHexString("30819f300d06092a864886f70d010101050003818d0030818902818100"), bytes.AsSpan(20, 29).ToArray());
        Assert.Equal(178u, BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(16 + 174)));
        Assert.Equal(0x0Bu, BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(16 + 178)));
    }
}

/// <summary>Random bytes thrown at a live server's link stage: always an answer or a close, never a hang or a crash.</summary>
public sealed class LinkStageFuzzTests
{
    [Fact]
    public async Task RandomAndMutatedLinkStreams_AreAnsweredOrClosed_AndTheServerKeepsServing()
    {
        await using var server = TestServer.Start(o => o.LinkTimeout = TimeSpan.FromSeconds(2));
        var random = new Random(4242);
        for (var i = 0; i < 60; i++)
        {
            byte[] bytes;
            if (i % 2 == 0)
            {
                bytes = new byte[random.Next(0, 300)];
                random.NextBytes(bytes);
            }
            else
            {
                bytes = RawSpiceClient.LinkBytes((uint)random.Next(), (byte)random.Next(0, 16));
                for (var m = random.Next(1, 4); m > 0; m--)
                {
                    bytes[random.Next(bytes.Length)] = (byte)random.Next(256);
                }

                var tail = new byte[random.Next(0, 200)];
                random.NextBytes(tail);
                bytes = [.. bytes, .. tail];
            }

            await using var client = await server.ConnectAsync();
            try
            {
                await client.SendAsync(bytes);
            }
            catch (IOException)
            {
                // The server may close while we still send: that is an answer too.
            }

            Assert.True(await client.ClosedByServerAsync());
        }

        await using var good = await server.ConnectAsync();
        Assert.Equal(SpiceLinkErr.Ok, await good.LinkAsync(0, 1, TestServer.Password));
    }
}
