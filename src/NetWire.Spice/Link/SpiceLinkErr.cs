namespace NetWire.Spice.Link;

/// <summary>SpiceLinkErr (spice-protocol enums.h; protocol.md §1.7): link reply error and 4-byte link result.</summary>
internal enum SpiceLinkErr : uint
{
    Ok = 0,
    Error = 1,
    InvalidMagic = 2,
    InvalidData = 3,
    VersionMismatch = 4,
    NeedSecured = 5,
    NeedUnsecured = 6,
    PermissionDenied = 7,
    BadConnectionId = 8,
    ChannelNotAvailable = 9,
}
