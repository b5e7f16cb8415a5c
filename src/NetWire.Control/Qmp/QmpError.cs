namespace NetWire.Control.Qmp;

/// <summary>QMP error classes (QEMU's ErrorClass names that NetWire uses).</summary>
internal static class QmpErrorClass
{
    /// <summary>Everything but an unknown command, as QEMU.</summary>
    public const string GenericError = "GenericError";

    /// <summary>Unknown command, or a command before / a repeated <c>qmp_capabilities</c>.</summary>
    public const string CommandNotFound = "CommandNotFound";
}

/// <summary>A command failed: the reply is <c>{"error": {"class", "desc"}}</c> and the session goes on.</summary>
internal sealed class QmpException : Exception
{
    public QmpException(string errorClass, string description)
        : base(description) => ErrorClass = errorClass;

    public QmpException()
        : this(QmpErrorClass.GenericError, "error")
    {
    }

    public QmpException(string message)
        : this(QmpErrorClass.GenericError, message)
    {
    }

    public QmpException(string message, Exception innerException)
        : base(message, innerException) => ErrorClass = QmpErrorClass.GenericError;

    public string ErrorClass { get; }

    public static QmpException Generic(string description) => new(QmpErrorClass.GenericError, description);
}
