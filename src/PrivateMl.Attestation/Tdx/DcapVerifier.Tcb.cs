using PrivateMl.Attestation.Pck;
using PrivateMl.Attestation.Tdx.Collateral;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.Attestation.Tdx;

public sealed partial class DcapVerifier
{
    /// <summary>Per-call TCB state filled by the TCB checks.</summary>
    internal sealed class TcbEvaluation
    {
        public TdxModuleIdentity? ModuleIdentity { get; set; }

        public bool ModuleLevelRequired { get; set; }

        public TcbLevelMatch? Platform { get; set; }

        public TcbLevelMatch? Module { get; set; }

        public TcbLevelMatch? Qe { get; set; }

        public TcbStatus? Merged { get; set; }

        public IReadOnlyList<string> AdvisoryIds { get; set; } = [];

        public IReadOnlyList<TcbComponentShortfall> Shortfalls { get; set; } = [];

        public List<TcbComponentShortfall> ShortfallsToUpToDate { get; set; } = [];

        public DateTimeOffset? EarliestDate { get; set; }

        public bool Failed { get; set; }

        public TcbStatus? Current { get; set; }

        public bool RelaunchAdvised { get; set; }
    }

    private static CheckResult CheckTdxModuleIdentity(TdxQuote? quote, TcbInfo? info, TcbEvaluation tcb)
    {
        const string Name = CheckNames.TdxModuleIdentity;
        if (quote?.TdReport is not { } td)
        {
            return CheckResult.Skip(Name, quote is null ? "no parsed quote" : "SGX quote: no TDX module");
        }

        if (info is null)
        {
            tcb.Failed = true;
            return CheckResult.Skip(Name, "no verified TCB info");
        }

        TdxModuleIdentity? expected;
        if (td.TdxModuleMajorVersion > 0)
        {
            var id = $"TDX_{td.TdxModuleMajorVersion:X2}";
            expected = Array.Find(info.TdxModuleIdentities, m => string.Equals(m.Id, id, StringComparison.OrdinalIgnoreCase));
            if (expected is null)
            {
                tcb.Failed = true;
                return CheckResult.Fail(Name, ErrorCode.TdxModuleIdentityNotFound, $"the TCB info has no TDX module identity {id} (TEE_TCB_SVN[1] = {td.TdxModuleMajorVersion})");
            }

            tcb.ModuleIdentity = expected;
            tcb.ModuleLevelRequired = true;
        }
        else if (info.TdxModule is { } module)
        {
            expected = module;
        }
        else
        {
            tcb.Failed = true;
            return CheckResult.Fail(Name, ErrorCode.TdxModuleIdentityNotFound, "the TCB info has no tdxModule for a TDX quote");
        }

        if (!td.MrSignerSeam.Span.SequenceEqual(expected.MrSigner))
        {
            tcb.Failed = true;
            return CheckResult.Fail(Name, ErrorCode.TdxModuleMismatch, $"MR_SIGNER_SEAM {Hex(td.MrSignerSeam)} is not {expected.Id}'s mrsigner {Convert.ToHexStringLower(expected.MrSigner)}");
        }

        var seam = td.SeamAttributes.Span;
        for (var i = 0; i < 8; i++)
        {
            if ((seam[i] & expected.AttributesMask[i]) != (expected.Attributes[i] & expected.AttributesMask[i]) || (seam[i] & ~expected.AttributesMask[i]) != 0)
            {
                tcb.Failed = true;
                return CheckResult.Fail(Name, ErrorCode.TdxModuleMismatch, $"SEAM attributes {Hex(td.SeamAttributes)} do not match {expected.Id}'s {Convert.ToHexStringLower(expected.Attributes)} under mask {Convert.ToHexStringLower(expected.AttributesMask)}");
            }
        }

        return CheckResult.Pass(Name, $"MR_SIGNER_SEAM and SEAM attributes match {expected.Id}");
    }

    private static CheckResult CheckPlatformTcbLevel(TdxQuote? quote, PckExtensions? pck, TcbInfo? info, TcbEvaluation tcb)
    {
        const string Name = CheckNames.PlatformTcbLevel;
        if (quote is null || pck is null || info is null)
        {
            tcb.Failed = true;
            return CheckResult.Skip(Name, quote is null ? "no parsed quote" : pck is null ? "no PCK extension" : "no verified TCB info");
        }

        if (quote.IsTdx != (info.Id == "TDX"))
        {
            tcb.Failed = true;
            return CheckResult.Skip(Name, "the TCB info is for another TEE");
        }

        var teeTcbSvn = quote.TdReport?.TeeTcbSvn.Span.ToArray();

        List<TcbComponentShortfall> ShortfallsAgainst(TcbInfoLevel level) => Shortfalls(pck, level, teeTcbSvn);

        // The level to aim for: the first UpToDate one, or the highest when the TCB info lists no UpToDate level.
        var firstUpToDate = Math.Max(0, Array.FindIndex(info.Levels, l => l.Status == TcbStatus.UpToDate));
        for (var index = 0; index < info.Levels.Length; index++)
        {
            var level = info.Levels[index];
            if (ShortfallsAgainst(level).Count > 0)
            {
                continue;
            }

            if (level.Status is not { } status)
            {
                tcb.Failed = true;
                return CheckResult.Fail(Name, ErrorCode.CollateralMalformed, $"the matching TCB level {index} has the unrecognised status \"{level.StatusText}\"");
            }

            tcb.Platform = new TcbLevelMatch(index, status, level.TcbDate, level.AdvisoryIds);
            if (status != TcbStatus.UpToDate && index != firstUpToDate)
            {
                tcb.ShortfallsToUpToDate = ShortfallsAgainst(info.Levels[firstUpToDate]);
            }

            var target = info.Levels[firstUpToDate].StatusText;
            var toUpToDate = tcb.ShortfallsToUpToDate.Count > 0 ? $"; level {firstUpToDate} ({target}) needs " + string.Join("; ", tcb.ShortfallsToUpToDate) : string.Empty;
            return CheckResult.Pass(Name, $"level {index} of {info.Levels.Length} (tcbDate {Time(level.TcbDate)}): {level.StatusText}{Advisories(level.AdvisoryIds)}{toUpToDate}");
        }

        // No level matches: name what falls short of the least demanding level.
        tcb.Failed = true;
        tcb.Shortfalls = ShortfallsAgainst(info.Levels[^1]);
        tcb.ShortfallsToUpToDate = ShortfallsAgainst(info.Levels[firstUpToDate]);

        return CheckResult.Fail(Name, ErrorCode.TcbLevelNotFound, $"no TCB level of FMSPC {pck.FmspcHex} matches this platform (TCB not supported): {string.Join("; ", tcb.Shortfalls)} even for the lowest level");
    }

    private static CheckResult CheckTdxModuleTcbLevel(TdxQuote? quote, TcbEvaluation tcb)
    {
        const string Name = CheckNames.TdxModuleTcbLevel;
        if (quote?.TdReport is not { } td)
        {
            return CheckResult.Skip(Name, quote is null ? "no parsed quote" : "SGX quote: no TDX module");
        }

        if (!tcb.ModuleLevelRequired || tcb.ModuleIdentity is not { } identity)
        {
            return CheckResult.Skip(Name, td.TdxModuleMajorVersion == 0 ? "TEE_TCB_SVN[1] = 0: no module identity evaluation" : "no TDX module identity");
        }

        var svn = td.TdxModuleSvn;
        for (var index = 0; index < identity.Levels.Length; index++)
        {
            var level = identity.Levels[index];
            if (svn < level.IsvSvn)
            {
                continue;
            }

            if (level.Status is not (TcbStatus.UpToDate or TcbStatus.OutOfDate or TcbStatus.Revoked) || level.Status is not { } status)
            {
                tcb.Failed = true;
                return CheckResult.Fail(Name, ErrorCode.CollateralMalformed, $"{identity.Id} level {index} has the status \"{level.StatusText}\" (UpToDate, OutOfDate or Revoked expected)");
            }

            tcb.Module = new TcbLevelMatch(index, status, level.TcbDate, level.AdvisoryIds);
            return CheckResult.Pass(Name, $"{identity.Id}: module SVN {svn} ≥ {level.IsvSvn}: {level.StatusText}{Advisories(level.AdvisoryIds)}");
        }

        tcb.Failed = true;
        var lowest = identity.Levels.Length > 0 ? identity.Levels[^1].IsvSvn : 0;
        tcb.Shortfalls = [.. tcb.Shortfalls, new TcbComponentShortfall(TcbComponentKind.TdxModuleSvn, 0, identity.Id, svn, lowest)];
        return CheckResult.Fail(Name, ErrorCode.TcbLevelNotFound, $"{identity.Id}: module SVN {svn} is below every level (lowest {lowest})");
    }

    private static CheckResult CheckQeTcbLevel(TdxQuote? quote, QeIdentity? identity, TcbEvaluation tcb)
    {
        const string Name = CheckNames.QeTcbLevel;
        if (quote is null || identity is null)
        {
            tcb.Failed = true;
            return CheckResult.Skip(Name, quote is null ? "no parsed quote" : "no verified QE identity");
        }

        var svn = quote.Signature.QeReport.IsvSvn;
        for (var index = 0; index < identity.Levels.Length; index++)
        {
            var level = identity.Levels[index];
            if (svn < level.IsvSvn)
            {
                continue;
            }

            if (level.Status is not { } status)
            {
                tcb.Failed = true;
                return CheckResult.Fail(Name, ErrorCode.CollateralMalformed, $"QE identity level {index} has the unrecognised status \"{level.StatusText}\"");
            }

            tcb.Qe = new TcbLevelMatch(index, status, level.TcbDate, level.AdvisoryIds);
            return CheckResult.Pass(Name, $"QE ISVSVN {svn} ≥ {level.IsvSvn}: {level.StatusText}{Advisories(level.AdvisoryIds)}");
        }

        tcb.Failed = true;
        var lowest = identity.Levels.Length > 0 ? identity.Levels[^1].IsvSvn : 0;
        tcb.Shortfalls = [.. tcb.Shortfalls, new TcbComponentShortfall(TcbComponentKind.QeIsvSvn, 0, identity.Id, svn, lowest)];
        return CheckResult.Fail(Name, ErrorCode.QeTcbLevelNotFound, $"QE ISVSVN {svn} is below every QE identity level (lowest {lowest})");
    }

    /// <summary>
    /// Intel's convergence: start from the platform status; an OutOfDate module or QE turns UpToDate/SWHardeningNeeded
    /// into OutOfDate and the configuration statuses into OutOfDateConfigurationNeeded; any Revoked wins. Advisory IDs:
    /// platform, QE, module, without duplicates.
    /// </summary>
    private static CheckResult CheckMergedStatus(TcbEvaluation tcb)
    {
        const string Name = CheckNames.TcbStatus;
        if (tcb.Failed || tcb.Platform is null || tcb.Qe is null || (tcb.ModuleLevelRequired && tcb.Module is null))
        {
            return CheckResult.Skip(Name, "no complete TCB evaluation");
        }

        var status = Converge(tcb.Platform.Status, tcb.Module?.Status, tcb.Qe.Status);
        var advisories = new List<string>();
        foreach (var id in tcb.Platform.AdvisoryIds.Concat(tcb.Qe.AdvisoryIds).Concat(tcb.Module?.AdvisoryIds ?? []))
        {
            if (!advisories.Contains(id, StringComparer.Ordinal))
            {
                advisories.Add(id);
            }
        }

        tcb.Merged = status;
        tcb.AdvisoryIds = advisories;
        var dates = new[] { tcb.Platform.TcbDate, tcb.Qe.TcbDate }.Concat(tcb.Module is { } m ? [m.TcbDate] : []);
        tcb.EarliestDate = dates.Min();
        if (status == TcbStatus.Revoked)
        {
            return CheckResult.Fail(Name, ErrorCode.TcbRevoked, $"the TCB is Revoked{Advisories(advisories)}");
        }

        return CheckResult.Pass(Name, $"{status}{Advisories(advisories)} (platform {tcb.Platform.Status}, QE {tcb.Qe.Status}{(tcb.Module is { } mod ? $", TDX module {mod.Status}" : string.Empty)}); acceptance is the policy's decision");
    }

    /// <summary>
    /// What falls short of one platform level: the 16 SGX components and PCESVN from the PCK certificate, and for TDX
    /// the TEE_TCB_SVN bytes from index 2 (module version &gt; 0) or 0.
    /// </summary>
    private static List<TcbComponentShortfall> Shortfalls(PckExtensions pck, TcbInfoLevel level, byte[]? teeTcbSvn)
    {
        var tdxStart = teeTcbSvn is not null && teeTcbSvn[1] > 0 ? 2 : 0;
        var list = new List<TcbComponentShortfall>();
        for (var i = 0; i < 16; i++)
        {
            if (pck.TcbComponents[i] < level.SgxComponents[i])
            {
                list.Add(new TcbComponentShortfall(TcbComponentKind.SgxComponent, i, NameOr(level.SgxComponentNames[i], $"SGX component {i + 1}"), pck.TcbComponents[i], level.SgxComponents[i]));
            }
        }

        if (pck.PceSvn < level.PceSvn)
        {
            list.Add(new TcbComponentShortfall(TcbComponentKind.PceSvn, 0, "PCESVN", pck.PceSvn, level.PceSvn));
        }

        if (teeTcbSvn is null)
        {
            return list;
        }

        if (level.TdxComponents is null)
        {
            list.Add(new TcbComponentShortfall(TcbComponentKind.TdxComponent, 0, "tdxtcbcomponents missing from this level", 0, 0));
            return list;
        }

        for (var i = tdxStart; i < 16; i++)
        {
            if (teeTcbSvn[i] < level.TdxComponents[i])
            {
                list.Add(new TcbComponentShortfall(TcbComponentKind.TdxComponent, i, NameOr(level.TdxComponentNames![i], $"TDX component {i}"), teeTcbSvn[i], level.TdxComponents[i]));
            }
        }

        return list;
    }

    private static TcbStatus Converge(TcbStatus platform, TcbStatus? module, TcbStatus qe)
    {
        var status = platform;
        foreach (var component in new[] { module, qe })
        {
            status = component switch
            {
                TcbStatus.Revoked => TcbStatus.Revoked,
                TcbStatus.OutOfDate or TcbStatus.OutOfDateConfigurationNeeded when status is TcbStatus.UpToDate or TcbStatus.SWHardeningNeeded => TcbStatus.OutOfDate,
                TcbStatus.OutOfDate or TcbStatus.OutOfDateConfigurationNeeded when status is TcbStatus.ConfigurationNeeded or TcbStatus.ConfigurationAndSWHardeningNeeded => TcbStatus.OutOfDateConfigurationNeeded,
                { } other when other > status && status != TcbStatus.Revoked => other,
                _ => status,
            };
        }

        return status;
    }

    /// <summary>
    /// TD 1.5: the same evaluation with TEE_TCB_SVN2 (the TCB after TD-preserving updates). A TD launched on an
    /// OutOfDate TCB whose current TCB is no longer OutOfDate should be relaunched (Intel's TDRelaunchAdvised).
    /// </summary>
    internal static CheckResult CheckTdRelaunch(TdxQuote? quote, PckExtensions? pck, TcbInfo? info, TcbEvaluation tcb)
    {
        const string Name = CheckNames.TdRelaunch;
        if (quote?.TdReport?.TeeTcbSvn2 is not { } svn2Memory)
        {
            return CheckResult.Skip(Name, quote is null ? "no parsed quote" : "no TEE_TCB_SVN2 (not a TD 1.5 report)");
        }

        if (tcb.Merged is not { } launch || pck is null || info is null || tcb.Qe is null)
        {
            return CheckResult.Skip(Name, "the launch TCB was not evaluated");
        }

        var svn2 = svn2Memory.ToArray();
        var level = Array.FindIndex(info.Levels, l => Shortfalls(pck, l, svn2).Count == 0);
        if (level < 0 || info.Levels[level].Status is not { } platform)
        {
            return CheckResult.Fail(Name, ErrorCode.TcbLevelNotFound, $"TEE_TCB_SVN2 {Convert.ToHexStringLower(svn2)} matches no TCB level although TEE_TCB_SVN does");
        }

        TcbStatus? module = null;
        if (svn2[1] > 0)
        {
            var id = $"TDX_{svn2[1]:X2}";
            var identity = Array.Find(info.TdxModuleIdentities, m => string.Equals(m.Id, id, StringComparison.OrdinalIgnoreCase));
            var moduleLevel = identity is null ? null : Array.Find(identity.Levels, l => svn2[0] >= l.IsvSvn);
            if (moduleLevel?.Status is not { } moduleStatus)
            {
                return CheckResult.Fail(Name, ErrorCode.TcbLevelNotFound, $"TEE_TCB_SVN2 names module {id} SVN {svn2[0]}, which no module identity level covers");
            }

            module = moduleStatus;
        }

        var current = Converge(platform, module, tcb.Qe.Status);
        tcb.Current = current;
        tcb.RelaunchAdvised = launch is TcbStatus.OutOfDate or TcbStatus.OutOfDateConfigurationNeeded
            && current is TcbStatus.UpToDate or TcbStatus.SWHardeningNeeded or TcbStatus.ConfigurationNeeded or TcbStatus.ConfigurationAndSWHardeningNeeded;
        return CheckResult.Pass(Name, tcb.RelaunchAdvised
            ? $"current TCB (TEE_TCB_SVN2) is {current} but the TD was launched on {launch}: relaunch advised"
            : $"current TCB (TEE_TCB_SVN2) is {current}; launched on {launch}: no relaunch needed");
    }

    private static string Advisories(IReadOnlyList<string> ids) => ids.Count == 0 ? string.Empty : $" [{string.Join(", ", ids)}]";

    private static string NameOr(string name, string fallback) => string.IsNullOrEmpty(name) ? fallback : name;
}
