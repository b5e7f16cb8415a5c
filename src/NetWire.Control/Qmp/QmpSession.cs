using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using NetWire.Core.Net;

namespace NetWire.Control.Qmp;

/// <summary>
/// One control client: a receive loop that answers each input line in order, and a send loop
/// that writes replies and events from one bounded queue (replies wait for room, events never do).
/// </summary>
internal sealed class QmpSession : IAsyncDisposable
{
    private const string Capabilities = "qmp_capabilities";

    private static readonly JsonDocumentOptions s_documentOptions = new() { MaxDepth = 32 };

    private readonly Stream _stream;
    private readonly QmpCommandTable _commands;
    private readonly QmpServerOptions _options;
    private readonly ILogger _logger;

    /// <summary>Replies and events, as complete lines. Receive loop and <see cref="TrySendEvent"/> write; the send loop reads.</summary>
    private readonly Channel<byte[]> _send;

    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Task? _sendLoop;

    /// <summary>Set once by the receive loop at <c>qmp_capabilities</c>; read by event emitters.</summary>
    private volatile bool _negotiated;

    public QmpSession(long number, Stream stream, QmpCommandTable commands, QmpServerOptions options, ILogger logger)
    {
        Number = number;
        _stream = stream;
        _commands = commands;
        _options = options;
        _logger = logger;
        _send = Channel.CreateBounded<byte[]>(new BoundedChannelOptions(options.SendQueueCapacity)
        {
            FullMode = BoundedChannelFullMode.Wait,
            SingleReader = true,
        });
    }

    /// <summary>Client number, for logs.</summary>
    public long Number { get; }

    /// <summary>Completes when <see cref="RunAsync"/> has returned.</summary>
    public Task Completion => _completion.Task;

    /// <summary>The greeting QEMU sends; NetWire names itself in <c>package</c>.</summary>
    public static byte[] Greeting()
    {
        var version = typeof(QmpSession).Assembly.GetName().Version ?? new Version(0, 0, 0);
        var greeting = new JsonObject
        {
            ["QMP"] = new JsonObject
            {
                ["version"] = new JsonObject
                {
                    ["qemu"] = new JsonObject { ["major"] = version.Major, ["minor"] = version.Minor, ["micro"] = Math.Max(version.Build, 0) },
                    ["package"] = "netwire",
                },
                ["capabilities"] = new JsonArray(),
            },
        };
        return Line(greeting);
    }

    public static byte[] ErrorLine(string errorClass, string description, JsonNode? id)
    {
        var reply = new JsonObject { ["error"] = new JsonObject { ["class"] = errorClass, ["desc"] = description } };
        if (id is not null)
        {
            reply["id"] = id.DeepClone();
        }

        return Line(reply);
    }

    /// <summary>Runs the session until EOF, an I/O failure or <paramref name="cancellationToken"/>; returns why it ended.</summary>
    public async Task<EndReason> RunAsync(CancellationToken cancellationToken)
    {
        try
        {
            _sendLoop = SendLoopAsync(cancellationToken);
            await _send.Writer.WriteAsync(Greeting(), cancellationToken).ConfigureAwait(false);
            return await ReceiveLoopAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return EndReason.Stopping;
        }
        catch (Exception ex) when (IoErrors.IsIoFailure(ex) || ChannelLifetime.IsAbortEcho(ex))
        {
            return EndReason.ConnectionLost;
        }
        finally
        {
            _send.Writer.TryComplete();
            _stream.Dispose();
            if (_sendLoop is not null)
            {
                await _sendLoop.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            }

            _completion.TrySetResult();
        }
    }

    /// <summary>Queues an event line if the client negotiated; a full queue drops the client.</summary>
    public void TrySendEvent(string line)
    {
        if (!_negotiated)
        {
            return;
        }

        if (!_send.Writer.TryWrite(Encoding.UTF8.GetBytes(line + "\n")) && _send.Writer.TryComplete())
        {
            ControlLog.SlowClient(_logger, Number);
            _stream.Dispose();
        }
    }

    /// <summary>Lets queued output drain for up to <paramref name="grace"/>, then closes the connection.</summary>
    public async Task FlushAndCloseAsync(TimeSpan grace)
    {
        _send.Writer.TryComplete();
        if (_sendLoop is not null)
        {
            await _sendLoop.WaitAsync(grace).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }

        _stream.Dispose();
    }

    public ValueTask DisposeAsync() => _stream.DisposeAsync();

    private static byte[] Line(JsonNode node) => Encoding.UTF8.GetBytes(node.ToJsonString() + "\n");

    /// <summary>A handler or the JSON model refusing a value (a duplicate member, a password over 60 bytes): a GenericError reply, not a failure.</summary>
    private static bool IsRefusedValue(Exception ex) => ex is ArgumentException or InvalidOperationException or FormatException;

    private async Task SendLoopAsync(CancellationToken cancellationToken)
    {
        await foreach (var line in _send.Reader.ReadAllAsync(cancellationToken).ConfigureAwait(false))
        {
            await _stream.WriteAsync(line, cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task<EndReason> ReceiveLoopAsync(CancellationToken cancellationToken)
    {
        var buffer = new byte[_options.MaxLineBytes];
        var filled = 0;
        var skipping = false;
        while (true)
        {
            var read = await _stream.ReadAsync(buffer.AsMemory(filled), cancellationToken).ConfigureAwait(false);
            if (read == 0)
            {
                return EndReason.PeerClosed;
            }

            var start = 0;
            var scan = filled;
            filled += read;
            while (true)
            {
                var newline = buffer.AsSpan(scan, filled - scan).IndexOf((byte)'\n');
                if (newline < 0)
                {
                    break;
                }

                var end = scan + newline;
                if (!skipping)
                {
                    var (reply, afterReply) = await ExecuteAsync(buffer.AsMemory(start, end - start), cancellationToken).ConfigureAwait(false);
                    await ReplyAsync(reply, cancellationToken).ConfigureAwait(false);
                    afterReply?.Invoke();
                }

                skipping = false;
                start = end + 1;
                scan = start;
            }

            if (start > 0)
            {
                Buffer.BlockCopy(buffer, start, buffer, 0, filled - start);
                filled -= start;
            }

            if (filled == buffer.Length)
            {
                // The line is over the limit: answer once, then drop bytes up to its newline.
                if (!skipping)
                {
                    await ReplyAsync(ErrorLine(QmpErrorClass.GenericError, $"QMP input line longer than {_options.MaxLineBytes} bytes", null), cancellationToken).ConfigureAwait(false);
                    skipping = true;
                }

                filled = 0;
            }
        }
    }

    private async ValueTask ReplyAsync(byte[]? line, CancellationToken cancellationToken)
    {
        if (line is not null)
        {
            await _send.Writer.WriteAsync(line, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Parses and runs one input line; returns the reply line (null for a blank line) and what runs after it is queued.</summary>
    private async Task<(byte[]? Reply, Action? AfterReply)> ExecuteAsync(ReadOnlyMemory<byte> line, CancellationToken cancellationToken)
    {
        var text = line.Span.Trim(" \t\r"u8);
        if (text.IsEmpty)
        {
            return (null, null);
        }

        // System.Text.Json defers UTF-8 checks of string values; an id must never echo bad bytes.
        if (!System.Text.Unicode.Utf8.IsValid(text))
        {
            return (ErrorLine(QmpErrorClass.GenericError, "JSON parse error, QMP input is not valid UTF-8", null), null);
        }

        JsonNode? node;
        try
        {
            node = JsonNode.Parse(text, documentOptions: s_documentOptions);
        }
        catch (JsonException ex)
        {
            return (ErrorLine(QmpErrorClass.GenericError, $"JSON parse error, {ex.Message}", null), null);
        }

        if (node is not JsonObject request)
        {
            return (ErrorLine(QmpErrorClass.GenericError, "QMP input must be a JSON object", null), null);
        }

        JsonNode? id = null;
        string? name = null;
        JsonObject? arguments = null;
        try
        {
            foreach (var (member, value) in request)
            {
                switch (member)
                {
                    case "id":
                        id = value;
                        break;
                    case "execute":
                        name = value is JsonValue v && v.TryGetValue<string>(out var s) ? s : throw QmpException.Generic("QMP input member 'execute' must be a string");
                        break;
                    case "arguments":
                        arguments = value as JsonObject ?? throw QmpException.Generic("QMP input member 'arguments' must be an object");
                        break;
                    default:
                        throw QmpException.Generic($"QMP input member '{member}' is unexpected");
                }
            }

            if (name is null)
            {
                throw QmpException.Generic("QMP input lacks member 'execute'");
            }

            ControlLog.Command(_logger, Number, name);
            var (result, afterReply) = await DispatchAsync(name, arguments, cancellationToken).ConfigureAwait(false);
            var reply = new JsonObject { ["return"] = result ?? new JsonObject() };
            if (id is not null)
            {
                reply["id"] = id.DeepClone();
            }

            return (Line(reply), afterReply);
        }
        catch (QmpException ex)
        {
            return (ErrorLine(ex.ErrorClass, ex.Message, id), null);
        }
        catch (Exception ex) when (IsRefusedValue(ex))
        {
            // Duplicate members, or a handler refusing a value (a password over 60 bytes).
            return (ErrorLine(QmpErrorClass.GenericError, ex.Message, id), null);
        }
    }

    private async ValueTask<(JsonNode? Result, Action? AfterReply)> DispatchAsync(string name, JsonObject? arguments, CancellationToken cancellationToken)
    {
        if (!_negotiated)
        {
            if (name != Capabilities)
            {
                throw new QmpException(QmpErrorClass.CommandNotFound, $"Expecting capabilities negotiation with '{Capabilities}'");
            }

            QmpArguments.Validate(arguments, []);
            _negotiated = true;
            return (null, null);
        }

        if (name == Capabilities)
        {
            throw new QmpException(QmpErrorClass.CommandNotFound, "Capabilities negotiation is already complete, command ignored");
        }

        if (!_commands.TryGet(name, out var command))
        {
            throw new QmpException(QmpErrorClass.CommandNotFound, $"The command {name} has not been found");
        }

        var validated = QmpArguments.Validate(arguments, command!.Parameters);
        try
        {
            return (await command.Handler(validated, cancellationToken).ConfigureAwait(false), command.AfterReply);
        }
        catch (Exception ex) when (ex is not (QmpException or OperationCanceledException) && !IsRefusedValue(ex))
        {
            ControlLog.CommandFailed(_logger, name, ex);
            throw QmpException.Generic($"{name} failed: {ex.Message}");
        }
    }
}
