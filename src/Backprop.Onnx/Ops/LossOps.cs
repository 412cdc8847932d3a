namespace Backprop.Onnx.Ops;

/// <summary>Op family: see the registry in <see cref="OpRegistry"/>.</summary>
internal static partial class LossOps
{
    public static void Register(List<OpDefinition> ops)
    {
    }
}
