namespace PrivateMl.Attestation.Tdx;

/// <summary>TD_ATTRIBUTES bits (Linux <c>arch/x86/include/asm/shared/tdx.h</c>; research/tdx-dcap.md §2.2).</summary>
[Flags]
public enum TdAttributes : ulong
{
    None = 0,
    Debug = 1UL << 0,
    HgsPlusProf = 1UL << 4,
    PerfProf = 1UL << 5,
    PmtProf = 1UL << 6,
    Icssd = 1UL << 16,
    Lass = 1UL << 27,
    SeptVeDisable = 1UL << 28,
    Migratable = 1UL << 29,
    Pks = 1UL << 30,
    KeyLocker = 1UL << 31,
    Tpa = 1UL << 62,
    Perfmon = 1UL << 63,
}

/// <summary>XFAM bits: XSAVE state components (Linux <c>enum xfeature</c>; research/tdx-dcap.md §2.3).</summary>
[Flags]
public enum XfamFeatures : ulong
{
    None = 0,
    Fp = 1UL << 0,
    Sse = 1UL << 1,
    Avx = 1UL << 2,
    MpxBndRegs = 1UL << 3,
    MpxBndCsr = 1UL << 4,
    Avx512Opmask = 1UL << 5,
    Avx512ZmmHi256 = 1UL << 6,
    Avx512Hi16Zmm = 1UL << 7,
    Pt = 1UL << 8,
    Pkru = 1UL << 9,
    Pasid = 1UL << 10,
    CetUser = 1UL << 11,
    CetSupervisor = 1UL << 12,
    ArchLbr = 1UL << 15,
    AmxTileCfg = 1UL << 17,
    AmxTileData = 1UL << 18,
    Apx = 1UL << 19,
}

/// <summary>SGX attribute flags (u64 at body offset 48).</summary>
[Flags]
public enum SgxAttributeFlags : ulong
{
    None = 0,
    Initted = 1UL << 0,
    Debug = 1UL << 1,
    Mode64Bit = 1UL << 2,
    ProvisionKey = 1UL << 4,
    EInitTokenKey = 1UL << 5,
}

/// <summary>Names of TD attribute and XFAM bits as printed by tools (Linux spelling); unknown bits read <c>BIT_n</c>.</summary>
public static class TdAttributeNames
{
    /// <summary>TUD group: bits 0..7, "TD under debug".</summary>
    public const ulong TudMask = 0xFF;

    private static readonly (ulong Bit, string Name)[] TdNames =
    [
        ((ulong)TdAttributes.Debug, "DEBUG"),
        ((ulong)TdAttributes.HgsPlusProf, "HGS_PLUS_PROF"),
        ((ulong)TdAttributes.PerfProf, "PERF_PROF"),
        ((ulong)TdAttributes.PmtProf, "PMT_PROF"),
        ((ulong)TdAttributes.Icssd, "ICSSD"),
        ((ulong)TdAttributes.Lass, "LASS"),
        ((ulong)TdAttributes.SeptVeDisable, "SEPT_VE_DISABLE"),
        ((ulong)TdAttributes.Migratable, "MIGRATABLE"),
        ((ulong)TdAttributes.Pks, "PKS"),
        ((ulong)TdAttributes.KeyLocker, "KL"),
        ((ulong)TdAttributes.Tpa, "TPA"),
        ((ulong)TdAttributes.Perfmon, "PERFMON"),
    ];

    private static readonly (ulong Bit, string Name)[] XfamNames =
    [
        ((ulong)XfamFeatures.Fp, "FP"),
        ((ulong)XfamFeatures.Sse, "SSE"),
        ((ulong)XfamFeatures.Avx, "AVX"),
        ((ulong)XfamFeatures.MpxBndRegs, "MPX_BNDREGS"),
        ((ulong)XfamFeatures.MpxBndCsr, "MPX_BNDCSR"),
        ((ulong)XfamFeatures.Avx512Opmask, "AVX512_OPMASK"),
        ((ulong)XfamFeatures.Avx512ZmmHi256, "AVX512_ZMM_HI256"),
        ((ulong)XfamFeatures.Avx512Hi16Zmm, "AVX512_HI16_ZMM"),
        ((ulong)XfamFeatures.Pt, "PT"),
        ((ulong)XfamFeatures.Pkru, "PKRU"),
        ((ulong)XfamFeatures.Pasid, "PASID"),
        ((ulong)XfamFeatures.CetUser, "CET_U"),
        ((ulong)XfamFeatures.CetSupervisor, "CET_S"),
        ((ulong)XfamFeatures.ArchLbr, "ARCH_LBR"),
        ((ulong)XfamFeatures.AmxTileCfg, "AMX_TILECFG"),
        ((ulong)XfamFeatures.AmxTileData, "AMX_TILEDATA"),
        ((ulong)XfamFeatures.Apx, "APX"),
    ];

    /// <summary>Names of the set TD attribute bits, lowest bit first.</summary>
    public static IReadOnlyList<string> Describe(TdAttributes attributes) => Names((ulong)attributes, TdNames);

    /// <summary>Names of the set XFAM bits, lowest bit first.</summary>
    public static IReadOnlyList<string> Describe(XfamFeatures xfam) => Names((ulong)xfam, XfamNames);

    private static List<string> Names(ulong value, (ulong Bit, string Name)[] table)
    {
        var names = new List<string>();
        for (var bit = 0; bit < 64; bit++)
        {
            var mask = 1UL << bit;
            if ((value & mask) == 0)
            {
                continue;
            }

            var name = Array.Find(table, e => e.Bit == mask).Name;
            names.Add(name ?? $"BIT_{bit}");
        }

        return names;
    }
}
