using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
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
            throw new VmmException(VmmErrorCode.InvalidState, $"VM {id} is already running");
        }

        var manifest = workDir.ReadManifest();
        CheckHost(manifest);
        CheckConflicts(manifest, checkBind: true);
        await StartLockedAsync(workDir, cancellationToken);
        workDir.Started = true;
    }, cancellationToken);

    /// <summary>StopVm (force: SIGKILL) or ShutdownVm (SIGTERM, then SIGKILL after a grace period).</summary>
    public Task StopAsync(string id, bool force, CancellationToken cancellationToken = default) => Locked(async () =>
    {
        var workDir = WorkDir(id);
        workDir.Started = false;
        if (!await VmProcess.StopAsync(workDir, force, TimeSpan.FromSeconds(force ? 10 : 20), Options.ProcRoot, cancellationToken))
        {
            throw new VmmException(VmmErrorCode.InvalidState, $"VM {id}'s qemu did not exit");
        }

        Reap(id);
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
        Directory.Delete(workDir.Path, recursive: true);
    }, cancellationToken);

    /// <summary>UpgradeApp: replaces the non-empty fields; effective at the next start. Returns the new app_id for a new compose, else "".</summary>
    public Task<string> UpgradeAsync(UpgradeAppRequest request, CancellationToken cancellationToken = default) => Locked(() =>
    {
        ArgumentNullException.ThrowIfNull(request);
        var workDir = WorkDir(request.Id);
        var manifest = workDir.ReadManifest();
        AppCompose? compose = request.ComposeFile.Length > 0 ? AppCompose.Parse(Encoding.UTF8.GetBytes(request.ComposeFile)) : null;
        var env = request.EncryptedEnv.Length > 0 ? Hex.Decode(request.EncryptedEnv, "encrypted_env") : null;
        if (request.Gpus is not null)
        {
            manifest = manifest with { Gpus = ResolveGpus(request.Gpus) };
        }

        if (request.UpdatePorts)
        {
            manifest = manifest with { PortMap = ResolvePorts(request.Ports) };
        }

        CheckConflicts(manifest, checkBind: false);
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
        return Task.FromResult(compose is null ? "" : Convert.ToHexStringLower(compose.DefaultAppId));
    }, cancellationToken);

    /// <summary>ResizeVm: only a stopped VM; the data disk can only grow (the new size applies to a disk created later, or by qemu-img resize).</summary>
    public Task ResizeAsync(ResizeVmRequest request, CancellationToken cancellationToken = default) => Locked(() =>
    {
        ArgumentNullException.ThrowIfNull(request);
        var workDir = WorkDir(request.Id);
        if (VmProcess.RunningPid(workDir, Options.ProcRoot) is not null)
        {
            throw new VmmException(VmmErrorCode.InvalidState, $"VM {request.Id} is running; stop it before resizing");
        }

        var manifest = workDir.ReadManifest();
        if (request.DiskSize is { } disk && disk < manifest.DiskSize)
        {
            throw VmmException.Invalid($"the disk can only grow ({manifest.DiskSize} GB now)");
        }

        if (request.Image is { Length: > 0 } image)
        {
            RequireImageVersion(VmImage.Load(Options.ImagePath, image));
        }

        manifest = manifest with
        {
            Vcpu = request.Vcpu is { } v ? Range(v, 1, 512, "vcpu") : manifest.Vcpu,
            Memory = request.Memory is { } m ? Range(m, 64, 4 * 1024 * 1024, "memory (MB)") : manifest.Memory,
            DiskSize = request.DiskSize is { } d ? Range(d, 1, 64 * 1024, "disk_size (GB)") : manifest.DiskSize,
            Image = request.Image is { Length: > 0 } i ? i : manifest.Image,
        };
        workDir.WriteManifest(manifest);
        return Task.CompletedTask;
    }, cancellationToken);

    public VmInfo Info(VmWorkDir workDir, bool brief = false)
    {
        ArgumentNullException.ThrowIfNull(workDir);
        var manifest = workDir.ReadManifest();
        var pid = VmProcess.RunningPid(workDir, Options.ProcRoot);
        var status = pid is not null ? "running" : workDir.Started ? "exited" : "stopped";
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
            ImageVersion = imageVersion,
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
        var settings = new QemuSettings { QemuPath = caps.QemuPath ?? Options.QemuPath ?? "qemu-system-x86_64", QmpSocket = Options.QmpSocket, UseMrConfigId = Options.UseMrConfigId };
        if (manifest.NoTee)
        {
            return QemuCommandLine.Development(manifest, image, workDir, settings, caps.KvmUsable);
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

    private async Task CreateDiskAsync(VmWorkDir workDir, VmImage image, int sizeGb, CancellationToken cancellationToken)
    {
        var info = new ProcessStartInfo(Options.QemuImgPath) { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var arg in image.Hda is { } hda
            ? new[] { "create", "-f", "qcow2", "-F", "qcow2", "-b", hda, workDir.HdaPath, $"{sizeGb}G" }
            : ["create", "-f", "qcow2", workDir.HdaPath, $"{sizeGb}G"])
        {
            info.ArgumentList.Add(arg);
        }

        try
        {
            using var process = Process.Start(info)!;
            var stderr = await process.StandardError.ReadToEndAsync(cancellationToken);
            await process.WaitForExitAsync(cancellationToken);
            if (process.ExitCode != 0)
            {
                throw new VmmException(VmmErrorCode.LaunchFailed, $"qemu-img create failed: {stderr.Trim()}");
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
}
