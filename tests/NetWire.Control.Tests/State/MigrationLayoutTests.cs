using NetWire.Spice;
using NetWire.Spice.Migration;

namespace NetWire.Control.Tests.State;

/// <summary>MIGRATE_BEGIN / SWITCH_HOST body layouts by protocol version (protocol.md §4.4).</summary>
public sealed class MigrationLayoutTests
{
    [Fact]
    public void DstInfo_HostAtOffset20_SubjectAfterIt_SizesCountTheNul()
    {
        var body = MigrationMessages.BuildDstInfo(new MigrationDestination("h1", 5931, -1, "CN=x"));
        byte[] expected =
        [
            0x2B, 0x17, 0, 0, // port 5931, sport none (0, which spice-gtk reads as none; not spice-server's 0xFFFF)
            3, 0, 0, 0, 20, 0, 0, 0, // host size, host ptr
            5, 0, 0, 0, 23, 0, 0, 0, // subject size, subject ptr
            (byte)'h', (byte)'1', 0, (byte)'C', (byte)'N', (byte)'=', (byte)'x', 0,
        ];
        Assert.Equal(expected, body);
    }

    [Fact]
    public void DstInfo_WithoutSubject_HasZeroSizeAndNullPointer()
    {
        var body = MigrationMessages.BuildDstInfo(new MigrationDestination("127.0.0.1", -1, 5932, null));
        Assert.Equal(20 + 10, body.Length);
        Assert.Equal(new byte[8], body[12..20]);
        Assert.Equal(new MigrationDestination("127.0.0.1", -1, 5932, null), MigrationMessages.ParseDstInfo(body));
    }

    [Fact]
    public void BeginSeamless_HasTheSourceVersionAtOffset20_AndTheHostAt24()
    {
        var body = MigrationMessages.BuildBeginSeamless(new MigrationDestination("h", 1, 2, null), 1);
        Assert.Equal(new byte[] { 1, 0, 0, 0 }, body[20..24]);
        Assert.Equal(new byte[] { 24, 0, 0, 0 }, body[8..12]);
        Assert.Equal(new byte[] { (byte)'h', 0 }, body[24..]);
        Assert.Equal("h", MigrationMessages.ParseDstInfo(body, MigrationMessages.SeamlessFixed).Host);
    }

    [Fact]
    public void PubKeyForm_Is22BytesFixed_ThenHostThenKey()
    {
        var body = MigrationMessages.BuildPubKeyForm(new MigrationDestination("ab", 10, 11, null), 6, [0xAA, 0xBB]);
        Assert.Equal(22 + 3 + 2, body.Length);
        Assert.Equal(new byte[] { 22, 0, 0, 0 }, body[8..12]);
        Assert.Equal(new byte[] { 6, 0, 2, 0, 0, 0, 25, 0, 0, 0 }, body[12..22]);
        Assert.Equal(new byte[] { (byte)'a', (byte)'b', 0, 0xAA, 0xBB }, body[22..]);
    }

    [Theory]
    [InlineData(new byte[] { 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 })] // null host pointer
    [InlineData(new byte[] { 0, 0, 0, 0, 9, 0, 0, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, (byte)'a', 0 })] // size past the end
    [InlineData(new byte[] { 0, 0, 0, 0, 1, 0, 0, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, (byte)'a' })] // no NUL
    [InlineData(new byte[] { 0, 0, 0, 0 })] // shorter than the fixed part
    public void HostileDstInfo_IsRefused(byte[] body) =>
        Assert.Throws<SpiceProtocolException>(() => MigrationMessages.ParseDstInfo(body));

    [Theory]
    [InlineData("", 1, -1)]
    [InlineData("a\0b", 1, -1)]
    [InlineData("h", -1, -1)]
    [InlineData("h", 0, 0)]
    [InlineData("h", 65535, -1)]
    public void UnsendableDestinations_AreRejected(string host, int port, int tlsPort) =>
        Assert.Throws<ArgumentException>(() => MigrationMessages.Validate(new MigrationDestination(host, port, tlsPort, null)));
}
