using System.Text;
using PrivateMl.Attestation.EventLog;
using PrivateMl.Attestation.Verification;
using PrivateMl.Tee.Tdx;

namespace PrivateMl.Tee.EventLog;

/// <summary>Where a <see cref="RuntimeEventLog"/> keeps its events and what it serves before them.</summary>
public sealed class RuntimeEventLogOptions
{
    /// <summary>
    /// JSON-lines file holding the runtime events (dstack v0.5.5 uses <see cref="RuntimeEventLog.DefaultLogFilePath"/>).
    /// Events already in it are served again after a restart. Null keeps the log in memory only.
    /// </summary>
    public string? LogFilePath { get; init; }

    /// <summary>Boot-time events (CCEL, RTMR0–2, or a simulator profile) served before the runtime events.</summary>
    public IReadOnlyList<TdxEvent> BootEvents { get; init; } = [];

    /// <summary>Digest rule for new events; dstack v0.5.5 and the current SDKs' replay use <see cref="TdxEventLogVersion.V1"/>.</summary>
    public TdxEventLogVersion Version { get; init; } = TdxEventLogVersion.V1;
}

/// <summary>
/// The RTMR3 runtime event log of this TD. <see cref="EmitAsync"/> computes dstack's digest, extends RTMR3 through the
/// <see cref="ITdxDevice"/> and appends the event, in that order, one event at a time, so the log always replays to
/// RTMR3. Events are persisted as JSON lines (the same lines dstack's guest agent writes), so a restarted agent serves
/// the same log. Thread-safe.
/// </summary>
public sealed class RuntimeEventLog : IDisposable
{
    /// <summary>dstack v0.5.5's runtime event log file.</summary>
    public const string DefaultLogFilePath = "/run/log/tdx_mr3/tdx_events.log";

    /// <summary>Largest log file read back at start.</summary>
    public const int MaxLogFileBytes = TdxEventLogLimits.MaxEventLogBytes;

    private readonly ITdxDevice _device;
    private readonly TdxEventLogVersion _version;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly FileStream? _file;
    private readonly TdxEvent[] _bootEvents;
    private volatile TdxEvent[] _runtimeEvents;
    private bool _disposed;

    private RuntimeEventLog(ITdxDevice device, RuntimeEventLogOptions options, TdxEvent[] existing, FileStream? file)
    {
        _device = device;
        _version = options.Version;
        _bootEvents = [.. options.BootEvents];
        _runtimeEvents = existing;
        _file = file;
    }

    /// <summary>The device whose RTMR3 this log describes.</summary>
    public ITdxDevice Device => _device;

    /// <summary>Boot-time events given at open.</summary>
    public IReadOnlyList<TdxEvent> BootEvents => _bootEvents;

    /// <summary>Runtime events so far (a snapshot).</summary>
    public IReadOnlyList<TdxEvent> RuntimeEvents => _runtimeEvents;

    /// <summary>
    /// Opens the log: reads the events already in <see cref="RuntimeEventLogOptions.LogFilePath"/> (they were extended
    /// into RTMR3 when first emitted and are not extended again) and keeps the file open for appending. A file that is
    /// not a valid runtime log gives an <see cref="AttestationException"/>; nothing is changed then.
    /// </summary>
    public static RuntimeEventLog Open(ITdxDevice device, RuntimeEventLogOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(device);
        options ??= new RuntimeEventLogOptions();
        foreach (var boot in options.BootEvents)
        {
            ArgumentNullException.ThrowIfNull(boot, nameof(options));
        }

        if (options.LogFilePath is null)
        {
            return new RuntimeEventLog(device, options, [], null);
        }

        var existing = ReadExisting(options.LogFilePath);
        var directory = Path.GetDirectoryName(Path.GetFullPath(options.LogFilePath));
        if (!string.IsNullOrEmpty(directory))
        {
            Directory.CreateDirectory(directory);
        }

        var fileOptions = new FileStreamOptions
        {
            Mode = FileMode.Append,
            Access = FileAccess.Write,
            Share = FileShare.Read,
        };
        if (!OperatingSystem.IsWindows())
        {
            fileOptions.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        var file = new FileStream(options.LogFilePath, fileOptions);
        return new RuntimeEventLog(device, options, existing, file);
    }

    /// <summary>
    /// Emits one runtime event: builds it (dstack digest over name and payload), extends RTMR3 with the digest, then
    /// appends it to the log and the file. Oversized names or payloads are rejected with an
    /// <see cref="AttestationException"/> before anything is extended. If the device refuses, nothing is logged. If
    /// writing the file fails after the extension, the event stays in the served log and the I/O error propagates.
    /// </summary>
    public async ValueTask<TdxEvent> EmitAsync(string name, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(name);
        var tdxEvent = TdxEvent.CreateRuntime(name, payload.Span, _version);
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, this);

            cancellationToken.ThrowIfCancellationRequested();

            // From here on the event must reach the log once extended, so the caller's token no longer applies.
            await _device.ExtendRtmrAsync(3, tdxEvent.Digest, CancellationToken.None).ConfigureAwait(false);
            _runtimeEvents = [.. _runtimeEvents, tdxEvent];
            if (_file is not null)
            {
                var line = Encoding.UTF8.GetBytes(tdxEvent.ToJson() + "\n");
                await _file.WriteAsync(line, CancellationToken.None).ConfigureAwait(false);
                _file.Flush(flushToDisk: true);
            }

            return tdxEvent;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Boot events followed by runtime events (a snapshot).</summary>
    public IReadOnlyList<TdxEvent> GetEvents() => [.. _bootEvents, .. _runtimeEvents];

    /// <summary>The whole log as dstack's compact JSON array (the <c>event_log</c> string of GetQuote).</summary>
    public string ToJson() => TdxEventLog.Serialize(GetEvents());

    /// <summary>What the whole log replays to.</summary>
    public ReplayedRtmrs Replay() => RtmrReplay.Replay(GetEvents());

    /// <summary>
    /// Gets a quote and the event log that matches it: no event is emitted between reading the log and producing the
    /// quote, so the log replays to the quote's RTMRs.
    /// </summary>
    public async ValueTask<(byte[] Quote, IReadOnlyList<TdxEvent> Events)> GetQuoteWithEventsAsync(
        ReadOnlyMemory<byte> reportData,
        CancellationToken cancellationToken = default)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var events = GetEvents();
            var quote = await _device.GetQuoteAsync(reportData, cancellationToken).ConfigureAwait(false);
            return (quote, events);
        }
        finally
        {
            _gate.Release();
        }
    }

    public void Dispose()
    {
        _gate.Wait();
        try
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            _file?.Dispose();
        }
        finally
        {
            _gate.Release();
        }
    }

    private static TdxEvent[] ReadExisting(string path)
    {
        var info = new FileInfo(path);
        if (!info.Exists)
        {
            return [];
        }

        if (info.Length > MaxLogFileBytes)
        {
            throw new AttestationException(ErrorCode.EventLogTooLarge, $"{path} is {info.Length} bytes; the limit is {MaxLogFileBytes}");
        }

        var text = File.ReadAllText(path, Encoding.UTF8);
        if (text.Length != 0 && text[^1] != '\n')
        {
            throw new AttestationException(ErrorCode.EventLogMalformed, $"{path} does not end with a complete line; the last event may not have been written fully");
        }

        IReadOnlyList<TdxEvent> events;
        try
        {
            events = TdxEventLog.ParseLines(text);
        }
        catch (AttestationException e)
        {
            throw new AttestationException(e.Code, $"{path}: {e.Message}", e);
        }

        for (var i = 0; i < events.Count; i++)
        {
            var e = events[i];
            if (e.Imr != 3 || !e.IsRuntimeEvent)
            {
                throw new AttestationException(ErrorCode.EventLogMalformed, $"{path}: entry {i} is not an RTMR3 runtime event");
            }

            if (e.HasMismatchedDigest)
            {
                throw new AttestationException(ErrorCode.EventLogDigestMismatch, $"{path}: entry {i} (\"{e.Event}\") has a digest that does not match its content");
            }
        }

        return [.. events];
    }
}
