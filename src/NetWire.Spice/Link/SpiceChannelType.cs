namespace NetWire.Spice.Link;

/// <summary>SPICE channel types (protocol.md §1.8). A byte on the wire; values outside 1..11 are unknown.</summary>
internal enum SpiceChannelType : byte
{
    Main = 1,
    Display = 2,
    Inputs = 3,
    Cursor = 4,
    Playback = 5,
    Record = 6,
    Tunnel = 7,
    Smartcard = 8,
    Usbredir = 9,
    Port = 10,
    Webdav = 11,
}
