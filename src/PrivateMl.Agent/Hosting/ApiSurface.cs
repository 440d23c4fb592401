namespace PrivateMl.Agent.Hosting;

/// <summary>Which API a listener serves.</summary>
[Flags]
internal enum ApiSurface
{
    /// <summary>DstackGuest at <c>/&lt;Method&gt;</c> (dstack.sock).</summary>
    Dstack = 1,

    /// <summary>Tappd at <c>/prpc/[Tappd.]&lt;Method&gt;</c> (tappd.sock).</summary>
    Tappd = 2,

    /// <summary>The TCP listener serves both.</summary>
    Both = Dstack | Tappd,
}
