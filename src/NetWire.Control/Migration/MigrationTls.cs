using NetWire.Core.Tls;

namespace NetWire.Control.Migration;

/// <summary>
/// <c>--migration-x509-dir DIR</c>: the state stream runs over mutual TLS, as QEMU's migration
/// with <c>tls-creds</c>. The target accepts with <c>server-cert.pem</c> and requires a client
/// certificate its <c>ca-cert.pem</c> signed; the source presents <c>client-cert.pem</c> and
/// checks the target's certificate against the same CA and the URI's host. A connection that is
/// not TLS, or whose certificate another CA signed, is refused before a byte of state is read.
/// </summary>
/// <param name="Directory">The directory, for messages.</param>
/// <param name="Accept">The target's side; null on an appliance that is not a target.</param>
/// <param name="Connect">The source's side; null when the directory has no client certificate.</param>
internal sealed record MigrationTls(string Directory, TlsSettings? Accept, TlsSettings? Connect);
