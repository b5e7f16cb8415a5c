using System.Net;
using System.Net.Sockets;
using System.Threading.Channels;
using NetWire.Core.Net;

namespace NetWire.Core.Tests.Net;

/// <summary>The error predicates against the exceptions real sockets, streams, files and queues throw.</summary>
public sealed class IoErrorsTests
{
    [Fact]
    public async Task ResetByThePeer_IsPeerGone_AndASocketFailure_NotOurShutdown()
    {
        var (ours, theirs) = await TcpPairAsync();
        using var _ = ours;
        theirs.LingerState = new LingerOption(true, 0);
        theirs.Dispose();

        var ex = await Assert.ThrowsAsync<SocketException>(async () => await ours.ReceiveAsync(new byte[16], SocketFlags.None));
        Assert.Equal(SocketError.ConnectionReset, ex.SocketErrorCode);
        Assert.True(IoErrors.IsPeerGone(ex.SocketErrorCode));
        Assert.Equal([SocketFailure, IoFailure, SocketEnd], Matches(ex));
        Assert.Equal(EndReason.ConnectionLost, ChannelLifetime.ReasonOf(ex));
    }

    [Fact]
    public async Task ResetSeenThroughANetworkStream_IsTheWrappedSocketFailure()
    {
        var (ours, theirs) = await TcpPairAsync();
        await using var stream = new NetworkStream(ours, ownsSocket: true);
        theirs.LingerState = new LingerOption(true, 0);
        theirs.Dispose();

        var ex = await Assert.ThrowsAsync<IOException>(async () => await stream.ReadExactlyAsync(new byte[16]));
        Assert.Equal(SocketError.ConnectionReset, Assert.IsType<SocketException>(ex.InnerException).SocketErrorCode);

        // An IOException is also what a file error is; the filters it replaced said `ex is IOException`.
        Assert.Equal([SocketFailure, IoFailure, SocketEnd, FileError], Matches(ex));
        Assert.Equal(EndReason.ConnectionLost, ChannelLifetime.ReasonOf(ex));
    }

    [Fact]
    public async Task WritingAfterThePeerClosed_IsABrokenPipe_ThatIsPeerGone()
    {
        var dir = Directory.CreateTempSubdirectory("nwtest-").FullName;
        try
        {
            var path = Path.Combine(dir, "s");
            using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            listener.Bind(new UnixDomainSocketEndPoint(path));
            listener.Listen(1);
            using var ours = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            await ours.ConnectAsync(new UnixDomainSocketEndPoint(path));
            (await listener.AcceptAsync()).Dispose();

            var ex = await Assert.ThrowsAsync<SocketException>(async () =>
            {
                while (true)
                {
                    await ours.SendAsync(new byte[4096], SocketFlags.None);
                }
            });
            Assert.True(IoErrors.IsPeerGone(ex.SocketErrorCode), ex.SocketErrorCode.ToString());
            Assert.Equal([SocketFailure, IoFailure, SocketEnd], Matches(ex));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task ConnectionRefused_IsASocketFailure_ButNotPeerGone()
    {
        using var ours = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        var ex = await Assert.ThrowsAsync<SocketException>(async () => await ours.ConnectAsync(ClosedPort(SocketType.Stream, ProtocolType.Tcp)));
        Assert.Equal(SocketError.ConnectionRefused, ex.SocketErrorCode);
        Assert.False(IoErrors.IsPeerGone(ex.SocketErrorCode));
        Assert.False(IoErrors.IsTransient(ex.SocketErrorCode));
        Assert.Equal([SocketFailure, IoFailure, SocketEnd], Matches(ex));
    }

    [Fact]
    public async Task IcmpPortUnreachable_OnAConnectedDatagramSocket_IsPortUnreachable()
    {
        using var ours = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        ours.Connect(ClosedPort(SocketType.Dgram, ProtocolType.Udp));
        ours.Send(new byte[8]);

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var ex = await Assert.ThrowsAsync<SocketException>(async () => await ours.ReceiveAsync(new byte[16], SocketFlags.None, timeout.Token));
        Assert.True(IoErrors.IsPortUnreachable(ex.SocketErrorCode), ex.SocketErrorCode.ToString());
        Assert.True(IoErrors.IsUnreachable(ex.SocketErrorCode));
        Assert.False(IoErrors.IsTransient(ex.SocketErrorCode));
    }

    [Fact]
    public void ABlockingReceiveThatTimesOut_IsTransient()
    {
        using var ours = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp) { ReceiveTimeout = 20 };
        ours.Bind(new IPEndPoint(IPAddress.Loopback, 0));

        var ex = Assert.Throws<SocketException>(() => ours.Receive(new byte[16]));
        Assert.True(IoErrors.IsTransient(ex.SocketErrorCode), ex.SocketErrorCode.ToString());
        Assert.False(IoErrors.IsUnreachable(ex.SocketErrorCode));
        Assert.False(IoErrors.IsPeerGone(ex.SocketErrorCode));
    }

    [Theory]
    [InlineData(SocketError.HostUnreachable)]
    [InlineData(SocketError.NetworkUnreachable)]
    public void HostAndNetworkUnreachable_AreUnreachable_ButNotAPortRefusal(SocketError error)
    {
        Assert.True(IoErrors.IsUnreachable(error));
        Assert.False(IoErrors.IsPortUnreachable(error));
        Assert.False(IoErrors.IsPeerGone(error));
    }

    [Fact]
    public async Task ACancelledReceive_IsOurShutdown_NotASocketFailure()
    {
        var (ours, theirs) = await TcpPairAsync();
        using var _ = ours;
        using var __ = theirs;
        using var cancel = new CancellationTokenSource();
        var receive = ours.ReceiveAsync(new byte[16], SocketFlags.None, cancel.Token);
        await cancel.CancelAsync();

        var ex = await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await receive);
        Assert.Equal([Shutdown, SocketEnd, AbortEcho], Matches(ex));
        Assert.Equal(EndReason.Stopping, ChannelLifetime.ReasonOf(ex));
    }

    [Fact]
    public void ASocketWeDisposed_IsOurShutdown()
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        socket.Dispose();

        var ex = Assert.Throws<ObjectDisposedException>(() => socket.Send(new byte[1]));
        Assert.Equal([Shutdown, SocketEnd, AbortEcho], Matches(ex));
        Assert.Equal(EndReason.Failed, ChannelLifetime.ReasonOf(ex));
    }

    [Fact]
    public void AnyFailure_IsOurShutdown_OnceTheStopTokenIsCancelled()
    {
        var bug = new InvalidOperationException("a real bug");
        Assert.False(IoErrors.IsShutdown(bug, CancellationToken.None));
        Assert.True(IoErrors.IsShutdown(bug, new CancellationToken(canceled: true)));
    }

    [Fact]
    public async Task ThePeerClosingMidMessage_IsEndOfStream_NotASocketFailure()
    {
        var (ours, theirs) = await TcpPairAsync();
        await using var stream = new NetworkStream(ours, ownsSocket: true);
        theirs.Shutdown(SocketShutdown.Send);
        using var __ = theirs;

        var ex = await Assert.ThrowsAsync<EndOfStreamException>(async () => await stream.ReadExactlyAsync(new byte[16]));
        Assert.Equal([IoFailure, FileError], Matches(ex));
        Assert.Equal(EndReason.PeerClosed, ChannelLifetime.ReasonOf(ex));
    }

    [Fact]
    public void AMissingFile_AndADirectoryReadAsAFile_AreFileErrors_NotSocketFailures()
    {
        var dir = Directory.CreateTempSubdirectory("nwtest-").FullName;
        try
        {
            var missing = Assert.ThrowsAny<IOException>(() => File.ReadAllText(Path.Combine(dir, "missing")));
            var directory = Assert.Throws<UnauthorizedAccessException>(() => File.ReadAllText(dir));

            Assert.Equal([IoFailure, FileError], Matches(missing));
            Assert.Equal([FileError], Matches(directory));
        }
        finally
        {
            Directory.Delete(dir);
        }
    }

    [Fact]
    public async Task WritingToACompletedQueue_IsAnAbortEcho_ButNotAnIoShutdown()
    {
        var queue = Channel.CreateUnbounded<int>();
        queue.Writer.Complete();

        var ex = await Assert.ThrowsAsync<ChannelClosedException>(async () => await queue.Writer.WriteAsync(1));
        Assert.Equal([AbortEcho], Matches(ex));
    }

    [Fact]
    public void RealBugs_AreNoneOfThem()
    {
        Exception[] bugs = [new InvalidOperationException(), new ArgumentException(), new NullReferenceException(), new FormatException(), new IndexOutOfRangeException()];
        foreach (var bug in bugs)
        {
            Assert.Empty(Matches(bug));
            Assert.Equal(EndReason.Failed, ChannelLifetime.ReasonOf(bug));
        }
    }

    private const string SocketFailure = nameof(IoErrors.IsSocketFailure);
    private const string IoFailure = nameof(IoErrors.IsIoFailure);
    private const string Shutdown = nameof(IoErrors.IsShutdown);
    private const string SocketEnd = nameof(IoErrors.IsSocketEnd);
    private const string FileError = nameof(IoErrors.IsFileError);
    private const string AbortEcho = nameof(ChannelLifetime.IsAbortEcho);

    /// <summary>The exception predicates that hold for <paramref name="ex"/>, by name: a test states all of them.</summary>
    private static List<string> Matches(Exception ex)
    {
        var names = new List<string>();
        foreach (var (name, holds) in new (string, Func<Exception, bool>)[]
        {
            (SocketFailure, IoErrors.IsSocketFailure),
            (IoFailure, IoErrors.IsIoFailure),
            (Shutdown, IoErrors.IsShutdown),
            (SocketEnd, IoErrors.IsSocketEnd),
            (FileError, IoErrors.IsFileError),
            (AbortEcho, ChannelLifetime.IsAbortEcho),
        })
        {
            if (holds(ex))
            {
                names.Add(name);
            }
        }

        return names;
    }

    /// <summary>A connected loopback TCP pair.</summary>
    private static async Task<(Socket Ours, Socket Theirs)> TcpPairAsync()
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        var ours = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await ours.ConnectAsync(listener.LocalEndPoint!);
        return (ours, await listener.AcceptAsync());
    }

    /// <summary>A loopback port that was just bound and released: nobody listens there.</summary>
    private static IPEndPoint ClosedPort(SocketType type, ProtocolType protocol)
    {
        using var probe = new Socket(AddressFamily.InterNetwork, type, protocol);
        probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return (IPEndPoint)probe.LocalEndPoint!;
    }
}
