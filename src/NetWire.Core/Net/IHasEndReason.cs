namespace NetWire.Core.Net;

/// <summary>An exception that knows which <see cref="EndReason"/> it stands for (a protocol violation, a refused link).</summary>
public interface IHasEndReason
{
    /// <summary>The end reason of a connection that ends with this exception.</summary>
    EndReason EndReason { get; }
}
