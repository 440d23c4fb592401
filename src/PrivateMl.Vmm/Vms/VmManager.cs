using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using PrivateMl.Vmm.Compose;
using PrivateMl.Vmm.Gpus;
using PrivateMl.Vmm.Hosting;
using PrivateMl.Vmm.Images;
using PrivateMl.Vmm.Qemu;

namespace PrivateMl.Vmm.Vms;

/// <summary>
/// The VMs under <c>run_path</c>: create (validated completely before anything is written; a failure after that
/// removes the work directory), start, stop, remove, upgrade, status. All state lives in the work directories, so a
/// restarted service sees the same VMs and asks /proc whether their qemu still runs.
/// </summary>
public sealed partial class VmManager : IDisposable
{
    private readonly SemaphoreSlim gate = new(1, 1);
    private readonly Dictionary<string, Process> children = new(StringComparer.Ordinal);
    private readonly Func<HostCapabilities> capabilities;
    private readonly ConcurrentDictionary<string, GuestState> guests = new(StringComparer.Ordinal);

    public VmManager(VmmOptions options, Func<HostCapabilities>? capabilities = null, TimeProvider? time = null, Func<string, bool>? portFree = null)
    {
        Options = options ?? throw new ArgumentNullException(nameof(options));
        Time = time ?? TimeProvider.System;
        var probed = new Lazy<HostCapabilities>(() => HostCapabilities.Probe(options.QemuPath, options.ProcRoot, options.SysfsRoot));
        this.capabilities = capabilities ?? (() => probed.Value);
        Gpus = new SysfsPciScanner(options.SysfsRoot);
        PortFree = portFree ?? IsPortFree;
        Directory.CreateDirectory(options.RunPath);
    }

    public VmmOptions Options { get; }

    /// <summary>Where the manager says what it did on its own (fallbacks, kills after a deadline); the host sets it.</summary>
    public ILogger Logger { get; set; } = NullLogger.Instance;

    public void Dispose()
    {
        gate.Dispose();
        foreach (var process in children.Values)
        {
            process.Dispose();
        }

        children.Clear();
    }

    public TimeProvider Time { get; }

    public SysfsPciScanner Gpus { get; }

    /// <summary>"proto:address:port" → whether it can be bound now.</summary>
    private Func<string, bool> PortFree { get; }

    /// <summary>How the guest reaches the host API (set by the host once it knows its listener).</summary>
    public Func<VmManifest, string> HostApiUrl { get; set; } = _ => "";

    public HostCapabilities Capabilities => capabilities();

    /// <summary>Ids of every VM directory under run_path, oldest first.</summary>
    public IReadOnlyList<VmWorkDir> WorkDirs() =>
        Directory.EnumerateDirectories(Options.RunPath)
            .Where(d => File.Exists(Path.Combine(d, "vm-manifest.json")))
            .Select(d => new VmWorkDir(d))
            .OrderBy(w => SafeManifest(w)?.CreatedAtMs ?? 0)
            .ToList();

    public VmWorkDir WorkDir(string id)
    {
        if (!Uuid().IsMatch(id ?? ""))
        {
            throw new VmmException(VmmErrorCode.UnknownVm, $"'{id}' is not a VM id");
        }

        var dir = new VmWorkDir(Path.Combine(Options.RunPath, id!));
        return File.Exists(dir.ManifestPath) ? dir : throw new VmmException(VmmErrorCode.UnknownVm, $"no VM {id}");
    }

    /// <summary>CreateVm: validates everything, writes the work directory, starts unless <c>stopped</c>.</summary>
    public async Task<string> CreateAsync(VmConfiguration request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        await gate.WaitAsync(cancellationToken);
        try
        {
            ValidateName(request.Name);
            var image = VmImage.Load(Options.ImagePath, request.Image);
            RequireImageVersion(image);
            var compose = AppCompose.Parse(Encoding.UTF8.GetBytes(request.ComposeFile));
            var appId = request.AppId is { Length: > 0 } explicitId ? NormalizeAppId(explicitId) : Convert.ToHexStringLower(compose.DefaultAppId);
            var encryptedEnv = request.EncryptedEnv.Length == 0 ? [] : Hex.Decode(request.EncryptedEnv, "encrypted_env");
            if (encryptedEnv.Length > 2 * 1024 * 1024)
            {
                throw VmmException.Invalid("encrypted_env is larger than 2 MiB");
            }

            var id = Guid.NewGuid().ToString();
            var manifest = new VmManifest
            {
                Id = id,
                Name = request.Name,
                AppId = appId,
                Vcpu = Range(request.Vcpu == 0 ? 1 : request.Vcpu, 1, 512, "vcpu"),
                Memory = Range(request.Memory == 0 ? 1024 : request.Memory, 64, 4 * 1024 * 1024, "memory (MB)"),
                DiskSize = Range(request.DiskSize == 0 ? 20 : request.DiskSize, 1, 64 * 1024, "disk_size (GB)"),
                Image = image.Name,
                PortMap = ResolvePorts(request.Ports),
                CreatedAtMs = Time.GetUtcNow().ToUnixTimeMilliseconds(),
                Hugepages = request.Hugepages,
                PinNuma = request.PinNuma,
                Gpus = ResolveGpus(request.Gpus),
                KmsUrls = request.KmsUrls,
                GatewayUrls = request.GatewayUrls,
                NoTee = request.NoTee || Options.NoTee,
            };
            CheckHost(manifest);
            CheckConflicts(manifest, checkBind: !request.Stopped);

            var workDir = new VmWorkDir(Path.Combine(Options.RunPath, id));
            try
            {
                Directory.CreateDirectory(workDir.SharedDir);
                workDir.WriteManifest(manifest);
                File.WriteAllBytes(workDir.SharedFile(VmWorkDir.AppComposeFile), compose.Bytes);
                if (encryptedEnv.Length > 0)
                {
                    File.WriteAllBytes(workDir.SharedFile(VmWorkDir.EncryptedEnvFile), encryptedEnv);
                }

                if (request.UserConfig.Length > 0)
                {
                    File.WriteAllText(workDir.SharedFile(VmWorkDir.UserConfigFile), request.UserConfig);
                }

                File.WriteAllText(workDir.SharedFile(VmWorkDir.InstanceInfoFile), $"{{\"app_id\":\"{appId}\"}}");
                workDir.Started = !request.Stopped;
                if (!request.Stopped)
                {
                    await StartLockedAsync(workDir, cancellationToken);
                }
            }
            catch
            {
                await VmProcess.StopAsync(workDir, force: true, TimeSpan.FromSeconds(5), Options.ProcRoot, CancellationToken.None);
                Directory.Delete(workDir.Path, recursive: true);
                throw;
            }

            return id;
        }
        finally
        {
            gate.Release();
        }
    }

    public Task StartAsync(string id, CancellationToken cancellationToken = default) => Locked(async () =>
    {
        var workDir = WorkDir(id);
        if (VmProcess.RunningPid(workDir, Options.ProcRoot) is not null)
        {
            throw new VmmException(VmmErrorCode.InvalidState, workDir.Started
                ? $"VM {id} is already running"
                : $"VM {id} is stopping (waiting for the guest to power off); wait, or stop it with --force first");
        }

        var manifest = workDir.ReadManifest();
        CheckHost(manifest);
        CheckConflicts(manifest, checkBind: true);
        await StartLockedAsync(workDir, cancellationToken);
        workDir.Stopping = null;
        workDir.Started = true;
    }, cancellationToken);

    /// <summary>
    /// StopVm with <paramref name="force"/> (dstack's: qemu is killed at once), else ShutdownVm (<see cref="ShutdownAsync"/>).
    /// </summary>
    public Task StopAsync(string id, bool force, CancellationToken cancellationToken = default) =>
        force ? KillAsync(id, cancellationToken) : ShutdownAsync(id, cancellationToken);

    /// <summary>StopVm: marks the VM stopped and kills qemu now (SIGKILL), ending any graceful stop in progress.</summary>
    public Task KillAsync(string id, CancellationToken cancellationToken = default) => Locked(async () =>
    {
        var workDir = WorkDir(id);
        workDir.Started = false;
        if (!await VmProcess.StopAsync(workDir, force: true, TimeSpan.FromSeconds(10), Options.ProcRoot, cancellationToken))
        {
            throw new VmmException(VmmErrorCode.InvalidState, $"VM {id}'s qemu did not exit");
        }

        workDir.Stopping = null;
        Reap(id);
    }, cancellationToken);

    /// <summary>
    /// ShutdownVm: marks the VM stopped (lsvm shows <c>stopping</c> while qemu runs), presses the ACPI power button
    /// through QMP and returns; qemu exits when the guest powers off, and <see cref="EnforceStopDeadlinesAsync"/> kills it
    /// if it has not after <c>shutdown_timeout_secs</c>. The deadline is kept in the work directory, so a restarted
    /// service still enforces it. Without a QMP socket that answers (an older VM, a path too long for a socket, a wedged
    /// qemu) the guest cannot be asked, and qemu is stopped at once (SIGTERM, then SIGKILL). Asking again while stopping
    /// presses the button again but keeps the first deadline.
    /// </summary>
    public Task ShutdownAsync(string id, CancellationToken cancellationToken = default) => Locked(async () =>
    {
        var workDir = WorkDir(id);
        workDir.Started = false;
        if (VmProcess.RunningPid(workDir, Options.ProcRoot) is null)
        {
            workDir.Stopping = null;
            Reap(id);
            return;
        }

        try
        {
            await QmpClient.PowerdownAsync(workDir.QmpSocket, TimeSpan.FromSeconds(10), cancellationToken);
        }
        catch (VmmException e) when (e.Code == VmmErrorCode.GuestUnreachable)
        {
            Logger.LogWarning("VM {Id}: cannot ask the guest to power off ({Reason}); stopping qemu now", id, e.Message);
            if (!await VmProcess.StopAsync(workDir, force: false, TimeSpan.FromSeconds(10), Options.ProcRoot, cancellationToken))
            {
                throw new VmmException(VmmErrorCode.InvalidState, $"VM {id}'s qemu did not exit");
            }

            workDir.Stopping = null;
            Reap(id);
            return;
        }

        var now = Time.GetUtcNow().ToUnixTimeMilliseconds();
        workDir.Stopping ??= new StopRequest { RequestedAtMs = now, DeadlineMs = now + (Options.ShutdownTimeoutSeconds * 1000L), Via = "acpi" };
        Logger.LogInformation("VM {Id}: ACPI power button pressed; qemu is killed if still running after {Seconds} s", id, Options.ShutdownTimeoutSeconds);
    }, cancellationToken);

    /// <summary>
    /// Ends graceful stops: clears the marker of a VM whose qemu has exited, kills qemu once its deadline has passed.
    /// The service runs this every second; it is safe to run at any time. Returns the ids it killed.
    /// </summary>
    public Task<IReadOnlyList<string>> EnforceStopDeadlinesAsync(CancellationToken cancellationToken = default) => Locked<IReadOnlyList<string>>(async () =>
    {
        var killed = new List<string>();
        var now = Time.GetUtcNow().ToUnixTimeMilliseconds();
        foreach (var workDir in WorkDirs())
        {
            if (workDir.Stopping is not { } stop)
            {
                continue;
            }

            var id = Path.GetFileName(workDir.Path);
            if (VmProcess.RunningPid(workDir, Options.ProcRoot) is null)
            {
                workDir.Stopping = null;
                Reap(id);
                continue;
            }

            if (workDir.Started)
            {
                // Started again by other means (an older service); the stop no longer applies.
                workDir.Stopping = null;
                continue;
            }

            if (now < stop.DeadlineMs)
            {
                continue;
            }

            Logger.LogWarning("VM {Id}: the guest did not power off within {Seconds} s; killing qemu", id, (stop.DeadlineMs - stop.RequestedAtMs) / 1000);
            if (await VmProcess.StopAsync(workDir, force: true, TimeSpan.FromSeconds(10), Options.ProcRoot, cancellationToken))
            {
                workDir.Stopping = null;
                Reap(id);
                killed.Add(id);
            }
        }

        return killed;
    }, cancellationToken);

    public Task RemoveAsync(string id, CancellationToken cancellationToken = default) => Locked(async () =>
    {
        var workDir = WorkDir(id);
        workDir.Started = false;
        if (!await VmProcess.StopAsync(workDir, force: true, TimeSpan.FromSeconds(10), Options.ProcRoot, cancellationToken))
        {
            throw new VmmException(VmmErrorCode.InvalidState, $"VM {id}'s qemu did not exit; not removed");
        }

        Reap(id);
        guests.TryRemove(id, out _);
        Directory.Delete(workDir.Path, recursive: true);
    }, cancellationToken);

    /// <summary>
    /// UpgradeApp / UpdateVm: replaces what the request carries (non-empty compose, env, user config; ports with
    /// update_ports; KMS/gateway URLs with update_*; GPUs when given; vcpu/memory/disk/image as ResizeVm does; no_tee).
    /// Everything is validated before anything is written, so a refusal leaves the VM as it was. Effective at the next
    /// start. Returns the new compose's default app_id, else "".
    /// </summary>
    public Task<string> UpgradeAsync(UpgradeAppRequest request, CancellationToken cancellationToken = default) => Locked(async () =>
    {
        ArgumentNullException.ThrowIfNull(request);
        var workDir = WorkDir(request.Id);
        var manifest = workDir.ReadManifest();
        AppCompose? compose = request.ComposeFile.Length > 0 ? AppCompose.Parse(Encoding.UTF8.GetBytes(request.ComposeFile)) : null;
        var env = request.EncryptedEnv.Length > 0 ? Hex.Decode(request.EncryptedEnv, "encrypted_env") : null;
        if (env is { Length: > 2 * 1024 * 1024 })
        {
            throw VmmException.Invalid("encrypted_env is larger than 2 MiB");
        }

        int? growDisk = null;
        if (request.Vcpu is not null || request.Memory is not null || request.DiskSize is not null || request.Image is not null)
        {
            (manifest, growDisk) = PlanResize(workDir, manifest, new ResizeVmRequest { Id = request.Id, Vcpu = request.Vcpu, Memory = request.Memory, DiskSize = request.DiskSize, Image = request.Image });
        }

        if (request.Gpus is not null)
        {
            manifest = manifest with { Gpus = ResolveGpus(request.Gpus) };
        }

        if (request.UpdatePorts)
        {
            manifest = manifest with { PortMap = ResolvePorts(request.Ports) };
        }

        if (request.UpdateKmsUrls)
        {
            manifest = manifest with { KmsUrls = CheckUrls(request.KmsUrls, "kms_urls") };
        }

        if (request.UpdateGatewayUrls)
        {
            manifest = manifest with { GatewayUrls = CheckUrls(request.GatewayUrls, "gateway_urls") };
        }

        if (request.NoTee is { } noTee)
        {
            manifest = manifest with { NoTee = noTee || Options.NoTee };
        }

        CheckConflicts(manifest, checkBind: false);
        if (growDisk is { } size)
        {
            await GrowDiskAsync(workDir, size, cancellationToken);
        }

        if (compose is not null)
        {
            File.WriteAllBytes(workDir.SharedFile(VmWorkDir.AppComposeFile), compose.Bytes);
        }

        if (env is not null)
        {
            File.WriteAllBytes(workDir.SharedFile(VmWorkDir.EncryptedEnvFile), env);
        }

        if (request.UserConfig.Length > 0)
        {
            File.WriteAllText(workDir.SharedFile(VmWorkDir.UserConfigFile), request.UserConfig);
        }

        workDir.WriteManifest(manifest);
        return compose is null ? "" : Convert.ToHexStringLower(compose.DefaultAppId);
    }, cancellationToken);

    /// <summary>
    /// ResizeVm: vcpu, memory, disk (grow only: <c>qemu-img resize</c> of an existing data disk, else the size of the disk
    /// created at the next start) and image, applied at the next start. Refused unless the VM is stopped or exited, as
    /// dstack refuses; every refusal is a <see cref="VmmException"/> and leaves the manifest and the disk as they were.
    /// </summary>
    public Task ResizeAsync(ResizeVmRequest request, CancellationToken cancellationToken = default) => Locked(async () =>
    {
        ArgumentNullException.ThrowIfNull(request);
        var workDir = WorkDir(request.Id);
        var (manifest, growDisk) = PlanResize(workDir, workDir.ReadManifest(), request);
        if (growDisk is { } size)
        {
            await GrowDiskAsync(workDir, size, cancellationToken);
        }

        workDir.WriteManifest(manifest);
    }, cancellationToken);

    /// <summary>Validates a resize completely; returns the new manifest and the size to grow an existing disk to.</summary>
    private (VmManifest Manifest, int? GrowDisk) PlanResize(VmWorkDir workDir, VmManifest manifest, ResizeVmRequest request)
    {
        if (request.Vcpu is null && request.Memory is null && request.DiskSize is null && request.Image is null)
        {
            throw VmmException.Invalid("resize request contains no updates (vcpu, memory, disk_size or image)");
        }

        if (request.Image is { Length: 0 })
        {
            throw VmmException.Invalid("image must not be empty");
        }

        var vcpu = request.Vcpu is { } v ? Range(v, 1, 512, "vcpu") : manifest.Vcpu;
        var memory = request.Memory is { } m ? Range(m, 64, 4 * 1024 * 1024, "memory (MB)") : manifest.Memory;
        var disk = request.DiskSize is { } d ? Range(d, 1, 64 * 1024, "disk_size (GB)") : manifest.DiskSize;
        if (disk < manifest.DiskSize)
        {
            throw VmmException.Invalid($"cannot shrink the disk: it has {manifest.DiskSize} GB, asked for {disk} GB");
        }

        var image = manifest.Image;
        if (request.Image is { } name)
        {
            var loaded = VmImage.Load(Options.ImagePath, name);
            RequireImageVersion(loaded);
            image = loaded.Name;
        }

        if (VmProcess.RunningPid(workDir, Options.ProcRoot) is not null)
        {
            throw new VmmException(VmmErrorCode.InvalidState, $"VM {manifest.Id} is {(workDir.Started ? "running" : "stopping")}; stop it before resizing (the new size applies at its next start)");
        }

        var grow = disk > manifest.DiskSize && File.Exists(workDir.HdaPath) ? disk : (int?)null;
        return (manifest with { Vcpu = vcpu, Memory = memory, DiskSize = disk, Image = image }, grow);
    }

    private async Task GrowDiskAsync(VmWorkDir workDir, int sizeGb, CancellationToken cancellationToken) =>
        await RunQemuImgAsync(["resize", workDir.HdaPath, $"{sizeGb}G"], "resize", cancellationToken);

    private static IReadOnlyList<string> CheckUrls(IReadOnlyList<string> urls, string what)
    {
        foreach (var url in urls)
        {
            if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
            {
                throw VmmException.Invalid($"{what}: '{url}' is not an http(s) URL");
            }
        }

        return urls;
    }

    /// <summary>
    /// A guest's report through the host API (dstack's Notify events): <c>boot.progress</c>, <c>boot.error</c>,
    /// <c>shutdown.progress</c> (<c>"powering off"</c> marks the VM stopped, as dstack does, and starts the kill deadline
    /// in case the guest hangs on its way down). Kept in memory, as dstack keeps them; the last 20 are listed.
    /// </summary>
    public void RecordGuestEvent(string id, string evt, string body)
    {
        var workDir = WorkDir(id);
        var state = guests.GetOrAdd(id, _ => new GuestState());
        lock (state.Sync)
        {
            state.Events.Add(new GuestEvent { Event = evt, Body = body, Timestamp = (ulong)Time.GetUtcNow().ToUnixTimeMilliseconds() });
            if (state.Events.Count > 20)
            {
                state.Events.RemoveAt(0);
            }

            switch (evt)
            {
                case "boot.progress":
                    state.BootProgress = body;
                    break;
                case "boot.error":
                    state.BootError = body;
                    break;
                case "shutdown.progress":
                    state.ShutdownProgress = body;
                    break;
            }
        }

        if (evt == "shutdown.progress" && body == "powering off")
        {
            workDir.Started = false;
            var now = Time.GetUtcNow().ToUnixTimeMilliseconds();
            workDir.Stopping ??= new StopRequest { RequestedAtMs = now, DeadlineMs = now + (Options.ShutdownTimeoutSeconds * 1000L), Via = "guest" };
        }
    }

    public VmInfo Info(VmWorkDir workDir, bool brief = false)
    {
        ArgumentNullException.ThrowIfNull(workDir);
        var manifest = workDir.ReadManifest();
        var pid = VmProcess.RunningPid(workDir, Options.ProcRoot);
        var started = workDir.Started;

        // dstack's four states: what the operator asked for (vm-state.json) against whether qemu runs.
        var status = (started, pid is not null) switch
        {
            (true, true) => "running",
            (true, false) => "exited",
            (false, true) => "stopping",
            (false, false) => "stopped",
        };
        string uptime = "";
        string? exitedAt = null;
        if (pid is not null && File.Exists(workDir.PidFile))
        {
            uptime = FormatUptime(Time.GetUtcNow() - File.GetLastWriteTimeUtc(workDir.PidFile));
        }
        else if (status == "exited" && File.Exists(workDir.SerialLog))
        {
            exitedAt = File.GetLastWriteTimeUtc(workDir.SerialLog).ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture);
        }

        string imageVersion = "";
        try
        {
            imageVersion = VmImage.Load(Options.ImagePath, manifest.Image).Info.Version;
        }
        catch (VmmException)
        {
            // The image was removed since; the VM is still listed.
        }

        var guest = guests.TryGetValue(manifest.Id, out var g) ? g.Snapshot() : new GuestState();
        var shutdownProgress = guest.ShutdownProgress;
        if (status == "stopping" && workDir.Stopping is { } stop)
        {
            var deadline = DateTimeOffset.FromUnixTimeMilliseconds(stop.DeadlineMs).ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture);
            var asked = stop.Via == "guest" ? "the guest is powering off" : "ACPI power button pressed";
            shutdownProgress = $"{asked}; qemu is killed at {deadline} if still running" + (shutdownProgress.Length > 0 ? $" (guest: {shutdownProgress})" : "");
        }

        return new VmInfo
        {
            Id = manifest.Id,
            Name = manifest.Name,
            Status = status,
            Uptime = uptime,
            AppId = manifest.AppId,
            InstanceId = workDir.InstanceId(),
            Configuration = brief ? null : ToConfiguration(manifest, workDir),
            ExitedAt = exitedAt,
            BootProgress = guest.BootProgress,
            BootError = guest.BootError,
            ShutdownProgress = shutdownProgress,
            ImageVersion = imageVersion,
            Events = guest.Events,
        };
    }

    public IReadOnlyList<VmInfo> List(bool brief = false) =>
        WorkDirs().Select(w => SafeInfo(w, brief)).OfType<VmInfo>().ToList();

    /// <summary>Every NVIDIA device with whether no started VM holds it.</summary>
    public ListGpusResponse ListGpus()
    {
        var held = HeldSlots(exceptId: null);
        var devices = Options.GpuEnabled ? Gpus.Scan() : [];
        return new ListGpusResponse
        {
            Gpus = devices.Select(d => new GpuInfo
            {
                Slot = d.Slot,
                ProductId = d.ProductId,
                Description = d.Description,
                IsFree = !held.Contains(d.Slot),
                Kind = d.Kind == NvidiaDeviceKind.Gpu ? "gpu" : "nvswitch",
                IommuGroup = d.IommuGroup,
                Driver = d.Driver,
                Vfio = d.IsVfioBound,
            }).ToList(),
            AllowAttachAll = Options.AllowAttachAll,
        };
    }

    /// <summary>The argument list this VM would be started with now (also what StartVm runs).</summary>
    public IReadOnlyList<string> CommandLine(VmWorkDir workDir)
    {
        ArgumentNullException.ThrowIfNull(workDir);
        var manifest = workDir.ReadManifest();
        var image = VmImage.Load(Options.ImagePath, manifest.Image);
        var caps = Capabilities;
        // A socket path longer than sun_path would make qemu refuse to start; such a VM is stopped with a signal instead.
        var qmpFits = QmpClient.SocketPathFits(workDir.QmpSocket);
        var settings = new QemuSettings { QemuPath = caps.QemuPath ?? Options.QemuPath ?? "qemu-system-x86_64", QmpSocket = Options.QmpSocket && qmpFits, UseMrConfigId = Options.UseMrConfigId };
        if (manifest.NoTee)
        {
            return QemuCommandLine.Development(manifest, image, workDir, settings with { QmpSocket = qmpFits }, caps.KvmUsable);
        }

        var compose = AppCompose.Parse(File.ReadAllBytes(workDir.SharedFile(VmWorkDir.AppComposeFile)));
        var supportsMrConfigId = image.Info.VersionTuple() is { } v && v.CompareTo((0, 5, 2)) >= 0;
        byte[]? mrConfigId = null;
        if (settings.UseMrConfigId && supportsMrConfigId)
        {
            var appId = workDir.InstanceAppId() is { Length: 40 } recorded ? Convert.FromHexString(recorded) : compose.DefaultAppId;
            mrConfigId = compose.MrConfigId(appId);
        }

        var devices = Gpus.Scan();
        int NumaOf(string slot) => SysfsPciScanner.Find(devices, slot)?.NumaNode ?? 0;
        var argv = QemuCommandLine.Tdx(manifest, image, workDir, settings, new QemuLaunch(AllocateCid(manifest.Id), mrConfigId, NumaOf));
        if (!manifest.PinNuma)
        {
            return argv;
        }

        // --pin-numa: taskset to the CPUs of the first GPU's NUMA node (node 0 without GPUs), as dstack-vmm does.
        var node = manifest.Gpus is { Gpus.Count: > 0 } g ? NumaOf(g.Gpus[0].Slot) : 0;
        var cpulist = Path.Combine(Options.SysfsRoot, "devices", "system", "node", $"node{node}", "cpulist");
        var cpus = File.Exists(cpulist) ? File.ReadAllText(cpulist).Trim() : "";
        if (cpus.Length == 0 || cpus.Length > 1024 || !cpus.All(c => char.IsAsciiDigit(c) || c is ',' or '-'))
        {
            throw new VmmException(VmmErrorCode.HostUnsupported, $"--pin-numa: no CPU list for NUMA node {node} ({cpulist})");
        }

        return ["taskset", "-c", cpus, .. argv];
    }

    private async Task StartLockedAsync(VmWorkDir workDir, CancellationToken cancellationToken)
    {
        var manifest = workDir.ReadManifest();
        var image = VmImage.Load(Options.ImagePath, manifest.Image);
        RequireImageVersion(image);
        if (Capabilities.QemuPath is null)
        {
            throw new VmmException(VmmErrorCode.HostUnsupported, "no qemu-system-x86_64 on this host (apt-get install qemu-system-x86)");
        }

        VmWorkDir.WriteAtomic(workDir.SharedFile(VmWorkDir.SysConfigFile), SysConfig.Build(Options, manifest, image, HostApiUrl(manifest)));
        var argv = CommandLine(workDir);
        if (!manifest.NoTee && !File.Exists(workDir.HdaPath))
        {
            await CreateDiskAsync(workDir, image, manifest.DiskSize, cancellationToken);
        }

        File.WriteAllText(workDir.SerialLog, "");
        guests[manifest.Id] = new GuestState { BootProgress = "booting" };
        var process = VmProcess.Launch(argv, workDir);
        children[manifest.Id] = process;
        // qemu refuses a bad argument or a taken port within moments; report that here rather than as a later "exited".
        for (var k = 0; k < 10; k++)
        {
            await Task.Delay(50, cancellationToken);
            if (process.HasExited)
            {
                var stderr = File.Exists(workDir.StderrLog) ? File.ReadAllText(workDir.StderrLog).Trim() : "";
                throw new VmmException(VmmErrorCode.LaunchFailed, $"qemu exited at once with status {process.ExitCode}: {Last(stderr, 2000)}");
            }
        }
    }

    private Task CreateDiskAsync(VmWorkDir workDir, VmImage image, int sizeGb, CancellationToken cancellationToken) =>
        RunQemuImgAsync(
            image.Hda is { } hda
                ? ["create", "-f", "qcow2", "-F", "qcow2", "-b", hda, workDir.HdaPath, $"{sizeGb}G"]
                : ["create", "-f", "qcow2", workDir.HdaPath, $"{sizeGb}G"],
            "create",
            cancellationToken);

    private async Task RunQemuImgAsync(IReadOnlyList<string> args, string what, CancellationToken cancellationToken)
    {
        var info = new ProcessStartInfo(Options.QemuImgPath) { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        try
        {
            using var process = Process.Start(info)!;
            var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
            var stderr = await process.StandardError.ReadToEndAsync(cancellationToken);
            await stdout;
            await process.WaitForExitAsync(cancellationToken);
            if (process.ExitCode != 0)
            {
                throw new VmmException(VmmErrorCode.DiskFailed, $"qemu-img {what} failed: {Last(stderr.Trim(), 2000)}");
            }
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new VmmException(VmmErrorCode.HostUnsupported, $"cannot run {Options.QemuImgPath}: {e.Message}");
        }
    }

    private void CheckHost(VmManifest manifest)
    {
        var caps = Capabilities;
        if (!manifest.NoTee)
        {
            if (caps.TdxRefusal() is { } refusal)
            {
                throw new VmmException(VmmErrorCode.HostUnsupported, $"{refusal}; deploy with --no-tee for a development VM without TDX");
            }
        }
        else if (manifest.Gpus is { } gpus && gpus.AllSlots.Any() && !caps.KvmUsable)
        {
            throw new VmmException(VmmErrorCode.HostUnsupported, "GPU passthrough needs KVM, which is not usable on this host");
        }
    }

    private static void RequireImageVersion(VmImage image)
    {
        if (image.Info.VersionTuple() is not { } v || v.CompareTo((0, 5, 0)) < 0)
        {
            throw new VmmException(VmmErrorCode.UnknownImage, $"image '{image.Name}' has version '{image.Info.Version}'; images before 0.5.0 are not supported");
        }
    }

    /// <summary>GPU slots, NVSwitches and host ports another started VM holds; host ports that cannot be bound.</summary>
    private void CheckConflicts(VmManifest manifest, bool checkBind)
    {
        var held = HeldSlots(manifest.Id);
        foreach (var slot in manifest.Gpus?.AllSlots ?? [])
        {
            if (held.Contains(slot))
            {
                throw new VmmException(VmmErrorCode.GpuInUse, $"GPU {slot} is in use by another VM");
            }
        }

        var others = WorkDirs().Where(w => Path.GetFileName(w.Path) != manifest.Id && (w.Started || VmProcess.RunningPid(w, Options.ProcRoot) is not null))
            .Select(SafeManifest).OfType<VmManifest>().ToList();
        foreach (var port in manifest.PortMap)
        {
            if (others.FirstOrDefault(o => o.PortMap.Any(p => p.Protocol == port.Protocol && p.From == port.From)) is { } owner)
            {
                throw new VmmException(VmmErrorCode.PortInUse, $"host port {port.Protocol}:{port.From} is mapped by VM {owner.Name} ({owner.Id})");
            }

            if (checkBind && !PortFree($"{port.Protocol}:{port.Address}:{port.From}"))
            {
                throw new VmmException(VmmErrorCode.PortInUse, $"host port {port.Protocol}:{port.Address}:{port.From} is already taken on this host");
            }
        }
    }

    private HashSet<string> HeldSlots(string? exceptId) =>
        WorkDirs().Where(w => Path.GetFileName(w.Path) != exceptId && (w.Started || VmProcess.RunningPid(w, Options.ProcRoot) is not null))
            .Select(SafeManifest).OfType<VmManifest>()
            .SelectMany(m => m.Gpus?.AllSlots ?? []).ToHashSet(StringComparer.OrdinalIgnoreCase);

    private List<PortMap> ResolvePorts(IReadOnlyList<PortMapping> ports)
    {
        if (ports.Count > 0 && !Options.PortMappingEnabled)
        {
            throw VmmException.Invalid("port mapping is disabled on this VMM");
        }

        var result = new List<PortMap>();
        foreach (var p in ports)
        {
            if (p.Protocol is not ("tcp" or "udp"))
            {
                throw VmmException.Invalid($"port mapping protocol must be tcp or udp, got '{p.Protocol}'");
            }

            if (p.HostPort is < 1 or > 65535 || p.VmPort is < 1 or > 65535)
            {
                throw VmmException.Invalid($"port mapping {p.HostPort}→{p.VmPort}: ports must be 1..65535");
            }

            var address = p.HostAddress.Length == 0 ? "127.0.0.1" : p.HostAddress;
            if (!IPAddress.TryParse(address, out var ip) || ip.AddressFamily != AddressFamily.InterNetwork)
            {
                throw VmmException.Invalid($"port mapping host address must be an IPv4 address, got '{address}'");
            }

            if (result.Any(r => r.Protocol == p.Protocol && r.From == p.HostPort))
            {
                throw new VmmException(VmmErrorCode.PortInUse, $"host port {p.Protocol}:{p.HostPort} is mapped twice");
            }

            result.Add(new PortMap { Address = address, Protocol = p.Protocol, From = (int)p.HostPort, To = (int)p.VmPort });
        }

        return result;
    }

    private GpuAssignment? ResolveGpus(GpuConfig? config)
    {
        if (config is null || (config.AttachMode.Length == 0 && config.Gpus.Count == 0))
        {
            return null;
        }

        if (!Options.GpuEnabled)
        {
            throw new VmmException(VmmErrorCode.HostUnsupported, "GPU is not enabled on this VMM");
        }

        var devices = Gpus.Scan();
        switch (config.AttachMode)
        {
            case "listed" or "":
                var slots = new List<GpuSlot>();
                foreach (var spec in config.Gpus)
                {
                    var device = SysfsPciScanner.Find(devices, spec.Slot)
                        ?? throw new VmmException(VmmErrorCode.UnknownGpu, $"no NVIDIA GPU at slot '{spec.Slot}' on this host (lsgpu lists them)");
                    if (slots.Any(s => s.Slot == device.Slot))
                    {
                        throw VmmException.Invalid($"GPU {device.Slot} is listed twice");
                    }

                    slots.Add(new GpuSlot(device.Slot));
                }

                return new GpuAssignment { AttachMode = "listed", Gpus = slots };
            case "all":
                if (!Options.AllowAttachAll)
                {
                    throw VmmException.Invalid("attaching all GPUs (PPCIe) is not allowed on this VMM");
                }

                var gpus = devices.Where(d => d.Kind == NvidiaDeviceKind.Gpu).Select(d => new GpuSlot(d.Slot)).ToList();
                if (gpus.Count == 0)
                {
                    throw new VmmException(VmmErrorCode.UnknownGpu, "--ppcie: this host has no NVIDIA GPU");
                }

                return new GpuAssignment
                {
                    AttachMode = "all",
                    Gpus = gpus,
                    Bridges = devices.Where(d => d.Kind == NvidiaDeviceKind.NvSwitch).Select(d => new GpuSlot(d.Slot)).ToList(),
                };
            default:
                throw VmmException.Invalid($"invalid GPU attach mode '{config.AttachMode}' (listed or all)");
        }
    }

    private static VmConfiguration ToConfiguration(VmManifest m, VmWorkDir workDir) => new()
    {
        Name = m.Name,
        Image = m.Image,
        ComposeFile = File.Exists(workDir.SharedFile(VmWorkDir.AppComposeFile)) ? File.ReadAllText(workDir.SharedFile(VmWorkDir.AppComposeFile)) : "",
        Vcpu = m.Vcpu,
        Memory = m.Memory,
        DiskSize = m.DiskSize,
        Ports = m.PortMap.Select(p => new PortMapping { Protocol = p.Protocol, HostPort = p.From, VmPort = p.To, HostAddress = p.Address }).ToList(),
        AppId = m.AppId,
        Hugepages = m.Hugepages,
        PinNuma = m.PinNuma,
        Gpus = m.Gpus is { } g ? new GpuConfig { AttachMode = g.AttachMode, Gpus = g.Gpus.Select(s => new GpuSpec { Slot = s.Slot }).ToList() } : null,
        KmsUrls = m.KmsUrls,
        GatewayUrls = m.GatewayUrls,
        NoTee = m.NoTee,
    };

    private int AllocateCid(string id)
    {
        var used = WorkDirs().Where(w => Path.GetFileName(w.Path) != id && VmProcess.RunningPid(w, Options.ProcRoot) is not null).Count();
        return Options.CidStart + used;
    }

    private void Reap(string id)
    {
        if (children.Remove(id, out var process))
        {
            process.Dispose();
        }
    }

    private async Task Locked(Func<Task> action, CancellationToken cancellationToken)
    {
        await gate.WaitAsync(cancellationToken);
        try
        {
            await action();
        }
        finally
        {
            gate.Release();
        }
    }

    private async Task<T> Locked<T>(Func<Task<T>> action, CancellationToken cancellationToken)
    {
        await gate.WaitAsync(cancellationToken);
        try
        {
            return await action();
        }
        finally
        {
            gate.Release();
        }
    }

    private VmInfo? SafeInfo(VmWorkDir w, bool brief)
    {
        try
        {
            return Info(w, brief);
        }
        catch (Exception e) when (e is IOException or System.Text.Json.JsonException or VmmException)
        {
            return null;
        }
    }

    private static VmManifest? SafeManifest(VmWorkDir w)
    {
        try
        {
            return w.ReadManifest();
        }
        catch (Exception e) when (e is IOException or System.Text.Json.JsonException or VmmException)
        {
            return null;
        }
    }

    /// <summary>dstack's label rule: letters (Unicode too), digits, '_' and '-'; we also cap the length.</summary>
    internal static void ValidateName(string name)
    {
        if (string.IsNullOrEmpty(name) || name.Length > 63 || !name.All(c => char.IsLetterOrDigit(c) || c is '_' or '-'))
        {
            throw VmmException.Invalid($"invalid VM name '{name}': use 1 to 63 letters, digits, '_' or '-'");
        }
    }

    private static string NormalizeAppId(string appId)
    {
        var bytes = Hex.Decode(appId, "app_id");
        return bytes.Length == 20 ? Convert.ToHexStringLower(bytes) : throw VmmException.Invalid("app_id must be 20 bytes (40 hex characters)");
    }

    private static int Range(long value, long min, long max, string what) =>
        value >= min && value <= max ? (int)value : throw VmmException.Invalid($"{what} must be {min}..{max}, got {value}");

    internal static bool IsPortFree(string spec)
    {
        var parts = spec.Split(':');
        var address = IPAddress.Parse(parts[1]);
        var port = int.Parse(parts[2], CultureInfo.InvariantCulture);
        try
        {
            if (parts[0] == "udp")
            {
                using var udp = new UdpClient(new IPEndPoint(address, port));
            }
            else
            {
                var listener = new TcpListener(address, port);
                listener.Start();
                listener.Stop();
            }

            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    internal static string FormatUptime(TimeSpan t)
    {
        if (t < TimeSpan.Zero)
        {
            t = TimeSpan.Zero;
        }

        return t.TotalDays >= 1 ? $"{(int)t.TotalDays}d {t.Hours}h {t.Minutes}m"
            : t.TotalHours >= 1 ? $"{t.Hours}h {t.Minutes}m {t.Seconds}s"
            : t.TotalMinutes >= 1 ? $"{t.Minutes}m {t.Seconds}s"
            : $"{t.Seconds}s";
    }

    private static string Last(string s, int max) => s.Length <= max ? s : s[^max..];

    [GeneratedRegex("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
    private static partial Regex Uuid();

    /// <summary>What a guest reported through the host API since its last start.</summary>
    private sealed class GuestState
    {
        public string BootProgress { get; set; } = "";

        public string BootError { get; set; } = "";

        public string ShutdownProgress { get; set; } = "";

        public List<GuestEvent> Events { get; } = [];

        public Lock Sync { get; } = new();

        public GuestState Snapshot()
        {
            lock (Sync)
            {
                var copy = new GuestState { BootProgress = BootProgress, BootError = BootError, ShutdownProgress = ShutdownProgress };
                copy.Events.AddRange(Events);
                return copy;
            }
        }
    }
}
