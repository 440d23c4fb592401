using System.CommandLine;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using PrivateMl.Vmm;
using PrivateMl.Vmm.Client;
using PrivateMl.Vmm.Compose;
using PrivateMl.Vmm.Hosting;

namespace PrivateMl.Cli.Commands;

/// <summary>vmm-cli.py's newer verbs for an existing VM: <c>info</c>, <c>resize</c>, <c>update-ports</c> and the all-in-one <c>update</c>.</summary>
internal static partial class VmmCommands
{
    private static Command Info(ClientOptions context)
    {
        var id = new Argument<string>("vm_id") { Description = "VM ID to show info for" };
        var json = new Option<bool>("--json") { Description = "Output in JSON format for automation" };
        var command = new Command("info", "Show detailed VM information") { id, json };
        command.SetAction((parse, ct) => Guard(parse, async output =>
        {
            var vmId = parse.GetValue(id)!;
            var response = await context.Connect(parse).CallAsync<GetInfoResponse>("GetInfo", new IdRequest { Id = vmId }, ct);
            if (!response.Found || response.Info is not { } info)
            {
                throw new VmmException(VmmErrorCode.UnknownVm, $"VM with ID {vmId} not found");
            }

            if (parse.GetValue(json))
            {
                output.WriteLine(JsonSerializer.Serialize(info, Indented2));
                return ExitCodes.Accepted;
            }

            var c = info.Configuration;
            output.WriteLine($"VM ID:         {info.Id}");
            output.WriteLine($"Name:          {info.Name}");
            output.WriteLine($"Status:        {info.Status}");
            output.WriteLine($"Uptime:        {Dash(info.Uptime)}");
            output.WriteLine($"App ID:        {info.AppId}");
            output.WriteLine($"Instance ID:   {Dash(info.InstanceId)}");
            output.WriteLine($"App URL:       {Dash(info.AppUrl)}");
            output.WriteLine($"Image:         {Dash(c?.Image)}");
            output.WriteLine($"Image Version: {Dash(info.ImageVersion)}");
            output.WriteLine($"vCPU:          {c?.Vcpu.ToString(CultureInfo.InvariantCulture) ?? "-"}");
            output.WriteLine($"Memory:        {c?.Memory.ToString(CultureInfo.InvariantCulture) ?? "-"}MB");
            output.WriteLine($"Disk:          {c?.DiskSize.ToString(CultureInfo.InvariantCulture) ?? "-"}GB");
            output.WriteLine($"GPUs:          {FormatGpus(c?.Gpus)}");
            output.WriteLine($"Ports:         {(c is { Ports.Count: > 0 } ? string.Join(", ", c.Ports.Select(p => $"{p.Protocol}:{p.HostAddress}:{p.HostPort}->{p.VmPort}")) : "-")}");
            output.WriteLine($"KMS URLs:      {(c is { KmsUrls.Count: > 0 } ? string.Join(", ", c.KmsUrls) : "-")}");
            output.WriteLine($"TEE:           {(c?.NoTee == true ? "none (development VM)" : "TDX")}");
            if (c is { ComposeFile.Length: > 0 })
            {
                output.WriteLine($"Compose hash:  {Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(c.ComposeFile)))}");
            }

            output.WriteLine($"Boot Progress: {Dash(info.BootProgress)}");
            if (info.BootError.Length > 0)
            {
                output.WriteLine($"Boot Error:    {info.BootError}");
            }

            if (info.ExitedAt is { Length: > 0 } exited)
            {
                output.WriteLine($"Exited At:     {exited}");
            }

            if (info.ShutdownProgress.Length > 0)
            {
                output.WriteLine($"Shutdown:      {info.ShutdownProgress}");
            }

            if (info.Events.Count > 0)
            {
                output.WriteLine();
                output.WriteLine("Recent Events:");
                foreach (var e in info.Events.TakeLast(10))
                {
                    output.WriteLine($"  [{e.Event}] {e.Body} (ts: {e.Timestamp})");
                }
            }

            return ExitCodes.Accepted;
        }));
        return command;
    }

    private static string Dash(string? text) => string.IsNullOrEmpty(text) ? "-" : text;

    private static Command Resize(ClientOptions context)
    {
        var id = new Argument<string>("vm_id") { Description = "VM ID to resize" };
        var vcpu = new Option<int?>("--vcpu") { Description = "Number of vCPUs" };
        var memory = new Option<string?>("--memory") { Description = "Memory size (e.g. 1G, 100M)" };
        var disk = new Option<string?>("--disk") { Description = "Disk size (e.g. 20G, 1T); the disk only grows" };
        var image = new Option<string?>("--image") { Description = "Image name" };
        var command = new Command("resize", "Resize a stopped VM (vCPU, memory, disk, image), effective at its next start") { id, vcpu, memory, disk, image };
        command.SetAction((parse, ct) => Guard(parse, async output =>
        {
            var vmId = parse.GetValue(id)!;
            var request = new ResizeVmRequest
            {
                Id = vmId,
                Vcpu = parse.GetValue(vcpu),
                Memory = parse.GetValue(memory) is { } m ? ParseSize(m, "MB") : null,
                DiskSize = parse.GetValue(disk) is { } d ? ParseSize(d, "GB") : null,
                Image = parse.GetValue(image),
            };
            if (request is { Vcpu: null, Memory: null, DiskSize: null, Image: null })
            {
                throw VmmException.Invalid("at least one parameter must be specified for resize: --vcpu, --memory, --disk, or --image");
            }

            await context.Connect(parse).CallRawAsync("ResizeVm", request, ct);
            output.WriteLine($"Resized VM {vmId}");
            return ExitCodes.Accepted;
        }));
        return command;
    }

    private static Command UpdatePorts(ClientOptions context)
    {
        var id = new Argument<string>("vm_id") { Description = "VM ID to update" };
        var port = new Option<string[]>("--port") { Description = "Port mapping protocol[:address]:from:to (repeatable)", Required = true };
        var command = new Command("update-ports", "Replace a VM's port mappings (effective at its next start)") { id, port };
        command.SetAction((parse, ct) => Guard(parse, async output =>
        {
            var vmId = parse.GetValue(id)!;
            var ports = parse.GetValue(port)!.Select(ParsePortMapping).ToList();
            await context.Connect(parse).CallRawAsync("UpgradeApp", new UpgradeAppRequest { Id = vmId, UpdatePorts = true, Ports = ports }, ct);
            output.WriteLine($"Port mapping updated for VM {vmId}");
            return ExitCodes.Accepted;
        }));
        return command;
    }

    /// <summary>
    /// vmm-cli's <c>update</c>: several changes in one command. Unlike vmm-cli (ResizeVm, then UpgradeApp), everything
    /// goes in one UpgradeApp request, which this service validates completely before changing anything.
    /// </summary>
    private static Command Update(ClientOptions context)
    {
        var id = new Argument<string>("vm_id") { Description = "VM ID to update" };
        var vcpu = new Option<int?>("--vcpu") { Description = "Number of vCPUs (VM must be stopped)" };
        var memory = new Option<string?>("--memory") { Description = "Memory size (e.g. 1G, 100M; VM must be stopped)" };
        var disk = new Option<string?>("--disk") { Description = "Disk size (e.g. 20G, 1T; grow only; VM must be stopped)" };
        var image = new Option<string?>("--image") { Description = "Image name (VM must be stopped)" };
        var dockerCompose = new Option<FileInfo?>("--compose") { Description = "docker-compose.yml whose text replaces the app compose's docker_compose_file (as vmm-cli's update --compose)" };
        var prelaunch = new Option<FileInfo?>("--prelaunch-script") { Description = "Pre-launch script file (an empty file removes it)" };
        var envFile = new Option<FileInfo?>("--env-file") { Description = "File with environment variables to encrypt" };
        var userConfig = new Option<FileInfo?>("--user-config") { Description = "Path to user config file" };
        var port = new Option<string[]>("--port") { Description = "Port mapping protocol[:address]:from:to (repeatable; replaces all)" };
        var noPorts = new Option<bool>("--no-ports") { Description = "Remove all port mappings" };
        var swap = new Option<string?>("--swap") { Description = "Swap size (e.g. 4G). Set to 0 to disable" };
        var gpu = new Option<string[]>("--gpu") { Description = "GPU slot to attach (repeatable), or all" };
        var ppcie = new Option<bool>("--ppcie") { Description = "Attach all GPUs and NVSwitches" };
        var noGpus = new Option<bool>("--no-gpus") { Description = "Detach all GPUs" };
        var noTee = new Option<bool>("--no-tee") { Description = "Make it a development VM without TDX" };
        var tee = new Option<bool>("--tee") { Description = "Make it a TDX VM" };
        var kmsUrl = new Option<string[]>("--kms-url") { Description = "KMS URLs (replace the VM's; the first also encrypts --env-file)" };
        var command = new Command("update", "Update multiple aspects of a VM in one command")
        {
            id, vcpu, memory, disk, image, dockerCompose, prelaunch, envFile, userConfig, port, noPorts, swap, gpu, ppcie, noGpus, noTee, tee, kmsUrl,
        };
        command.SetAction((parse, ct) => Guard(parse, async output =>
        {
            var vmId = parse.GetValue(id)!;
            var ports = parse.GetResult(port) is not null ? parse.GetValue(port)! : null;
            var gpus = parse.GetResult(gpu) is not null ? parse.GetValue(gpu)! : null;
            var kms = parse.GetResult(kmsUrl) is not null ? parse.GetValue(kmsUrl)! : null;
            if (ports is not null && parse.GetValue(noPorts))
            {
                throw VmmException.Invalid("--port and --no-ports cannot be combined");
            }

            if (new[] { gpus is not null, parse.GetValue(ppcie), parse.GetValue(noGpus) }.Count(b => b) > 1)
            {
                throw VmmException.Invalid("--gpu, --ppcie and --no-gpus cannot be combined");
            }

            if (parse.GetValue(noTee) && parse.GetValue(tee))
            {
                throw VmmException.Invalid("--tee and --no-tee cannot be combined");
            }

            var updates = new List<string>();
            var request = new UpgradeAppRequest { Id = vmId };
            if (parse.GetValue(vcpu) is { } v)
            {
                request = request with { Vcpu = v };
                updates.Add($"vCPU: {v}");
            }

            if (parse.GetValue(memory) is { } m)
            {
                request = request with { Memory = ParseSize(m, "MB") };
                updates.Add($"memory: {request.Memory}MB");
            }

            if (parse.GetValue(disk) is { } d)
            {
                request = request with { DiskSize = ParseSize(d, "GB") };
                updates.Add($"disk: {request.DiskSize}GB");
            }

            if (parse.GetValue(image) is { } img)
            {
                request = request with { Image = img };
                updates.Add($"image: {img}");
            }

            var client = context.Connect(parse);
            var dockerText = parse.GetValue(dockerCompose) is { } dc ? AppComposeBuilder.ReadUtf8File(dc.FullName) : null;
            var prelaunchText = parse.GetValue(prelaunch) is { } pl ? AppComposeBuilder.ReadUtf8File(pl.FullName) : null;
            var swapMb = parse.GetValue(swap) is { } s ? ParseSize(s, "MB") : (long?)null;
            var envs = parse.GetValue(envFile) is { } ef ? CliEnvFile.Read(ef.FullName) : null;
            if (dockerText is not null || prelaunchText is not null || swapMb is not null || envs is not null)
            {
                var found = await client.CallAsync<GetInfoResponse>("GetInfo", new IdRequest { Id = vmId }, ct);
                if (!found.Found || found.Info is not { } info)
                {
                    throw new VmmException(VmmErrorCode.UnknownVm, $"VM with ID {vmId} not found");
                }

                var composeText = info.Configuration?.ComposeFile ?? "";
                if (dockerText is not null || prelaunchText is not null || swapMb is not null)
                {
                    var editor = AppComposeEditor.Parse(composeText);
                    if (dockerText is not null)
                    {
                        editor.Set("docker_compose_file", dockerText);
                        updates.Add("docker compose");
                    }

                    if (prelaunchText is not null)
                    {
                        if (prelaunchText.Trim() is { Length: > 0 } script)
                        {
                            editor.Set("pre_launch_script", script);
                            updates.Add("prelaunch script");
                        }
                        else if (editor.Remove("pre_launch_script"))
                        {
                            updates.Add("prelaunch script (removed)");
                        }
                    }

                    if (swapMb is { } mb)
                    {
                        editor.SetSwapMegabytes(mb);
                        updates.Add(mb > 0 ? $"swap: {mb}MB" : "swap (disabled)");
                    }

                    composeText = editor.ToJson();
                    request = request with { ComposeFile = composeText };
                }

                if (envs is { Count: > 0 })
                {
                    request = request with { EncryptedEnv = await EncryptEnv(client, output, info.AppId, kms is { Length: > 0 } ? kms[0] : null, envs, ct) };
                    updates.Add("environment variables");
                    if (AllowEnvs(composeText, envs) is { } allowed)
                    {
                        request = request with { ComposeFile = allowed };
                    }
                }

                if (request.ComposeFile.Length > 0)
                {
                    output.WriteLine($"Compose hash: {Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(request.ComposeFile)))}");
                }
            }

            if (parse.GetValue(userConfig) is { } uc)
            {
                request = request with { UserConfig = AppComposeBuilder.ReadUtf8File(uc.FullName) };
                updates.Add("user config");
            }

            if (kms is not null)
            {
                request = request with { UpdateKmsUrls = true, KmsUrls = kms };
                updates.Add($"KMS URLs ({kms.Length})");
            }

            if (ports is not null || parse.GetValue(noPorts))
            {
                request = request with { UpdatePorts = true, Ports = (ports ?? []).Select(ParsePortMapping).ToList() };
                updates.Add(ports is null ? "port mappings (removed)" : "port mappings");
            }

            if (parse.GetValue(ppcie) || gpus?.Contains("all") == true)
            {
                request = request with { Gpus = new GpuConfig { AttachMode = "all" } };
                updates.Add("GPUs (all)");
            }
            else if (parse.GetValue(noGpus))
            {
                request = request with { Gpus = new GpuConfig { AttachMode = "listed" } };
                updates.Add("GPUs (detached)");
            }
            else if (gpus is not null)
            {
                request = request with { Gpus = new GpuConfig { AttachMode = "listed", Gpus = gpus.Select(g => new GpuSpec { Slot = g }).ToList() } };
                updates.Add($"GPUs ({gpus.Length} devices)");
            }

            if (parse.GetValue(noTee) || parse.GetValue(tee))
            {
                request = request with { NoTee = parse.GetValue(noTee) };
                updates.Add(parse.GetValue(noTee) ? "TEE disabled" : "TEE enabled");
            }

            if (updates.Count == 0)
            {
                output.WriteLine($"No updates specified for VM {vmId}");
                return ExitCodes.Accepted;
            }

            await client.CallRawAsync("UpgradeApp", request, ct);
            output.WriteLine($"Updated VM {vmId}: {string.Join(", ", updates)}");
            return ExitCodes.Accepted;
        }));
        return command;
    }

    /// <summary>
    /// vmm-cli's env update rule: the compose's <c>allowed_envs</c> becomes the env file's keys (the guest drops any
    /// variable not listed), and <c>APP_LAUNCH_TOKEN</c>'s SHA-256 becomes <c>launch_token_hash</c>. Returns the edited
    /// compose, or null when nothing changes (or there is no compose to edit).
    /// </summary>
    internal static string? AllowEnvs(string? composeJson, IReadOnlyList<KeyValuePair<string, string>> envs)
    {
        if (string.IsNullOrEmpty(composeJson))
        {
            return null;
        }

        var editor = AppComposeEditor.Parse(composeJson);
        var changed = false;
        var keys = envs.Select(e => e.Key).Distinct(StringComparer.Ordinal).ToList();
        var current = editor.Get("allowed_envs") as IReadOnlyList<object?>;
        if (current is null || !current.SequenceEqual(keys))
        {
            editor.Set("allowed_envs", keys);
            changed = true;
        }

        if (envs.LastOrDefault(e => e.Key == "APP_LAUNCH_TOKEN") is { Key: not null } token)
        {
            var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(token.Value)));
            if (editor.Get("launch_token_hash") as string != hash)
            {
                editor.Set("launch_token_hash", hash);
                changed = true;
            }
        }

        return changed ? editor.ToJson() : null;
    }
}
