using System.Text;
using PrivateMl.Attestation.EventLog;

namespace PrivateMl.Attestation.Tests.EventLog;

/// <summary>One RTMR3 runtime event of a real dstack log: name, payload and the digest dstack logged for it.</summary>
public sealed record RuntimeEventVector(string Name, string PayloadHex, string DigestHex)
{
    public byte[] Payload => Convert.FromHexString(PayloadHex);
}

/// <summary>
/// The RTMR3 runtime events of two real dstack event logs, with the RTMR3 their quotes carry. Values are the ones
/// listed in ../shared/research/dstack.md §6.1 and §6.6 (there marked [recomputed]); the production RTMR3 is the
/// <c>rtmr3</c> of that sample's quote (pml <c>vllm-proxy/tests/app/sample_dstack_data.py</c>).
/// </summary>
public sealed record DstackEventLogVector(string Source, string Name, IReadOnlyList<RuntimeEventVector> Events, string Rtmr3Hex)
{
    private const string SimulatorKeyProvider =
        "{\"name\":\"kms\",\"id\":\"3059301306072a8648ce3d020106082a8648ce3d0301070342000419b2457dd9b8aa6446d980f136fff7812ecd6c77740eeb0e28b10d56c0c00028a5b6e59dcea307d583bd1f70769e9c116df2bcfb1758a95d8613e7de1c8482c0\"}";

    private const string ProductionKeyProvider =
        "{\"name\":\"kms\",\"id\":\"3059301306072a8648ce3d020106082a8648ce3d030107034200048844eb42ccdf8c52fd4f174f362fcb9bbd19c45fd48f1edec2d8f1ca23536ec1a74021b4cee610c074f8294d431b2b7fee2c39e5333fdaf0a4522d43fb159d9f\"}";

    /// <summary>dstack v0.5.5 sdk/simulator/eventlog.json, RTMR3 part (dstack.md §6.1).</summary>
    public static DstackEventLogVector Simulator { get; } = new(
        "dstack.md §6.1 (dstack v0.5.5 sdk/simulator/eventlog.json + quote.hex)",
        "simulator",
        [
            new("system-preparing", "", "f9974020ef507068183313d0ca808e0d1ca9b2d1ad0c61f5784e7157c362c06536f5ddacdad4451693f48fcc72fff624"),
            new("app-id", "ea549f02e1a25fabd1cb788380e033ec5461b2ff", "b01c7a2e6a406ae9cd5aa81451e4614e112b8f404df12e6ef506962c1a5279a94dc58da0923c4b7db89e26da9e538302"),
            new("compose-hash", "ea549f02e1a25fabd1cb788380e033ec5461b2ffe4328d753642cf035452e48b", "9c1fecc259af1e8494484a391bdef460cb74d677c76dd114b1e9e7fac343da4e773b2b0eb8df7a6fc0dd8ba5edbb30e1"),
            new("instance-id", "59df8036b824b0aac54f8998b9e1fb2a0cfc5d3a", "a8dc2d07060d74dfba7b4942411bcf93ae198da42d172860f0c6dcb9207198a2c857a4b0e57bb019d68be072074a2d01"),
            new("boot-mr-done", "", "98bd7e6bd3952720b65027fd494834045d06b4a714bf737a06b874638b3ea00ff402f7f583e3e3b05e921c8570433ac6"),
            new("key-provider", Convert.ToHexStringLower(Encoding.UTF8.GetBytes(SimulatorKeyProvider)), "cc0ae424f1335f3059359f712f72f0aebee7a01fba2e4d527f3ea9299bac808a3ea1f8ae2982875fb3c9697fd6f4a5f2"),
            new("system-ready", "", "1a76b2a80a0be71eae59f80945d876351a7a3fb8e9fd1ff1cede5734aa84ea11fd72b4edfbb6f04e5a85edd114c751bd"),
        ],
        "6d1a3da994b6611ee602f25f07b41671ece90cd2898689f1ad4448fdf1155e3668736cca4499659caae2d8044070de57");

    /// <summary>Production KMS-mode CVM, October 2025 (dstack.md §6.6).</summary>
    public static DstackEventLogVector Production { get; } = new(
        "dstack.md §6.6 (pml vllm-proxy/tests/app/sample_dstack_data.py)",
        "production",
        [
            new("system-preparing", "", "f9974020ef507068183313d0ca808e0d1ca9b2d1ad0c61f5784e7157c362c06536f5ddacdad4451693f48fcc72fff624"),
            new("app-id", "ab84a54bdaf082be00ea40e8e37bdeb5c15c58de", "4634ac19f31bb81ad5e19b2dd9fd0b71d7a9b3dfc8f292f2b82f58761f3d194d6db34c10f77939398d55cde65d1b4236"),
            new("compose-hash", "62dd36d22b7d704aaa4d598226801ed4e6a3bfd17dde762b2efd9876768be800", "cd1dbdcc57b0f7b52ab935587885d63eeaa1fc266f7ca186c782893cdaed3588a7737b66a991729240e0ca1c3b5997c6"),
            new("instance-id", "eb6b019edd1f076327ed9466d0fc5df5a96e80b0", "2c676f10b7a0d79f3d0b8d172446ba34dff540cebafb0fb9a72a8771e4b17eb737a52b77c9c3d7d252619416289030aa"),
            new("boot-mr-done", "", "98bd7e6bd3952720b65027fd494834045d06b4a714bf737a06b874638b3ea00ff402f7f583e3e3b05e921c8570433ac6"),
            new("mr-kms", "c658b8d8b701b1ae17ddd64a6a9c2ac8d66cc41021629062c25d3be41b89afed", "f398d6ce68214f264ca3ba4858b0e3b4837afb60ea7a52dead17bdc4d27a457c716bb20128fb8bcf520ce315c5d47ead"),
            new("os-image-hash", "6809f73ca56b2dfba9918bdb9709608f30284af4fbb50e707e3270a0436f1657", "288d968f9a2c7587595f672564d78a6bb4ad72228bb24e799c8b4f1c3a1913ac8de0a77010f4416bc4926110098e35fe"),
            new("key-provider", Convert.ToHexStringLower(Encoding.UTF8.GetBytes(ProductionKeyProvider)), "83368b43a0fc6f824f5a9220592df85fd30e2d405ecbd253a5c6354af63e6c9b41aec557c38a38e348ab87f9ac8fc68c"),
            new("system-ready", "", "1a76b2a80a0be71eae59f80945d876351a7a3fb8e9fd1ff1cede5734aa84ea11fd72b4edfbb6f04e5a85edd114c751bd"),
        ],
        "e0c3b8611824cdcc6e2687ea3a6bb3039c485441ce6ceaf21109e338aa6a430074876029c0ca4565e7d71fdaaedf56a6");

    public static TheoryData<DstackEventLogVector> All => [Simulator, Production];

    /// <summary>The events as a dstack event log would carry them (logged digest included).</summary>
    public IReadOnlyList<TdxEvent> ToEvents() =>
        Events.Select(e => new TdxEvent(3, TdxEvent.RuntimeEventType, Convert.FromHexString(e.DigestHex), e.Name, e.Payload)).ToList();

    public override string ToString() => Name;
}
