using System.Security.Cryptography;
using System.Threading.Channels;

namespace NetWire.Spice.Link;

/// <summary>One link's RSA-1024 key and its DER SubjectPublicKeyInfo (162 bytes).</summary>
internal sealed class LinkKey : IDisposable
{
    public LinkKey(RSA rsa)
    {
        Rsa = rsa;
        PublicKeyDer = rsa.ExportSubjectPublicKeyInfo();
    }

    public RSA Rsa { get; }

    public byte[] PublicKeyDer { get; }

    public void Dispose() => Rsa.Dispose();
}

/// <summary>
/// Fresh RSA-1024 keys, one per link, never reused.
/// </summary>
/// <remarks>
/// Why per link and not per server: with one key per server a captured 128-byte ticket could
/// be replayed by anyone who saw it, without knowing the password. A fresh key per link makes
/// a recorded ticket worthless, which is what spice-server does too. Generating a key costs
/// milliseconds, so a background task keeps a few ready; when they run out (a burst of
/// links) the link generates its own inline. The queue is bounded: at most
/// <see cref="Capacity"/> keys wait, whatever the load.
/// </remarks>
internal sealed class RsaKeyPool : IDisposable
{
    /// <summary>Keys kept ready.</summary>
    public const int Capacity = 16;

    private readonly Channel<LinkKey> _ready = Channel.CreateBounded<LinkKey>(new BoundedChannelOptions(Capacity)
    {
        FullMode = BoundedChannelFullMode.Wait,
        SingleReader = false,
        SingleWriter = true,
    });

    private readonly CancellationTokenSource _stop = new();
    private readonly Task _filler;

    public RsaKeyPool() => _filler = Task.Run(FillLoopAsync);

    /// <summary>A key nobody has seen; the caller disposes it after the link.</summary>
    public LinkKey Take() => _ready.Reader.TryRead(out var key) ? key : Generate();

    public static LinkKey Generate() => new(RSA.Create(1024));

    public void Dispose()
    {
        _stop.Cancel();
        _ready.Writer.TryComplete();
        try
        {
            _filler.Wait(TimeSpan.FromSeconds(5));
        }
        catch (AggregateException)
        {
            // The filler ends by cancellation; nothing else can fail in it.
        }

        while (_ready.Reader.TryRead(out var key))
        {
            key.Dispose();
        }

        _stop.Dispose();
    }

    private async Task FillLoopAsync()
    {
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                var key = Generate();
                try
                {
                    await _ready.Writer.WriteAsync(key, _stop.Token).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is OperationCanceledException or ChannelClosedException)
                {
                    key.Dispose();
                    return;
                }
            }
        }
        catch (OperationCanceledException)
        {
            // Stopped.
        }
    }
}
