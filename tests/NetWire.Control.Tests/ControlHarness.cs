using System.Net;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging.Abstractions;
using NetWire.Control.Qmp;
using NetWire.Core.Wire;
using NetWire.Spice;
using NetWire.Spice.Link;

namespace NetWire.Control.Tests;

/// <summary>
/// An in-process SPICE server (127.0.0.1, free port, password <see cref="Password"/>) and an
/// <see cref="ApplianceControl"/> on a unix socket in a fresh temp directory.
/// </summary>
internal sealed class ControlHarness : IAsyncDisposable
{
    public const string Password = "s3cret";

    private readonly string _directory;

    private ControlHarness(string directory, SpiceServer spice, ApplianceControl control, ControlEndpoint endpoint)
    {
        _directory = directory;
        Spice = spice;
        Control = control;
        Endpoint = endpoint;
    }

    public SpiceServer Spice { get; }

    public ApplianceControl Control { get; }

    public ControlEndpoint Endpoint { get; }

    /// <summary>Completes when a client sent <c>quit</c>.</summary>
    public TaskCompletionSource QuitRequested { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public IPEndPoint SpiceEndPoint => Spice.LocalEndPoint;

    public static ControlHarness Start(QmpServerOptions? options = null, Func<IReadOnlyList<WireEnd>>? ends = null)
    {
        var directory = Directory.CreateTempSubdirectory("netwire-qmp-").FullName;
        var tickets = new TicketAuthority(TimeProvider.System);
        tickets.SetPassword(Password);
        var spice = new SpiceServer(new SpiceServerOptions { EndPoint = new IPEndPoint(IPAddress.Loopback, 0) }, tickets, NullLoggerFactory.Instance);
        var endpoint = ControlEndpoint.Parse("unix:" + Path.Combine(directory, "qmp.sock"));
        ControlHarness? harness = null;
        var control = new ApplianceControl(endpoint, spice, ends ?? (static () => []), () => harness!.QuitRequested.TrySetResult(), NullLoggerFactory.Instance, options);
        harness = new ControlHarness(directory, spice, control, endpoint);
        spice.Start();
        control.Start();
        return harness;
    }

    /// <summary>A client past the greeting, not negotiated.</summary>
    public Task<QmpClient> ConnectAsync() => QmpClient.ConnectAsync(Endpoint, TestContext.Current.CancellationToken);

    /// <summary>A client past <c>qmp_capabilities</c>.</summary>
    public async Task<QmpClient> ConnectNegotiatedAsync()
    {
        var client = await ConnectAsync();
        var reply = await client.NegotiateAsync(TestContext.Current.CancellationToken);
        Assert.NotNull(reply["return"]);
        return client;
    }

    public async ValueTask DisposeAsync()
    {
        await Control.DisposeAsync();
        await Spice.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }
}

/// <summary>Assertions on QMP replies.</summary>
internal static class Reply
{
    public static JsonNode Ok(JsonObject reply)
    {
        Assert.True(reply["error"] is null, $"expected a return, got {reply.ToJsonString()}");
        return reply["return"]!;
    }

    public static string Error(JsonObject reply, string errorClass)
    {
        var error = Assert.IsType<JsonObject>(reply["error"], exactMatch: false);
        Assert.Equal(errorClass, (string?)error["class"]);
        var description = (string?)error["desc"];
        Assert.False(string.IsNullOrEmpty(description));
        return description!;
    }
}
