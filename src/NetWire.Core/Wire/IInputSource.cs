namespace NetWire.Core.Wire;

/// <summary>The reading side of a descriptor watched by an <see cref="IInputLoop"/>.</summary>
public interface IInputSource
{
    /// <summary>
    /// The descriptor is readable: read a bounded amount without blocking and hand it on. Returns
    /// false to stop the watch until <see cref="IInputWatch.Resume"/> (the receiver is full, or
    /// the descriptor failed); true otherwise, also with input left (the loop calls again).
    /// Called on the loop's thread, never concurrently with itself or after the watch's disposal returned.
    /// </summary>
    bool OnReadable();
}
