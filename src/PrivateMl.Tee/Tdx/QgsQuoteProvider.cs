using System.Buffers.Binary;
using System.Globalization;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace PrivateMl.Tee.Tdx;

/// <summary>
/// Quotes for guests without configfs-tsm: a TDREPORT from <c>/dev/tdx_guest</c> (TDX_CMD_GET_REPORT0) sent to the
/// host's Quote Generation Service over vsock (CID 2, the port in <c>/etc/tdx-attest.conf</c>, usually 4050), as
/// Intel's tdx-attest library and dstack do. Messages are framed by a 4-byte big-endian length; the QGS message is a
/// 16-byte header (major 1, minor 0, type, size, error code; little-endian) followed by the body.
/// </summary>
public sealed class QgsQuoteProvider : ITdxQuoteSource
{
    /// <summary>Intel's tdx-attest configuration file naming the QGS vsock port (<c>port=4050</c>).</summary>
    public const string DefaultConfigPath = "/etc/tdx-attest.conf";

    /// <summary>vsock CID of the host.</summary>
    public const uint HostCid = 2;

    /// <summary>Largest QGS response accepted.</summary>
    public const int MaxResponseBytes = 16 * 1024;

    internal const uint GetQuoteRequest = 0;
    internal const uint GetQuoteResponse = 1;
    internal const int HeaderSize = 16;

    private readonly Func<byte[], TdReport> _getReport;
    private readonly Func<CancellationToken, ValueTask<Stream>> _connect;
    private readonly Lock _lock = new();

    /// <summary>Uses <paramref name="getReport"/> for TDREPORTs and <paramref name="connect"/> (default: vsock CID 2,
    /// <paramref name="port"/>) to reach the QGS.</summary>
    public QgsQuoteProvider(Func<byte[], TdReport> getReport, uint port, Func<CancellationToken, ValueTask<Stream>>? connect = null)
    {
        ArgumentNullException.ThrowIfNull(getReport);
        ArgumentOutOfRangeException.ThrowIfZero(port);
        _getReport = getReport;
        Port = port;
        _connect = connect ?? (ct => ConnectVsockAsync(HostCid, port, ct));
    }

    public string Name => "tdx-guest+qgs";

    public uint Port { get; }

    /// <summary>The QGS over vsock with TDREPORTs from <paramref name="device"/>.</summary>
    public static QgsQuoteProvider ForTdxGuest(TdxGuestIoctl device, uint port)
    {
        ArgumentNullException.ThrowIfNull(device);
        return new QgsQuoteProvider(reportData => device.GetReport(reportData), port);
    }

    /// <summary>Reads <c>port=N</c> from a tdx-attest configuration file; null when the file or the line is missing.</summary>
    public static uint? ReadPort(string configPath = DefaultConfigPath)
    {
        ArgumentException.ThrowIfNullOrEmpty(configPath);
        string[] lines;
        try
        {
            var info = new FileInfo(configPath);
            if (!info.Exists || info.Length > 64 * 1024)
            {
                return null;
            }

            lines = File.ReadAllLines(configPath);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }

        foreach (var raw in lines)
        {
            var line = raw.Trim();
            if (line.StartsWith('#') || !line.StartsWith("port", StringComparison.Ordinal))
            {
                continue;
            }

            var rest = line["port".Length..].TrimStart();
            if (rest.StartsWith('=')
                && uint.TryParse(rest[1..].Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var port)
                && port > 0)
            {
                return port;
            }
        }

        return null;
    }

    public async ValueTask<byte[]> GetQuoteAsync(ReadOnlyMemory<byte> reportData, CancellationToken cancellationToken = default)
    {
        if (reportData.Length != TdxQuoteShape.ReportDataSize)
        {
            throw new ArgumentException("report data must be exactly 64 bytes (pad it)", nameof(reportData));
        }

        TdReport report;
        lock (_lock)
        {
            report = _getReport(reportData.ToArray());
        }

        var request = BuildRequest(report.ToArray());
        byte[] response;
        try
        {
            var stream = await _connect(cancellationToken).ConfigureAwait(false);
            await using (stream.ConfigureAwait(false))
            {
                var prefix = new byte[4];
                BinaryPrimitives.WriteUInt32BigEndian(prefix, (uint)request.Length);
                await stream.WriteAsync(prefix, cancellationToken).ConfigureAwait(false);
                await stream.WriteAsync(request, cancellationToken).ConfigureAwait(false);
                await stream.FlushAsync(cancellationToken).ConfigureAwait(false);

                await stream.ReadExactlyAsync(prefix, cancellationToken).ConfigureAwait(false);
                var length = BinaryPrimitives.ReadUInt32BigEndian(prefix);
                if (length > MaxResponseBytes)
                {
                    throw new TdxDeviceException(TdxDeviceError.QuoteServiceFailure, $"the QGS announced a {length}-byte response; the limit is {MaxResponseBytes}");
                }

                response = new byte[length];
                await stream.ReadExactlyAsync(response, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (EndOfStreamException e)
        {
            throw new TdxDeviceException(TdxDeviceError.QuoteServiceFailure, "the QGS closed the connection before a full response", e);
        }
        catch (SocketException e)
        {
            throw new TdxDeviceException(TdxDeviceError.QuoteServiceFailure, $"cannot reach the QGS on vsock {HostCid}:{Port}: {e.Message}", e);
        }
        catch (IOException e)
        {
            throw new TdxDeviceException(TdxDeviceError.QuoteServiceFailure, $"QGS exchange failed: {e.Message}", e);
        }

        var quote = ParseResponse(response);
        TdxQuoteShape.CheckQuote(quote, reportData.Span, "the QGS");
        return quote;
    }

    /// <summary>A GET_QUOTE_REQ message (without the length prefix) carrying <paramref name="tdReport"/>.</summary>
    internal static byte[] BuildRequest(ReadOnlySpan<byte> tdReport)
    {
        var size = HeaderSize + 4 + 4 + tdReport.Length;
        var message = new byte[size];
        var span = message.AsSpan();
        BinaryPrimitives.WriteUInt16LittleEndian(span, 1);
        BinaryPrimitives.WriteUInt16LittleEndian(span[2..], 0);
        BinaryPrimitives.WriteUInt32LittleEndian(span[4..], GetQuoteRequest);
        BinaryPrimitives.WriteUInt32LittleEndian(span[8..], (uint)size);
        BinaryPrimitives.WriteUInt32LittleEndian(span[12..], 0);
        BinaryPrimitives.WriteUInt32LittleEndian(span[16..], (uint)tdReport.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(span[20..], 0);
        tdReport.CopyTo(span[24..]);
        return message;
    }

    /// <summary>The quote inside a GET_QUOTE_RESP message; every length is checked against what is there.</summary>
    internal static byte[] ParseResponse(ReadOnlySpan<byte> message)
    {
        if (message.Length < HeaderSize + 8)
        {
            throw new TdxDeviceException(TdxDeviceError.QuoteServiceFailure, $"QGS response is {message.Length} bytes, shorter than its header");
        }

        var type = BinaryPrimitives.ReadUInt32LittleEndian(message[4..]);
        var error = BinaryPrimitives.ReadUInt32LittleEndian(message[12..]);
        if (type != GetQuoteResponse)
        {
            throw new TdxDeviceException(TdxDeviceError.QuoteServiceFailure, $"QGS answered message type {type}, not GET_QUOTE_RESP");
        }

        if (error != 0)
        {
            throw new TdxDeviceException(TdxDeviceError.QuoteServiceFailure, $"QGS returned error 0x{error:x}");
        }

        var selectedIdSize = BinaryPrimitives.ReadUInt32LittleEndian(message[16..]);
        var quoteSize = BinaryPrimitives.ReadUInt32LittleEndian(message[20..]);
        var body = message[(HeaderSize + 8)..];
        if (selectedIdSize > (uint)body.Length || quoteSize > (uint)body.Length - selectedIdSize)
        {
            throw new TdxDeviceException(TdxDeviceError.QuoteServiceFailure, $"QGS response announces {selectedIdSize} + {quoteSize} bytes but carries {body.Length}");
        }

        if (quoteSize == 0)
        {
            throw new TdxDeviceException(TdxDeviceError.QuoteServiceFailure, "QGS response holds no quote");
        }

        return body.Slice((int)selectedIdSize, (int)quoteSize).ToArray();
    }

    private static ValueTask<Stream> ConnectVsockAsync(uint cid, uint port, CancellationToken cancellationToken) =>
        new(Task.Run(() => VsockInterop.Connect(cid, port), cancellationToken));
}

/// <summary>
/// A vsock stream socket through libc (AF_VSOCK is not an address family .NET's socket layer knows), wrapped in an
/// unbuffered, non-seekable <see cref="FileStream"/>.
/// </summary>
internal static partial class VsockInterop
{
    public const int AfVsock = 40;
    public const int SockStream = 1;
    public const int SockCloexec = 0x80000;
    public const int SockaddrVmSize = 16;

    /// <summary><c>struct sockaddr_vm</c>: family u16, reserved u16, port u32, cid u32, flags u8, zero[3] (little-endian).</summary>
    public static byte[] SockaddrVm(uint cid, uint port)
    {
        var address = new byte[SockaddrVmSize];
        BinaryPrimitives.WriteUInt16LittleEndian(address, AfVsock);
        BinaryPrimitives.WriteUInt32LittleEndian(address.AsSpan(4), port);
        BinaryPrimitives.WriteUInt32LittleEndian(address.AsSpan(8), cid);
        return address;
    }

    public static Stream Connect(uint cid, uint port)
    {
        if (!OperatingSystem.IsLinux())
        {
            throw new TdxDeviceException(TdxDeviceError.NotPresent, "vsock exists only on Linux");
        }

        var fd = Socket(AfVsock, SockStream | SockCloexec, 0);
        if (fd < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw new TdxDeviceException(TdxDeviceError.QuoteServiceFailure, $"cannot create a vsock socket (errno {errno}); is the vsock transport loaded?");
        }

        var handle = new SafeFileHandle(fd, ownsHandle: true);
        if (ConnectSocket(fd, SockaddrVm(cid, port), SockaddrVmSize) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            handle.Dispose();
            throw new TdxDeviceException(TdxDeviceError.QuoteServiceFailure, $"cannot reach the QGS on vsock {cid}:{port} (errno {errno})");
        }

        return new FileStream(handle, FileAccess.ReadWrite, bufferSize: 0);
    }

    [LibraryImport("libc", EntryPoint = "socket", SetLastError = true)]
    private static partial int Socket(int domain, int type, int protocol);

    [LibraryImport("libc", EntryPoint = "connect", SetLastError = true)]
    private static partial int ConnectSocket(int fd, [In] byte[] address, uint length);
}
