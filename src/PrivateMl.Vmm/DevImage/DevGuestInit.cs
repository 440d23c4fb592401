namespace PrivateMl.Vmm.DevImage;

/// <summary>
/// The development guest's <c>/init</c> (busybox sh): mounts the kernel file systems, loads the modules listed in
/// <c>/etc/privateml/modules.order</c>, brings up <c>eth0</c> with QEMU user-mode networking's fixed addresses, mounts
/// the 9p shared folder read-only, starts busybox acpid for the power button, and runs <c>privateml guest boot</c>;
/// when that exits (or the power button stops it) the VM powers off.
/// </summary>
public static class DevGuestInit
{
    /// <summary>The 9p mount tag of the shared folder (dstack-vmm's).</summary>
    public const string SharedFolderTag = "host-shared";

    /// <summary>Where the guest mounts the shared folder (read-only).</summary>
    public const string SharedFolderMount = "/mnt/host-shared";

    /// <summary>Where <c>privateml</c> lives in the guest.</summary>
    public const string AppDirectory = "opt/privateml";

    /// <summary>The guest port the gateway listens on (forward a host port to it).</summary>
    public const int GuestPort = 8000;

    /// <summary>Lines the init prints on the serial console, so logs show where a boot stopped.</summary>
    public const string LogPrefix = "privateml-dev:";

    /// <summary>What the power-button handler prints on the console before it stops privateml.</summary>
    public const string PowerButtonLine = "ACPI power button: stopping privateml";

    public const string ModulesOrderPath = "etc/privateml/modules.order";

    /// <summary>
    /// SIMULATED: where the image carries the simulated TDX platform (PKI + TD profile) the guest's quotes are made
    /// with; the host's <c>kms serve --simulate --simulator &lt;image&gt;/tdx-simulator</c> trusts the same root.
    /// </summary>
    public const string SimulatorPath = "etc/privateml/SIMULATED-tdx-simulator";

    public static string Script { get; } = $$"""
        #!/bin/busybox sh
        # PrivateMl development guest (no TEE): kernel file systems, modules, network, shared folder, then privateml.
        /bin/busybox mkdir -p /bin /sbin /usr/bin /usr/sbin
        /bin/busybox --install -s
        export PATH=/bin:/sbin:/usr/bin:/usr/sbin
        mkdir -p /proc /sys /dev /tmp /run /var /root /dstack {{SharedFolderMount}}
        mount -t proc proc /proc
        mount -t sysfs sysfs /sys
        mount -t devtmpfs devtmpfs /dev
        mount -t tmpfs tmpfs /tmp
        mount -t tmpfs tmpfs /run
        ln -sfn /run /var/run
        say() { echo "{{LogPrefix}} $* (uptime $(cut -d' ' -f1 /proc/uptime) s)"; }
        say "init started"
        while read -r module; do
          [ -n "$module" ] || continue
          insmod "/lib/modules/$module" || { say "insmod $module failed"; poweroff -f; }
        done < /{{ModulesOrderPath}}
        # The VMM's graceful stop presses the ACPI power button (QMP system_powerdown): busybox acpid runs
        # /etc/acpi/PWRF/00000080 for it, which stops privateml; the init then powers off as after any exit.
        mkdir -p /etc/acpi/PWRF /var/log
        printf '#!/bin/sh\necho "{{LogPrefix}} {{PowerButtonLine}}" > /dev/console\nkill -TERM $(pidof privateml) 2>/dev/null\n' > /etc/acpi/PWRF/00000080
        chmod 0755 /etc/acpi/PWRF/00000080
        if [ -e /dev/input/event0 ] && acpid -c /etc/acpi -l /var/log/acpid.log; then
          say "acpid: the ACPI power button stops privateml"
        else
          say "no input device for the power button: a graceful stop will time out"
        fi
        ip link set lo up
        ip addr add 10.0.2.15/24 dev eth0 && ip link set eth0 up && ip route add default via 10.0.2.2 || say "eth0 could not be configured"
        if mount -t 9p -o trans=virtio,version=9p2000.L,ro {{SharedFolderTag}} {{SharedFolderMount}}; then
          say "shared folder mounted at {{SharedFolderMount}}"
        else
          say "no shared folder (9p tag {{SharedFolderTag}})"
        fi
        export HOME=/root DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
        say "network up; starting privateml guest boot"
        /{{AppDirectory}}/privateml guest boot --shared {{SharedFolderMount}} --port {{GuestPort}}
        say "privateml exited with status $?; powering off"
        poweroff -f
        """.Replace("\r\n", "\n", StringComparison.Ordinal) + "\n";
}
