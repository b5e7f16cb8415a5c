using System.Runtime.InteropServices;

namespace NetWire.Devices.Interop;

/// <summary>The few libc calls the TAP end needs, with Linux x86-64/arm64 constants.</summary>
internal static unsafe partial class Libc
{
    public const int ORdWr = 0x2;
    public const int ONonBlock = 0x800;
    public const int OCloExec = 0x80000;

    public const int EIntr = 4;
    public const int EAgain = 11;
    public const int EPerm = 1;
    public const int ENoEnt = 2;
    public const int EIo = 5;
    public const int EBusy = 16;
    public const int EAccess = 13;
    public const int EInval = 22;
    public const int EOpNotSupp = 95;
    public const int EBadFd = 77;
    public const int EPipe = 32;

    public const short PollIn = 0x1;
    public const short PollOut = 0x4;

    public const int MsgDontWait = 0x40;
    public const int MsgNoSignal = 0x4000;

    public const int AfInet = 2;
    public const int SockDgram = 2;

    /// <summary>struct iovec: one buffer of a scatter/gather call.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct IoVec
    {
        public void* Base;
        public nuint Length;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct PollFd
    {
        public int Fd;
        public short Events;
        public short REvents;
    }

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);

    [LibraryImport("libc", EntryPoint = "read", SetLastError = true)]
    public static partial nint Read(int fd, byte* buffer, nint count);

    [LibraryImport("libc", EntryPoint = "write", SetLastError = true)]
    public static partial nint Write(int fd, byte* buffer, nint count);

    [LibraryImport("libc", EntryPoint = "writev", SetLastError = true)]
    public static partial nint Writev(int fd, IoVec* vectors, int count);

    [LibraryImport("libc", EntryPoint = "send", SetLastError = true)]
    public static partial nint Send(int fd, byte* buffer, nint count, int flags);

    [LibraryImport("libc", EntryPoint = "recv", SetLastError = true)]
    public static partial nint Recv(int fd, byte* buffer, nint count, int flags);

    [LibraryImport("libc", EntryPoint = "eventfd", SetLastError = true)]
    public static partial int EventFd(uint initial, int flags);

    /// <summary>EFD_CLOEXEC | EFD_NONBLOCK.</summary>
    public const int EventFdFlags = 0x80000 | 0x800;

    [LibraryImport("libc", EntryPoint = "poll", SetLastError = true)]
    public static partial int Poll(PollFd* fds, nuint count, int timeoutMs);

    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    public static partial int Ioctl(int fd, nuint request, void* argument);

    [LibraryImport("libc", EntryPoint = "socket", SetLastError = true)]
    public static partial int Socket(int domain, int type, int protocol);

    /// <summary>SOL_SOCKET, and SCM_RIGHTS: a control message carrying file descriptors.</summary>
    public const int SolSocket = 1;
    public const int ScmRights = 1;

    /// <summary>MSG_CMSG_CLOEXEC: received descriptors are close-on-exec.</summary>
    public const int MsgCmsgCloExec = 0x40000000;

    /// <summary>struct msghdr (64-bit layout; Sequential adds the padding after msg_namelen).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct MsgHdr
    {
        public void* Name;
        public uint NameLength;
        public IoVec* Iov;
        public nuint IovLength;
        public void* Control;
        public nuint ControlLength;
        public int Flags;
    }

    /// <summary>struct cmsghdr followed by one int: CMSG_SPACE(sizeof(int)) on 64-bit Linux is 24 bytes.</summary>
    [StructLayout(LayoutKind.Sequential, Size = 24)]
    public struct FdControlMessage
    {
        public nuint Length;
        public int Level;
        public int Type;
        public int Fd;
    }

    /// <summary>CMSG_LEN(sizeof(int)): the header (16 bytes) plus the descriptor.</summary>
    public const int FdControlMessageLength = 20;

    [LibraryImport("libc", EntryPoint = "sendmsg", SetLastError = true)]
    public static partial nint SendMsg(nint socket, MsgHdr* message, int flags);

    [LibraryImport("libc", EntryPoint = "recvmsg", SetLastError = true)]
    public static partial nint RecvMsg(nint socket, MsgHdr* message, int flags);

    [LibraryImport("libc", EntryPoint = "lstat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int LStat(string path, byte* stat);

    /// <summary>
    /// True if <paramref name="path"/> is a socket, false if it is something else, null if it
    /// cannot be told (missing, or an architecture whose struct stat is not mapped here).
    /// </summary>
    public static bool? IsSocket(string path)
    {
        // x86-64 struct stat: st_dev (8), st_ino (8), st_nlink (8), then st_mode (4).
        if (RuntimeInformation.ProcessArchitecture != Architecture.X64)
        {
            return null;
        }

        var stat = stackalloc byte[256];
        if (LStat(path, stat) != 0)
        {
            return null;
        }

        const uint SIfMt = 0xF000;
        const uint SIfSock = 0xC000;
        return (*(uint*)(stat + 24) & SIfMt) == SIfSock;
    }

    /// <summary>syscall(2), for the io_uring calls glibc has no wrapper for (numbers 425 and 426 on every architecture).</summary>
    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    public static partial nint Syscall(nint number, nint a1, nint a2, nint a3, nint a4, nint a5, nint a6);

    [LibraryImport("libc", EntryPoint = "mmap", SetLastError = true)]
    public static partial nint Mmap(nint address, nuint length, int protection, int flags, int fd, nint offset);

    [LibraryImport("libc", EntryPoint = "munmap", SetLastError = true)]
    public static partial int Munmap(nint address, nuint length);

    [LibraryImport("libc", EntryPoint = "strerror")]
    private static partial nint StrError(int errno);

    public static string Describe(int errno) => Marshal.PtrToStringUTF8(StrError(errno)) ?? $"errno {errno}";
}
