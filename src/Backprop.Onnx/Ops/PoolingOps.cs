namespace Backprop.Onnx.Ops;

/// <summary>Op family: see the registry in <see cref="OpRegistry"/>.</summary>
internal static partial class PoolingOps
{
    public static void Register(List<OpDefinition> ops)
    {
    }
}
