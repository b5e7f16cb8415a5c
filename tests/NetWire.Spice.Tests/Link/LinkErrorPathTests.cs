using System.Buffers.Binary;
using System.Security.Cryptography;
using Microsoft.Extensions.Time.Testing;
using NetWire.Spice.Link;
using NetWire.Testing;

namespace NetWire.Spice.Tests.Link;

/// <summary>
/// Every refusal of the link stage, driven by a raw socket: the documented error code (the
/// 194-byte reply or the 4-byte result, protocol.md §1.7) and then a close; never a hang.
/// Includes the link-stage rows of protocol.md §7.1.
/// </summary>
public sealed class LinkErrorPathTests
{
    private static byte[] Header(uint magic, uint major, uint minor, uint size)
    {
        var bytes = new byte[16];
        new SpiceLinkHeader(magic, major, minor, size).WriteTo(bytes);
        return bytes;
    }

    private static byte[] Mess(uint numCommon, uint numChannel, uint capsOffset, int totalSize)
    {
        var body = new byte[totalSize];
        body[4] = 1;
        BinaryPrimitives.WriteUInt32LittleEndian(body.AsSpan(6), numCommon);
        BinaryPrimitives.WriteUInt32LittleEndian(body.AsSpan(10), numChannel);
        BinaryPrimitives.WriteUInt32LittleEndian(body.AsSpan(14), capsOffset);
        return [.. Header(SpiceLinkHeader.RedqMagic, 2, 2, (uint)totalSize), .. body];
    }

    [Fact]
    public async Task BadMagic_GetsInvalidMagicReply_ThenClose()
    {
        await using var server = TestServer.Start();
        await using var client = await server.ConnectAsync();
        await client.SendAsync(Header(0x50545448, 2, 2, 26)); // "HTTP"
        Assert.Equal(SpiceLinkErr.InvalidMagic, await client.ReadErrorReplyAsync());
        Assert.True(await client.ClosedByServerAsync());
    }

    [Theory]
    [InlineData(1u)]
    [InlineData(3u)]
    [InlineData(0xFFFFFFFFu)]
    public async Task WrongMajorVersion_GetsVersionMismatchReply(uint major)
    {
        await using var server = TestServer.Start();
        await using var client = await server.ConnectAsync();
        await client.SendAsync(Header(SpiceLinkHeader.RedqMagic, major, 2, 26));
        Assert.Equal(SpiceLinkErr.VersionMismatch, await client.ReadErrorReplyAsync());
        Assert.True(await client.ClosedByServerAsync());
    }

    [Fact]
    public async Task MajorVersionZero_IsClosedWithoutReply_AsSpiceServerDoes()
    {
        await using var server = TestServer.Start();
        await using var client = await server.ConnectAsync();
        await client.SendAsync(Header(SpiceLinkHeader.RedqMagic, 0, 2, 26));
        Assert.Null(await client.ReadExactlyOrNullAsync(1));
    }

    // CVE-2016-9578: header.size unbounded.
    [Theory]
    [InlineData(0xAAAAAAAAu)]
    [InlineData(17u)]
    [InlineData(4097u)]
    [InlineData(0u)]
    [InlineData(0x80000000u)]
    public async Task Cve2016_9578_LinkSizeOutOfBounds_GetsInvalidData_WithoutReadingIt(uint size)
    {
        await using var server = TestServer.Start();
        await using var client = await server.ConnectAsync();
        await client.SendAsync(Header(SpiceLinkHeader.RedqMagic, 2, 2, size));
        Assert.Equal(SpiceLinkErr.InvalidData, await client.ReadErrorReplyAsync());
        Assert.True(await client.ClosedByServerAsync());
    }

    // Caps count overflow: counts over 1024, a u32 wrap of 4 * n + offset, offset below 18, offset past the end.
    [Theory]
    [InlineData(1025u, 0u, 18u, 26)]
    [InlineData(0u, 1025u, 18u, 26)]
    [InlineData(0x40000000u, 0x40000000u, 18u, 26)]
    [InlineData(1u, 0u, 17u, 26)]
    [InlineData(1u, 0u, 0u, 26)]
    [InlineData(2u, 0u, 22u, 26)]
    [InlineData(1u, 1u, 0xFFFFFFFCu, 26)]
    [InlineData(1024u, 1024u, 18u, 4096)]
    public async Task CapsCountsOrOffsetOutsideTheMessage_GetInvalidData(uint common, uint channel, uint offset, int size)
    {
        await using var server = TestServer.Start();
        await using var client = await server.ConnectAsync();
        await client.SendAsync(Mess(common, channel, offset, size));
        Assert.Equal(SpiceLinkErr.InvalidData, await client.ReadErrorReplyAsync());
        Assert.True(await client.ClosedByServerAsync());
    }

    // protocol.md §7.1: a bad auth mechanism gets a full error reply, not a 4-byte result.
    [Theory]
    [InlineData(0u)]
    [InlineData(2u)]
    [InlineData(3u)]
    [InlineData(0xFFFFFFFFu)]
    public async Task BadAuthMechanism_GetsFullInvalidDataReply(uint mechanism)
    {
        await using var server = TestServer.Start();
        await using var client = await server.ConnectAsync();
        await client.SendAsync(RawSpiceClient.LinkBytes(0, 1));
        await client.ReadOkReplyAsync();
        var word = new byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(word, mechanism);
        await client.SendAsync(word);
        Assert.Equal(SpiceLinkErr.InvalidData, await client.ReadErrorReplyAsync());
        Assert.True(await client.ClosedByServerAsync());
    }

    [Fact]
    public async Task ClientWithoutAuthSelection_SendsTicketDirectly_AndLinks()
    {
        await using var server = TestServer.Start();
        await using var client = await server.ConnectAsync();
        Assert.Equal(SpiceLinkErr.Ok, await client.LinkAsync(0, 1, TestServer.Password, commonCaps: 0));
        var (header, _) = await client.ReadMessageAsync();
        Assert.Equal(103, header.Type);
    }

    [Fact]
    public async Task WrongPassword_GetsPermissionDeniedResult_ThenClose()
    {
        await using var server = TestServer.Start();
        await using var client = await server.ConnectAsync();
        Assert.Equal(SpiceLinkErr.PermissionDenied, await client.LinkAsync(0, 1, "wrong"));
        Assert.True(await client.ClosedByServerAsync());
    }

    [Fact]
    public async Task ExpiredPassword_GetsPermissionDenied_AndRenewedPasswordWorks()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var server = TestServer.Start(time: time, tickets: t => t.ExpirePassword(time.GetUtcNow().AddSeconds(10)));
        await using (var before = await server.ConnectAsync())
        {
            Assert.Equal(SpiceLinkErr.Ok, await before.LinkAsync(0, 1, TestServer.Password));
        }

        time.Advance(TimeSpan.FromSeconds(10));
        await using (var after = await server.ConnectAsync())
        {
            Assert.Equal(SpiceLinkErr.PermissionDenied, await after.LinkAsync(0, 1, TestServer.Password));
        }

        server.Server.Tickets.SetPassword("renewed");
        await using var renewed = await server.ConnectAsync();
        Assert.Equal(SpiceLinkErr.Ok, await renewed.LinkAsync(0, 1, "renewed"));
    }

    [Fact]
    public async Task TicketingOnWithNoPassword_RefusesEveryone()
    {
        await using var server = TestServer.Start(tickets: t => t.SetPassword(null));
        await using var client = await server.ConnectAsync();
        Assert.Equal(SpiceLinkErr.PermissionDenied, await client.LinkAsync(0, 1, string.Empty));
    }

    [Fact]
    public async Task DisabledTicketing_AcceptsAnyTicket()
    {
        await using var server = TestServer.Start(tickets: t => t.DisableTicketing());
        await using var client = await server.ConnectAsync();
        Assert.Equal(SpiceLinkErr.Ok, await client.LinkAsync(0, 1, "anything"));
    }

    // CVE-2013-4282: the plaintext may be 86 bytes (over the 60-byte buffer), may lack the NUL,
    // and the ciphertext may not decrypt at all.
    [Theory]
    [InlineData("long")]
    [InlineData("nonul")]
    [InlineData("garbage")]
    [InlineData("zeros")]
    public async Task Cve2013_4282_OddTickets_GetPermissionDenied(string kind)
    {
        await using var server = TestServer.Start();
        await using var client = await server.ConnectAsync();
        await client.SendAsync(RawSpiceClient.LinkBytes(0, 1));
        var (key, _, _) = await client.ReadOkReplyAsync();
        var password = System.Text.Encoding.UTF8.GetBytes(TestServer.Password);
        byte[] ticket = kind switch
        {
            // 86 bytes: the password, then 80 more non-NUL bytes; the OAEP-SHA1 limit for 1024 bits.
            "long" => TicketAuthority.EncryptTicket(key, [.. password, .. Enumerable.Repeat((byte)'x', 86 - password.Length)]),
            "nonul" => TicketAuthority.EncryptTicket(key, password),
            "garbage" => RandomNumberGenerator.GetBytes(128),
            _ => new byte[128],
        };
        await client.SendAsync((byte[])[1, 0, 0, 0, .. ticket]);
        Assert.Equal(SpiceLinkErr.PermissionDenied, await client.ReadResultAsync());
        Assert.True(await client.ClosedByServerAsync());
    }

    [Fact]
    public async Task NoNulTicket_WhosePrefixIsThePassword_IsStillRefused()
    {
        await using var server = TestServer.Start();
        await using var client = await server.ConnectAsync();
        await client.SendAsync(RawSpiceClient.LinkBytes(0, 1));
        var (key, _, _) = await client.ReadOkReplyAsync();
        byte[] plain = [.. System.Text.Encoding.UTF8.GetBytes(TestServer.Password), (byte)'!'];
        await client.SendAsync((byte[])[1, 0, 0, 0, .. TicketAuthority.EncryptTicket(key, plain)]);
        Assert.Equal(SpiceLinkErr.PermissionDenied, await client.ReadResultAsync());
    }

    [Fact]
    public async Task ReplayedTicket_FromAnotherLink_IsRefused()
    {
        await using var server = TestServer.Start();
        byte[] ticket;
        await using (var first = await server.ConnectAsync())
        {
            await first.SendAsync(RawSpiceClient.LinkBytes(0, 1));
            var (key, _, _) = await first.ReadOkReplyAsync();
            ticket = TicketAuthority.EncryptTicket(key, [.. System.Text.Encoding.UTF8.GetBytes(TestServer.Password), 0]);
            await first.SendAsync((byte[])[1, 0, 0, 0, .. ticket]);
            Assert.Equal(SpiceLinkErr.Ok, await first.ReadResultAsync());
        }

        await using var replay = await server.ConnectAsync();
        await replay.SendAsync(RawSpiceClient.LinkBytes(0, 1));
        await replay.ReadOkReplyAsync();
        await replay.SendAsync((byte[])[1, 0, 0, 0, .. ticket]);
        Assert.Equal(SpiceLinkErr.PermissionDenied, await replay.ReadResultAsync());
    }

    // protocol.md §7.1: unknown channel types aborted spice-server before Nov 2015.
    [Theory]
    [InlineData(0)]
    [InlineData(2)]
    [InlineData(7)]
    [InlineData(12)]
    [InlineData(255)]
    public async Task UnservedOrUnknownChannel_OfALiveSession_GetsChannelNotAvailable(byte type)
    {
        await using var server = TestServer.Start();
        await using var main = await server.ConnectAsync();
        Assert.Equal(SpiceLinkErr.Ok, await main.LinkAsync(0, 1, TestServer.Password));
        var (_, init) = await main.ReadUntilAsync(103);
        var sessionId = BinaryPrimitives.ReadUInt32LittleEndian(init);

        await using var other = await server.ConnectAsync();
        Assert.Equal(SpiceLinkErr.ChannelNotAvailable, await other.LinkAsync(sessionId, type, TestServer.Password));
        Assert.True(await other.ClosedByServerAsync());
    }

    [Fact]
    public async Task NonMainChannel_WithUnknownConnectionId_GetsBadConnectionId()
    {
        await using var server = TestServer.Start();
        await using var client = await server.ConnectAsync();
        Assert.Equal(SpiceLinkErr.BadConnectionId, await client.LinkAsync(0x12345678, 3, TestServer.Password));
        Assert.True(await client.ClosedByServerAsync());
    }

    [Fact]
    public async Task NonMainChannel_WithWrongPassword_IsRefusedBeforeItsIdIsLookedUp()
    {
        await using var server = TestServer.Start();
        await using var client = await server.ConnectAsync();
        Assert.Equal(SpiceLinkErr.PermissionDenied, await client.LinkAsync(0x12345678, 3, "wrong"));
    }

    // protocol.md §7.1: spice-server trusts a non-zero id on main as a migration target (session parked forever, id chosen by the client).
    [Fact]
    public async Task MainLink_WithRandomIdAndNoMigration_GetsBadConnectionId_AndParksNothing()
    {
        await using var server = TestServer.Start();
        await using var client = await server.ConnectAsync();
        Assert.Equal(SpiceLinkErr.BadConnectionId, await client.LinkAsync((uint)RandomNumberGenerator.GetInt32(1, int.MaxValue), 1, TestServer.Password));
        Assert.True(await client.ClosedByServerAsync());
        Assert.Equal(0, server.Server.Sessions.Count);
    }

    [Fact]
    public async Task MainLink_WithAnIdTheMigrationCoreExpects_IsAccepted_Once()
    {
        await using var server = TestServer.Start();
        server.Server.Sessions.ExpectIncoming(0xC0FFEE);
        await using (var first = await server.ConnectAsync())
        {
            Assert.Equal(SpiceLinkErr.Ok, await first.LinkAsync(0xC0FFEE, 1, TestServer.Password));
        }

        await using var second = await server.ConnectAsync();
        Assert.Equal(SpiceLinkErr.BadConnectionId, await second.LinkAsync(0xC0FFEE, 1, TestServer.Password));
    }

    [Fact]
    public async Task ClientClosingMidLink_IsCounted_AndTheServerGoesOn()
    {
        await using var server = TestServer.Start();
        await using (var quitter = await server.ConnectAsync())
        {
            await quitter.SendAsync(RawSpiceClient.LinkBytes(0, 1).AsMemory(0, 10));
        }

        await using var client = await server.ConnectAsync();
        Assert.Equal(SpiceLinkErr.Ok, await client.LinkAsync(0, 1, TestServer.Password));
    }
}
