using System.CommandLine;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using PrivateMl.Vmm;
using PrivateMl.Vmm.Client;
using PrivateMl.Vmm.Compose;
using PrivateMl.Vmm.Gpus;
using PrivateMl.Vmm.Hosting;
using PrivateMl.Vmm.Images;
using PrivateMl.Vmm.Qemu;
using PrivateMl.Vmm.Vms;

namespace PrivateMl.Cli.Commands;

/// <summary>
/// <c>privateml vmm …</c>: the VM manager service (<c>serve</c>) and a client that mirrors dstack's vmm-cli.py verb for
/// verb (<c>lsvm, start, stop, remove, logs, compose, deploy, lsimage, lsgpu, update-env, update-app-compose,
/// update-user-config</c>) plus the older dstack.py <c>new</c>/<c>run</c>. Client verbs speak to <c>--url</c>
/// (env <c>DSTACK_VMM_URL</c>, default http://localhost:8080) exactly as vmm-cli does.
/// </summary>
internal static partial class VmmCommands
{
    private static readonly JsonSerializerOptions Indented2 = new() { WriteIndented = true, IndentSize = 2, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>Where vmm-cli keeps its trusted KMS signers (managed by <c>vmm kms add|remove</c>).</summary>
    internal static string WhitelistPath { get; set; } = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".dstack-vmm", "kms-whitelist.json");

    /// <summary>Randomness for env encryption (tests substitute a fixed source).</summary>
    internal static RandomNumberGenerator Random { get; set; } = RandomNumberGenerator.Create();

    public static Command Create()
    {
        var url = new Option<string>("--url")
        {
            Description = "dstack-vmm API URL (env DSTACK_VMM_URL)",
            DefaultValueFactory = _ => Environment.GetEnvironmentVariable("DSTACK_VMM_URL") ?? "http://localhost:8080",
            Recursive = true,
        };
        var authUser = new Option<string?>("--auth-user") { Description = "Basic auth user (env DSTACK_VMM_AUTH_USER)", Recursive = true, DefaultValueFactory = _ => Environment.GetEnvironmentVariable("DSTACK_VMM_AUTH_USER") };
        var authPassword = new Option<string?>("--auth-password") { Description = "Basic auth password (env DSTACK_VMM_AUTH_PASSWORD)", Recursive = true, DefaultValueFactory = _ => Environment.GetEnvironmentVariable("DSTACK_VMM_AUTH_PASSWORD") };
        var token = new Option<string?>("--token") { Description = "Bearer token for a VMM with auth enabled (env DSTACK_VMM_TOKEN); wins over --auth-user/--auth-password", Recursive = true, DefaultValueFactory = _ => Environment.GetEnvironmentVariable("DSTACK_VMM_TOKEN") };
        var vmm = new Command("vmm", "Host side: VM manager service and dstack vmm-cli compatible client (GPUs, images, app compose, deploy)")
        {
            url, authUser, authPassword, token,
        };
        var context = new ClientOptions(url, authUser, authPassword, token);
        vmm.Subcommands.Add(Serve());
        vmm.Subcommands.Add(Lsvm(context));
        vmm.Subcommands.Add(Info(context));
        vmm.Subcommands.Add(IdVerb(context, "start", "Start a VM", (c, id, _, ct) => Say(c.CallRawAsync("StartVm", new IdRequest { Id = id }, ct), $"Started VM {id}")));
        vmm.Subcommands.Add(Stop(context));
        vmm.Subcommands.Add(Resize(context));
        vmm.Subcommands.Add(IdVerb(context, "remove", "Remove a VM (stops it first) and delete its work directory", (c, id, _, ct) => Say(c.CallRawAsync("RemoveVm", new IdRequest { Id = id }, ct), $"Removed VM {id}")));
        vmm.Subcommands.Add(Logs(context));
        vmm.Subcommands.Add(ComposeVerb());
        vmm.Subcommands.Add(Deploy(context));
        vmm.Subcommands.Add(Lsimage(context));
        vmm.Subcommands.Add(Lsgpu(context));
        vmm.Subcommands.Add(UpdateEnv(context));
        vmm.Subcommands.Add(UpdateFile(context, "update-app-compose", "compose", "Update app compose for a VM (effective at its next start)", "compose_file"));
        vmm.Subcommands.Add(UpdateFile(context, "update-user-config", "user_config", "Update user config for a VM", "user_config"));
        vmm.Subcommands.Add(UpdatePorts(context));
        vmm.Subcommands.Add(Update(context));
        vmm.Subcommands.Add(New());
        vmm.Subcommands.Add(Run());
        AddImageCommands(vmm);
        AddKmsCommands(vmm);
        return vmm;
    }

    /// <summary>devvm's <c>vmm image …</c> (implemented in its own file when that branch is merged).</summary>
    static partial void AddImageCommands(Command vmm);

    /// <summary>The kms helper's <c>vmm kms list|add|remove</c> (implemented in its own file when that branch is merged).</summary>
    static partial void AddKmsCommands(Command vmm);

    private sealed record ClientOptions(Option<string> Url, Option<string?> User, Option<string?> Password, Option<string?> Token)
    {
        public VmmClient Connect(ParseResult parse)
        {
            var text = parse.GetValue(Url)!;
            if (!Uri.TryCreate(text.EndsWith('/') ? text : text + "/", UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
            {
                throw VmmException.Invalid($"--url must be an http(s) URL, got '{text}'");
            }

            var client = new VmmClient(new HttpClient { Timeout = Timeout.InfiniteTimeSpan }, uri);
            var (user, password) = (parse.GetValue(User) is { Length: > 0 } u ? u : null, parse.GetValue(Password) is { Length: > 0 } p ? p : null);
            if (parse.GetValue(Token) is { Length: > 0 } token)
            {
                client.UseBearerToken(token);
            }
            else if (user is not null && password is not null)
            {
                client.UseBasicAuth(user, password);
            }
            else if (user is not null || password is not null)
            {
                // As vmm-cli: half a credential would only make every call fail against a VMM with auth.
                throw VmmException.Invalid($"incomplete VMM Basic auth credentials: {(user is null ? "username" : "password")} is missing; set both, or use a bearer token (--token / DSTACK_VMM_TOKEN)");
            }

            return client;
        }
    }

    /// <summary>Runs a verb; a refused request prints <c>error: …</c> and exits 1, bad input exits 2.</summary>
    private static async Task<int> Guard(ParseResult parse, Func<TextWriter, Task<int>> body)
    {
        var error = parse.InvocationConfiguration.Error;
        try
        {
            return await body(parse.InvocationConfiguration.Output);
        }
        catch (VmmException e)
        {
            error.WriteLine($"error: {e.Message}");
            return e.Code is VmmErrorCode.InvalidArgument or VmmErrorCode.InvalidCompose ? ExitCodes.UsageOrInput : ExitCodes.Rejected;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or HttpRequestException or JsonException)
        {
            error.WriteLine($"error: {e.Message}");
            return ExitCodes.UsageOrInput;
        }
    }

    private static async Task<int> Say(Task<byte[]> call, string message)
    {
        await call;
        _ = message;
        return ExitCodes.Accepted;
    }

    private static Command Serve()
    {
        var config = new Option<FileInfo?>("--config") { Description = "JSON config (address, image_path, run_path, kms_urls, qemu_path, …; see docs/vmm.md)" };
        var address = new Option<string?>("--address") { Description = "Listener URL, overrides the config (default http://127.0.0.1:8080)" };
        var command = new Command("serve", "Run the VM manager service (dstack-vmm's /prpc RPC surface and /logs)") { config, address };
        command.SetAction((parse, ct) => Guard(parse, async output =>
        {
            var options = parse.GetValue(config) is { } file ? VmmOptions.Load(file.FullName) : new VmmOptions();
            if (parse.GetValue(address) is { } a)
            {
                options = options with { Address = a };
            }

            using var manager = new VmManager(options);
            await using var app = VmmHost.Build(options, manager);
            await app.StartAsync(ct);
            output.WriteLine($"privateml vmm serving on {string.Join(", ", app.Urls)} (images {options.ImagePath}, VMs {options.RunPath})");
            output.WriteLine(VmmAuth.Describe(options));
            var caps = manager.Capabilities;
            output.WriteLine(caps.TdxRefusal() is { } why ? $"TDX: unavailable — {why}; only --no-tee development VMs can run" : "TDX: available");
            if (options.NoTee)
            {
                output.WriteLine("WARNING: no_tee is set: every VM is a development VM without TDX; nothing it attests is hardware-backed");
            }
            output.WriteLine($"no-TEE VMs run under {(caps.KvmUsable ? "KVM" : "TCG (software emulation)")}; {manager.List(brief: true).Count} VM(s) in {options.RunPath}");
            try
            {
                await Task.Delay(Timeout.Infinite, ct);
            }
            catch (OperationCanceledException)
            {
                // Ctrl+C: VMs keep running (their qemu runs in its own session); a restarted service finds them.
            }

            await app.StopAsync(CancellationToken.None);
            return ExitCodes.Accepted;
        }));
        return command;
    }

    private static Command Lsvm(ClientOptions context)
    {
        var verbose = new Option<bool>("--verbose", "-v") { Description = "Show detailed information" };
        var json = new Option<bool>("--json") { Description = "Output in JSON format for automation" };
        var command = new Command("lsvm", "List VMs") { verbose, json };
        command.SetAction((parse, ct) => Guard(parse, async output =>
        {
            var status = await context.Connect(parse).CallAsync<StatusResponse>("Status", new StatusRequest { Brief = false }, ct);
            if (parse.GetValue(json))
            {
                output.WriteLine(JsonSerializer.Serialize(status.Vms, Indented2));
                return ExitCodes.Accepted;
            }

            if (status.Vms.Count == 0)
            {
                output.WriteLine("No VMs found");
                return ExitCodes.Accepted;
            }

            var headers = new List<string> { "VM ID", "App ID", "Name", "Status", "Uptime" };
            var v = parse.GetValue(verbose);
            if (v)
            {
                headers.AddRange(["Instance ID", "vCPU", "Memory", "Disk", "Image", "GPUs"]);
            }

            var rows = status.Vms.Select(vm =>
            {
                var row = new List<string> { vm.Id, vm.AppId, vm.Name, vm.Status, vm.Uptime.Length == 0 ? "-" : vm.Uptime };
                if (v)
                {
                    var c = vm.Configuration;
                    row.AddRange([vm.InstanceId is { Length: > 0 } instance ? instance : "-", c?.Vcpu.ToString(CultureInfo.InvariantCulture) ?? "-", $"{c?.Memory.ToString(CultureInfo.InvariantCulture) ?? "-"}MB", $"{c?.DiskSize.ToString(CultureInfo.InvariantCulture) ?? "-"}GB", c?.Image ?? "-", FormatGpus(c?.Gpus)]);
                }

                return (IReadOnlyList<string>)row;
            }).ToList();
            output.WriteLine(FormatTable(rows, headers));
            return ExitCodes.Accepted;
        }));
        return command;
    }

    private static string FormatGpus(GpuConfig? gpus) => gpus switch
    {
        null => "-",
        { AttachMode: "all" } => "All GPUs",
        { AttachMode: "listed", Gpus.Count: > 0 } => string.Join(", ", gpus.Gpus.Select(g => g.Slot)),
        _ => "-",
    };

    private static Command IdVerb(ClientOptions context, string name, string description, Func<VmmClient, string, ParseResult, CancellationToken, Task<int>> action)
    {
        var id = new Argument<string>("vm_id") { Description = "VM ID" };
        var command = new Command(name, description) { id };
        command.SetAction((parse, ct) => Guard(parse, async output =>
        {
            var vmId = parse.GetValue(id)!;
            var exit = await action(context.Connect(parse), vmId, parse, ct);
            output.WriteLine(name switch { "start" => $"Started VM {vmId}", "remove" => $"Removed VM {vmId}", _ => "" });
            return exit;
        }));
        return command;
    }

    private static Command Stop(ClientOptions context)
    {
        var id = new Argument<string>("vm_id") { Description = "VM ID to stop" };
        var force = new Option<bool>("--force", "-f") { Description = "Force stop the VM (kill)" };
        var noWait = new Option<bool>("--no-wait") { Description = "Return once the guest was asked to power off (vmm-cli's behaviour), instead of waiting until the VM has stopped" };
        var command = new Command("stop", "Stop a VM: ACPI power button through QMP, then wait until it has stopped (the service kills qemu after its shutdown_timeout_secs); -f kills now") { id, force, noWait };
        command.SetAction((parse, ct) => Guard(parse, async output =>
        {
            var vmId = parse.GetValue(id)!;
            var f = parse.GetValue(force);
            var client = context.Connect(parse);
            await client.CallRawAsync(f ? "StopVm" : "ShutdownVm", new IdRequest { Id = vmId }, ct);
            output.WriteLine(f ? $"Forcefully stopped VM {vmId}" : $"Gracefully shutting down VM {vmId}");
            if (f)
            {
                return ExitCodes.Accepted;
            }

            // ShutdownVm returns once the button is pressed; the service ends the VM (or kills it at the deadline).
            var waited = System.Diagnostics.Stopwatch.StartNew();
            var said = false;
            while (true)
            {
                var info = (await client.CallAsync<GetInfoResponse>("GetInfo", new IdRequest { Id = vmId }, ct)).Info;
                if (info is null || info.Status != "stopping")
                {
                    output.WriteLine($"Status: {info?.Status ?? "removed"}");
                    return ExitCodes.Accepted;
                }

                if (!said)
                {
                    output.WriteLine($"Status: stopping — {info.ShutdownProgress}");
                    said = true;
                }

                if (parse.GetValue(noWait))
                {
                    return ExitCodes.Accepted;
                }

                if (waited.Elapsed > TimeSpan.FromMinutes(30))
                {
                    throw new VmmException(VmmErrorCode.InvalidState, $"VM {vmId} is still stopping after 30 minutes; stop it with --force");
                }

                await Task.Delay(500, ct);
            }
        }));
        return command;
    }

    private static Command Logs(ClientOptions context)
    {
        var id = new Argument<string>("vm_id") { Description = "VM ID to show logs for" };
        var lines = new Option<int>("--lines", "-n") { Description = "Number of lines to show", DefaultValueFactory = _ => 20 };
        var follow = new Option<bool>("--follow", "-f") { Description = "Follow log output (until the VM stops or Ctrl+C)" };
        var command = new Command("logs", "Show a VM's serial console log") { id, lines, follow };
        command.SetAction((parse, ct) => Guard(parse, async output =>
        {
            try
            {
                await context.Connect(parse).LogsAsync(parse.GetValue(id)!, parse.GetValue(lines), parse.GetValue(follow), output, ct);
            }
            catch (OperationCanceledException)
            {
                // Ctrl+C while following.
            }

            return ExitCodes.Accepted;
        }));
        return command;
    }

    private static Command ComposeVerb()
    {
        var name = new Option<string>("--name") { Description = "App name", Required = true };
        var dockerCompose = new Option<FileInfo>("--docker-compose") { Description = "Path to docker-compose.yml file", Required = true };
        var prelaunch = new Option<FileInfo?>("--prelaunch-script") { Description = "Path to prelaunch script" };
        var kms = new Option<bool>("--kms") { Description = "Enable KMS" };
        var gateway = new Option<bool>("--gateway") { Description = "Enable dstack-gateway" };
        var lkp = new Option<bool>("--local-key-provider") { Description = "Enable local key provider" };
        var kpid = new Option<string?>("--key-provider-id") { Description = "Key provider ID (hex) to bind to a specific key provider" };
        var publicLogs = new Option<bool>("--public-logs") { Description = "Enable public logs" };
        var publicSysinfo = new Option<bool>("--public-sysinfo") { Description = "Enable public sysinfo" };
        var envFile = new Option<FileInfo?>("--env-file") { Description = "Env file whose keys become allowed_envs" };
        var noInstanceId = new Option<bool>("--no-instance-id") { Description = "Disable instance ID" };
        var secureTime = new Option<bool>("--secure-time") { Description = "Enable secure time" };
        var swap = new Option<string?>("--swap") { Description = "Swap size (e.g. 4G). Set to 0 to disable" };
        var outputFile = new Option<FileInfo>("--output") { Description = "Path to output app-compose.json file", Required = true };
        var command = new Command("compose", "Create an app-compose.json (byte-identical to vmm-cli.py's, so the compose hash matches)")
        {
            name, dockerCompose, prelaunch, kms, gateway, lkp, kpid, publicLogs, publicSysinfo, envFile, noInstanceId, secureTime, swap, outputFile,
        };
        command.SetAction((parse, ct) => Guard(parse, async output =>
        {
            var envs = parse.GetValue(envFile) is { } ef ? CliEnvFile.Read(ef.FullName) : [];
            var options = new AppComposeOptions
            {
                Name = parse.GetValue(name)!,
                DockerComposeFile = AppComposeBuilder.ReadUtf8File(parse.GetValue(dockerCompose)!.FullName),
                PreLaunchScript = parse.GetValue(prelaunch) is { } p ? AppComposeBuilder.ReadUtf8File(p.FullName) : null,
                Kms = parse.GetValue(kms),
                Gateway = parse.GetValue(gateway),
                LocalKeyProvider = parse.GetValue(lkp),
                KeyProviderId = parse.GetValue(kpid),
                PublicLogs = parse.GetValue(publicLogs),
                PublicSysinfo = parse.GetValue(publicSysinfo),
                AllowedEnvs = envs.Select(e => e.Key).ToList(),
                NoInstanceId = parse.GetValue(noInstanceId),
                SecureTime = parse.GetValue(secureTime),
                SwapMegabytes = parse.GetValue(swap) is { } s ? ParseSize(s, "MB") : null,
            };
            var bytes = AppComposeBuilder.VmmCli(options);
            var path = parse.GetValue(outputFile)!.FullName;
            await File.WriteAllBytesAsync(path, bytes, ct);
            output.WriteLine($"App compose file created at: {parse.GetValue(outputFile)}");
            output.WriteLine($"Compose hash: {Convert.ToHexStringLower(SHA256.HashData(bytes))}");
            return ExitCodes.Accepted;
        }));
        return command;
    }

    private static Command Deploy(ClientOptions context)
    {
        var name = new Option<string>("--name") { Description = "VM name", Required = true };
        var image = new Option<string>("--image") { Description = "VM image", Required = true };
        var compose = new Option<FileInfo>("--compose") { Description = "Path to app-compose.json file", Required = true };
        var vcpu = new Option<int>("--vcpu") { Description = "Number of vCPUs", DefaultValueFactory = _ => 1 };
        var memory = new Option<string>("--memory") { Description = "Memory size (e.g. 1G, 100M)", DefaultValueFactory = _ => "1024" };
        var disk = new Option<string>("--disk") { Description = "Disk size (e.g. 20G)", DefaultValueFactory = _ => "20" };
        var envFile = new Option<FileInfo?>("--env-file") { Description = "File with environment variables to encrypt" };
        var userConfig = new Option<FileInfo?>("--user-config") { Description = "Path to user config file" };
        var appId = new Option<string?>("--app-id") { Description = "Application ID" };
        var port = new Option<string[]>("--port") { Description = "Port mapping protocol[:address]:from:to (repeatable)", DefaultValueFactory = _ => [] };
        var gpu = new Option<string[]>("--gpu") { Description = "GPU slot to attach (repeatable)", DefaultValueFactory = _ => [] };
        var ppcie = new Option<bool>("--ppcie") { Description = "Protected PCIe mode: attach all GPUs and NVSwitches" };
        var pinNuma = new Option<bool>("--pin-numa") { Description = "Pin VM to specific NUMA node" };
        var hugepages = new Option<bool>("--hugepages") { Description = "Enable hugepages for the VM" };
        var kmsUrl = new Option<string[]>("--kms-url") { Description = "KMS URL (repeatable; the first serves the env encryption key)", DefaultValueFactory = _ => [] };
        var gatewayUrl = new Option<string[]>("--gateway-url") { Description = "Gateway URL (repeatable)", DefaultValueFactory = _ => [] };
        var stopped = new Option<bool>("--stopped") { Description = "Create VM in stopped state" };
        var noTee = new Option<bool>("--no-tee") { Description = "Development VM without TDX: plain QEMU (KVM when usable, else TCG). Nothing it attests is hardware-backed." };
        var swap = new Option<string?>("--swap") { Description = "Swap size (e.g. 4G; 0 removes it), written into the compose's swap_size (changes the compose hash)" };
        var kmsEncryptUrl = new Option<string?>("--kms-encrypt-url") { Description = "KMS URL reachable from here, used only to encrypt --env-file (default: the first --kms-url)" };
        var command = new Command("deploy", "Deploy a new VM")
        {
            name, image, compose, vcpu, memory, disk, swap, envFile, userConfig, appId, port, gpu, ppcie, pinNuma, hugepages, kmsUrl, kmsEncryptUrl, gatewayUrl, stopped, noTee,
        };
        command.SetAction((parse, ct) => Guard(parse, async output =>
        {
            var composeText = AppComposeBuilder.ReadUtf8File(parse.GetValue(compose)!.FullName);
            var envs = parse.GetValue(envFile) is { } ef ? CliEnvFile.Read(ef.FullName) : [];
            var gpus = parse.GetValue(gpu)!;
            var all = parse.GetValue(ppcie) || gpus.Contains("all");
            if (all && gpus.Any(g => g != "all"))
            {
                throw VmmException.Invalid("--ppcie / --gpu all attach all GPUs; do not combine them with GPU slots");
            }

            if (parse.GetValue(swap) is { } swapSize)
            {
                // vmm-cli sends swap_size in CreateVm, a field dstack-vmm does not have (so it is dropped); the guest reads
                // swap_size from the compose, so that is where it goes here.
                var editor = AppComposeEditor.Parse(composeText);
                editor.SetSwapMegabytes(ParseSize(swapSize, "MB"));
                composeText = editor.ToJson();
                output.WriteLine($"Swap: {(ParseSize(swapSize, "MB") > 0 ? $"{ParseSize(swapSize, "MB")}MB" : "disabled")} in the compose; compose hash {Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(composeText)))}");
            }

            var kms = parse.GetValue(kmsUrl)!;
            var request = new VmConfiguration
            {
                Name = parse.GetValue(name)!,
                Image = parse.GetValue(image)!,
                ComposeFile = composeText,
                Vcpu = parse.GetValue(vcpu),
                Memory = ParseSize(parse.GetValue(memory)!, "MB"),
                DiskSize = ParseSize(parse.GetValue(disk)!, "GB"),
                AppId = parse.GetValue(appId),
                UserConfig = parse.GetValue(userConfig) is { } uc ? AppComposeBuilder.ReadUtf8File(uc.FullName) : "",
                Ports = parse.GetValue(port)!.Select(ParsePortMapping).ToList(),
                Hugepages = parse.GetValue(hugepages),
                PinNuma = parse.GetValue(pinNuma),
                Stopped = parse.GetValue(stopped),
                Gpus = all ? new GpuConfig { AttachMode = "all" }
                    : gpus.Length > 0 ? new GpuConfig { AttachMode = "listed", Gpus = gpus.Select(s => new GpuSpec { Slot = s }).ToList() } : null,
                KmsUrls = kms,
                GatewayUrls = parse.GetValue(gatewayUrl)!,
                NoTee = parse.GetValue(noTee),
            };
            var id = request.AppId ?? Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(composeText)))[..40];
            output.WriteLine($"App ID: {id}");
            var client = context.Connect(parse);
            if (envs.Count > 0)
            {
                request = request with { EncryptedEnv = await EncryptEnv(client, output, id, parse.GetValue(kmsEncryptUrl) ?? (kms.Length > 0 ? kms[0] : null), envs, ct) };
            }

            var created = await client.CallAsync<Dictionary<string, string>>("CreateVm", request, ct);
            output.WriteLine($"Created VM with ID: {created.GetValueOrDefault("id")}");
            return ExitCodes.Accepted;
        }));
        return command;
    }

    private static async Task<string> EncryptEnv(VmmClient client, TextWriter output, string appId, string? kmsUrl, IReadOnlyList<KeyValuePair<string, string>> envs, CancellationToken ct)
    {
        if (kmsUrl is not null)
        {
            output.WriteLine($"Getting encryption public key for {appId} from {kmsUrl}");
        }

        var (publicKey, signer) = await client.EnvPublicKeyAsync(appId, kmsUrl, LoadWhitelist(), DateTimeOffset.UtcNow, ct);
        output.WriteLine($"Verified signature from: {Convert.ToHexStringLower(signer)}");
        output.WriteLine($"Encrypting environment variables with key: {Convert.ToHexStringLower(publicKey)}");
        return VmmClient.EncryptEnv(envs, publicKey, Random);
    }

    /// <summary>vmm-cli's whitelist <c>{"trusted_signers":["&lt;66 hex&gt;",…]}</c>; absent or empty: any validly signing KMS is used (its key printed).</summary>
    internal static IReadOnlyList<byte[]> LoadWhitelist()
    {
        if (!File.Exists(WhitelistPath))
        {
            return [];
        }

        using var doc = JsonDocument.Parse(File.ReadAllBytes(WhitelistPath));
        return doc.RootElement.TryGetProperty("trusted_signers", out var list) && list.ValueKind == JsonValueKind.Array
            ? list.EnumerateArray().Select(e => e.GetString()).OfType<string>().Select(s => Hex.Decode(s, "trusted signer")).ToList()
            : [];
    }

    private static Command Lsimage(ClientOptions context)
    {
        var json = new Option<bool>("--json") { Description = "Output in JSON format for automation" };
        var command = new Command("lsimage", "List available images") { json };
        command.SetAction((parse, ct) => Guard(parse, async output =>
        {
            var images = await context.Connect(parse).CallAsync<ImageListResponse>("ListImages", null, ct);
            if (parse.GetValue(json))
            {
                output.WriteLine(JsonSerializer.Serialize(images.Images, Indented2));
            }
            else if (images.Images.Count == 0)
            {
                output.WriteLine("No images found");
            }
            else
            {
                output.WriteLine(FormatTable(images.Images.Select(i => (IReadOnlyList<string>)[i.Name, i.Version.Length == 0 ? "-" : i.Version]).ToList(), ["Name", "Version"]));
            }

            return ExitCodes.Accepted;
        }));
        return command;
    }

    private static Command Lsgpu(ClientOptions context)
    {
        var json = new Option<bool>("--json") { Description = "Output in JSON format for automation" };
        var sysfs = new Option<DirectoryInfo?>("--sysfs") { Description = "Scan this sysfs root directly (e.g. /sys) instead of asking the service" };
        var command = new Command("lsgpu", "List NVIDIA GPUs and NVSwitches: slot, product, IOMMU group, whether vfio-pci holds them, whether free") { json, sysfs };
        command.SetAction((parse, ct) => Guard(parse, async output =>
        {
            IReadOnlyList<GpuInfo> gpus;
            if (parse.GetValue(sysfs) is { } root)
            {
                gpus = new SysfsPciScanner(root.FullName).Scan().Select(d => new GpuInfo
                {
                    Slot = d.Slot,
                    ProductId = d.ProductId,
                    Description = d.Description,
                    IsFree = true,
                    Kind = d.Kind == NvidiaDeviceKind.Gpu ? "gpu" : "nvswitch",
                    IommuGroup = d.IommuGroup,
                    Driver = d.Driver,
                    Vfio = d.IsVfioBound,
                }).ToList();
            }
            else
            {
                gpus = (await context.Connect(parse).CallAsync<ListGpusResponse>("ListGpus", null, ct)).Gpus;
            }

            if (parse.GetValue(json))
            {
                output.WriteLine(JsonSerializer.Serialize(gpus, Indented2));
            }
            else if (gpus.Count == 0)
            {
                output.WriteLine("No GPUs found");
            }
            else
            {
                output.WriteLine(FormatTable(
                    gpus.Select(g => (IReadOnlyList<string>)[g.Slot, g.ProductId, g.Description, g.IsFree ? "Yes" : "No", g.IommuGroup ?? "-", g.Vfio ? "yes" : $"no ({g.Driver ?? "no driver"})"]).ToList(),
                    ["Slot", "Product ID", "Description", "Available", "IOMMU group", "vfio-pci"]));
            }

            return ExitCodes.Accepted;
        }));
        return command;
    }

    private static Command UpdateEnv(ClientOptions context)
    {
        var id = new Argument<string>("vm_id") { Description = "VM ID to update" };
        var envFile = new Option<FileInfo>("--env-file") { Description = "File with environment variables to encrypt", Required = true };
        var kmsUrl = new Option<string[]>("--kms-url") { Description = "KMS URL", DefaultValueFactory = _ => [] };
        var command = new Command("update-env", "Update a VM's encrypted environment (effective at its next start)") { id, envFile, kmsUrl };
        command.SetAction((parse, ct) => Guard(parse, async output =>
        {
            var vmId = parse.GetValue(id)!;
            var envs = CliEnvFile.Read(parse.GetValue(envFile)!.FullName);
            var client = context.Connect(parse);
            var info = await client.CallAsync<GetInfoResponse>("GetInfo", new IdRequest { Id = vmId }, ct);
            if (!info.Found || info.Info is null)
            {
                throw new VmmException(VmmErrorCode.UnknownVm, $"VM with ID {vmId} not found");
            }

            output.WriteLine($"Retrieved app ID: {info.Info.AppId}");
            var kms = parse.GetValue(kmsUrl)!;
            var encrypted = await EncryptEnv(client, output, info.Info.AppId, kms.Length > 0 ? kms[0] : null, envs, ct);
            var composeUpdate = AllowEnvs(info.Info.Configuration?.ComposeFile, envs);
            if (composeUpdate is not null)
            {
                output.WriteLine($"allowed_envs updated in the app compose (compose hash now {Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(composeUpdate)))})");
            }

            await client.CallRawAsync("UpgradeApp", new UpgradeAppRequest { Id = vmId, EncryptedEnv = encrypted, ComposeFile = composeUpdate ?? "" }, ct);
            output.WriteLine($"Environment variables updated for VM {vmId}");
            return ExitCodes.Accepted;
        }));
        return command;
    }

    private static Command UpdateFile(ClientOptions context, string verb, string argName, string description, string field)
    {
        var id = new Argument<string>("vm_id") { Description = "VM ID to update" };
        var file = new Argument<FileInfo>(argName) { Description = "Path to the file" };
        var command = new Command(verb, description) { id, file };
        command.SetAction((parse, ct) => Guard(parse, async output =>
        {
            var vmId = parse.GetValue(id)!;
            var text = AppComposeBuilder.ReadUtf8File(parse.GetValue(file)!.FullName);
            var request = field == "compose_file" ? new UpgradeAppRequest { Id = vmId, ComposeFile = text } : new UpgradeAppRequest { Id = vmId, UserConfig = text };
            await context.Connect(parse).CallRawAsync("UpgradeApp", request, ct);
            output.WriteLine(field == "compose_file" ? $"App compose updated for VM {vmId}" : $"User config updated for VM {vmId}");
            return ExitCodes.Accepted;
        }));
        return command;
    }

    /// <summary>dstack.py <c>new</c>: a self-contained VM directory (shared/app-compose.json, vm-manifest.json) without a service.</summary>
    private static Command New()
    {
        var compose = new Argument<FileInfo>("COMPOSE") { Description = "docker-compose.yaml" };
        var output = new Option<DirectoryInfo>("--output", "-o") { Description = "VM directory to create", Required = true };
        var imageDir = new Option<DirectoryInfo>("--image", "-i") { Description = "Image directory (with metadata.json)", Required = true };
        var vcpus = new Option<int>("--vcpus", "-c") { Description = "vCPUs", DefaultValueFactory = _ => 1 };
        var memory = new Option<string>("--memory", "-m") { Description = "Memory", DefaultValueFactory = _ => "2G" };
        var disk = new Option<string>("--disk", "-d") { Description = "Disk", DefaultValueFactory = _ => "20G" };
        var gpu = new Option<string[]>("--gpu", "-g") { Description = "GPU slot, or all / none (repeatable)", DefaultValueFactory = _ => [] };
        var port = new Option<string[]>("--port", "-p") { Description = "Port mapping protocol[:address]:from:to (repeatable)", DefaultValueFactory = _ => [] };
        var lkp = new Option<bool>("--local-key-provider", "--lkp") { Description = "Enable the local key provider" };
        var pinNuma = new Option<bool>("--pin-numa") { Description = "Pin to a NUMA node" };
        var hugepages = new Option<bool>("--hugepages") { Description = "Use hugepages" };
        var command = new Command("new", "dstack.py: create a VM directory from a docker-compose file (run it with 'vmm run DIR')")
        {
            compose, output, imageDir, vcpus, memory, disk, gpu, port, lkp, pinNuma, hugepages,
        };
        command.SetAction((parse, ct) => Guard(parse, async stdout =>
        {
            var dir = parse.GetValue(output)!.FullName;
            if (Directory.Exists(dir) && Directory.EnumerateFileSystemEntries(dir).Any())
            {
                throw VmmException.Invalid($"{dir} exists and is not empty");
            }

            var image = parse.GetValue(imageDir)!;
            var img = VmImage.Load(image.Parent!.FullName, image.Name);
            var composeBytes = AppComposeBuilder.DstackPy(AppComposeBuilder.ReadUtf8File(parse.GetValue(compose)!.FullName), parse.GetValue(lkp));
            var gpus = parse.GetValue(gpu)!.Where(g => g != "none").ToList();
            var manifest = new VmManifest
            {
                Id = Guid.NewGuid().ToString(),
                Name = Path.GetFileName(dir),
                AppId = Convert.ToHexStringLower(SHA256.HashData(composeBytes))[..40],
                Vcpu = parse.GetValue(vcpus),
                Memory = (int)ParseSize(parse.GetValue(memory)!, "MB"),
                DiskSize = (int)ParseSize(parse.GetValue(disk)!, "GB"),
                Image = img.Name,
                PortMap = parse.GetValue(port)!.Select(ParsePortMapping).Select(p => new PortMap { Address = p.HostAddress, Protocol = p.Protocol, From = (int)p.HostPort, To = (int)p.VmPort }).ToList(),
                Hugepages = parse.GetValue(hugepages),
                PinNuma = parse.GetValue(pinNuma),
                Gpus = gpus.Count == 0 ? null : gpus.Contains("all") ? new GpuAssignment { AttachMode = "all" } : new GpuAssignment { Gpus = gpus.Select(g => new GpuSlot(g)).ToList() },
            };
            var work = new VmWorkDir(dir);
            Directory.CreateDirectory(work.SharedDir);
            await File.WriteAllBytesAsync(work.SharedFile(VmWorkDir.AppComposeFile), composeBytes, ct);
            var node = JsonSerializer.SerializeToNode(manifest)!.AsObject();
            node["image_path"] = img.Directory;
            await File.WriteAllTextAsync(work.ManifestPath, node.ToJsonString(Indented2), ct);
            stdout.WriteLine($"Created {dir} (compose hash {Convert.ToHexStringLower(SHA256.HashData(composeBytes))})");
            return ExitCodes.Accepted;
        }));
        return command;
    }

    /// <summary>dstack.py <c>run</c>: runs a directory made by <c>new</c> in the foreground (no service).</summary>
    private static Command Run()
    {
        var dir = new Argument<DirectoryInfo>("DIR") { Description = "VM directory made by 'vmm new'" };
        var noTee = new Option<bool>("--no-tee") { Description = "Development VM without TDX (plain QEMU)" };
        var dryRun = new Option<bool>("--dry-run") { Description = "Print the QEMU command line and exit" };
        var command = new Command("run", "dstack.py: run a VM directory in the foreground") { dir, noTee, dryRun };
        command.SetAction((parse, ct) => Guard(parse, async output =>
        {
            var work = new VmWorkDir(parse.GetValue(dir)!.FullName);
            var node = JsonNode.Parse(await File.ReadAllTextAsync(work.ManifestPath, ct))?.AsObject() ?? throw VmmException.Invalid("empty manifest");
            var imagePath = node["image_path"]?.GetValue<string>() ?? throw VmmException.Invalid("the manifest has no image_path");
            var manifest = JsonSerializer.Deserialize<VmManifest>(node.ToJsonString())! with { NoTee = parse.GetValue(noTee) };
            var image = VmImage.Load(Path.GetDirectoryName(imagePath)!, Path.GetFileName(imagePath));
            var caps = HostCapabilities.Probe();
            var settings = new QemuSettings { QemuPath = caps.QemuPath ?? "qemu-system-x86_64" };
            IReadOnlyList<string> argv;
            if (manifest.NoTee)
            {
                argv = QemuCommandLine.Development(manifest, image, work, settings, caps.KvmUsable);
            }
            else
            {
                if (!parse.GetValue(dryRun) && caps.TdxRefusal() is { } why)
                {
                    throw new VmmException(VmmErrorCode.HostUnsupported, $"{why}; run with --no-tee for a development VM without TDX");
                }

                var compose = AppCompose.Parse(await File.ReadAllBytesAsync(work.SharedFile(VmWorkDir.AppComposeFile), ct));
                argv = QemuCommandLine.Tdx(manifest, image, work, settings, new QemuLaunch(Cid: 1000 + System.Random.Shared.Next(1, 100_000), MrConfigId: null));
            }

            await File.WriteAllBytesAsync(work.SharedFile(VmWorkDir.SysConfigFile), SysConfig.Build(new VmmOptions(), manifest, image, ""), ct);
            if (parse.GetValue(dryRun))
            {
                output.WriteLine(string.Join(' ', argv.Select(ShellQuote)));
                return ExitCodes.Accepted;
            }

            var info = new System.Diagnostics.ProcessStartInfo(argv[0]);
            foreach (var arg in argv.Skip(1))
            {
                info.ArgumentList.Add(arg);
            }

            using var process = System.Diagnostics.Process.Start(info) ?? throw new VmmException(VmmErrorCode.LaunchFailed, "qemu did not start");
            output.WriteLine($"qemu pid {process.Id}; console log {work.SerialLog}");
            try
            {
                await process.WaitForExitAsync(ct);
            }
            catch (OperationCanceledException)
            {
                process.Kill();
                await process.WaitForExitAsync(CancellationToken.None);
            }

            return process.ExitCode == 0 ? ExitCodes.Accepted : ExitCodes.Rejected;
        }));
        return command;
    }

    private static string ShellQuote(string s) =>
        s.Length > 0 && s.All(c => char.IsAsciiLetterOrDigit(c) || "-_./:=,@+".Contains(c, StringComparison.Ordinal)) ? s : "'" + s.Replace("'", "'\\''", StringComparison.Ordinal) + "'";

    /// <summary>vmm-cli's <c>parse_port_mapping</c>: <c>proto:host:vm</c> (address 127.0.0.1) or <c>proto:address:host:vm</c>.</summary>
    internal static PortMapping ParsePortMapping(string spec)
    {
        var parts = spec.Split(':');
        var (protocol, address, host, vm) = parts.Length switch
        {
            3 => (parts[0], "127.0.0.1", parts[1], parts[2]),
            4 => (parts[0], parts[1], parts[2], parts[3]),
            _ => throw VmmException.Invalid($"Invalid port mapping format: {spec} (protocol[:address]:host_port:vm_port)"),
        };
        if (protocol is not ("tcp" or "udp"))
        {
            throw VmmException.Invalid($"Invalid port mapping format: {spec} (protocol is tcp or udp)");
        }

        return new PortMapping { Protocol = protocol, HostAddress = address, HostPort = Port(host, spec), VmPort = Port(vm, spec) };
    }

    private static int Port(string text, string spec) =>
        int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var p) && p is >= 1 and <= 65535
            ? p
            : throw VmmException.Invalid($"Invalid port mapping format: {spec} ('{text}' is not a port 1..65535)");

    /// <summary>vmm-cli's <c>parse_size</c>: a number with an optional M/MB/G/GB/T/TB suffix, in MB (memory) or GB (disk), integral.</summary>
    internal static long ParseSize(string text, string targetUnit)
    {
        var m = SizePattern().Match(text.Trim());
        if (!m.Success)
        {
            throw VmmException.Invalid($"Invalid size format: '{text}'");
        }

        var number = decimal.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
        var unit = m.Groups[2].Success ? m.Groups[2].Value.ToUpperInvariant() : targetUnit;
        decimal factor = (targetUnit, unit) switch
        {
            ("MB", "M" or "MB") => 1,
            ("MB", "G" or "GB") => 1024,
            ("MB", "T" or "TB") => 1024 * 1024,
            ("GB", "G" or "GB") => 1,
            ("GB", "T" or "TB") => 1024,
            _ => throw VmmException.Invalid($"Invalid size unit '{unit}' for {(targetUnit == "MB" ? "memory. Use M, G, or T." : "disk. Use G, T.")}"),
        };
        var value = number * factor;
        if (value != decimal.Truncate(value) || value > int.MaxValue)
        {
            throw VmmException.Invalid($"Size must be an integer number of {targetUnit}. Got {value}.");
        }

        return (long)value;
    }

    /// <summary>vmm-cli's box-drawing table.</summary>
    internal static string FormatTable(IReadOnlyList<IReadOnlyList<string>> rows, IReadOnlyList<string> headers)
    {
        if (rows.Count == 0)
        {
            return "";
        }

        var widths = headers.Select(h => h.Length).ToArray();
        foreach (var row in rows)
        {
            for (var i = 0; i < row.Count && i < widths.Length; i++)
            {
                widths[i] = Math.Max(widths[i], row[i].Length);
            }
        }

        string Row(IReadOnlyList<string> cells) => "│ " + string.Join(" │ ", widths.Select((w, i) => (i < cells.Count ? cells[i] : "").PadRight(w))) + " │";
        string Line(string left, string mid, string right) => left + string.Join(mid, widths.Select(w => new string('─', w))) + right;
        var lines = new List<string> { Line("┌─", "─┬─", "─┐"), Row(headers), Line("├─", "─┼─", "─┤") };
        lines.AddRange(rows.Select(Row));
        lines.Add(Line("└─", "─┴─", "─┘"));
        return string.Join('\n', lines);
    }

    [GeneratedRegex(@"^(\d+(?:\.\d+)?)([a-zA-Z]{1,2})?$")]
    private static partial Regex SizePattern();
}
