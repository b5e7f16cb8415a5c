namespace NetWire.Core.Wire;

/// <summary>A descriptor watched by an <see cref="IInputLoop"/>; disposing it stops the watch and waits for a call in progress.</summary>
public interface IInputWatch : IDisposable
{
    /// <summary>Watches again after <see cref="IInputSource.OnReadable"/> returned false. Any thread.</summary>
    void Resume();
}
