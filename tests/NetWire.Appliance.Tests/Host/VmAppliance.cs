using NetWire.Testing;

namespace NetWire.Appliance.Tests.Host;

/// <summary>A <c>netwire serve</c> of a <see cref="VmDownloadRun"/>: its name (files are named after it), process and ports (0: none).</summary>
internal sealed record VmAppliance(string Name, ManagedProcess Process, int Spice, int Incoming);
