namespace Backprop.Onnx.IR;

/// <summary>Base type of every error Backprop.Onnx raises on purpose; catch this to handle them all.</summary>
public class BackpropOnnxException : Exception
{
    /// <summary>Creates the exception with a one-line message.</summary>
    public BackpropOnnxException(string message) : base(message) { }

    /// <summary>Creates the exception with a one-line message and the error that caused it.</summary>
    public BackpropOnnxException(string message, Exception? inner) : base(message, inner) { }
}

/// <summary>
/// A model file or model bytes that violate the ONNX IR specification or cannot be read safely: truncated or non-protobuf
/// bytes, a cycle, an input nothing produces, duplicate value names, an unknown data type, a tensor whose data does not
/// match its shape and type, or external data outside the model's folder or past the end of its file.
/// The message names the file, then the node or tensor, then the reason.
/// </summary>
public sealed class ModelFormatException : BackpropOnnxException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="source">The model file (or "&lt;bytes&gt;").</param>
    /// <param name="location">The node, tensor or field at fault; may be empty.</param>
    /// <param name="reason">What is wrong.</param>
    /// <param name="inner">The underlying error, if any.</param>
    public ModelFormatException(string source, string location, string reason, Exception? inner = null)
        : base(string.IsNullOrEmpty(location) ? $"{source}: {reason}" : $"{source}: {location}: {reason}", inner)
    {
        Source = source;
        Location = location;
        Reason = reason;
    }

    /// <summary>The model file the error was found in.</summary>
    public new string Source { get; }

    /// <summary>The node, tensor or field at fault; empty when the error concerns the whole file.</summary>
    public string Location { get; }

    /// <summary>What is wrong, without the file and location.</summary>
    public string Reason { get; }
}

/// <summary>
/// An operator, operator-set version, attribute value or element type that Backprop.Onnx does not implement.
/// Raised when an execution plan or a gradient graph is built, never as a wrong answer at run time.
/// </summary>
public sealed class UnsupportedOperatorException : BackpropOnnxException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="opType">ONNX op type, e.g. <c>Conv</c>.</param>
    /// <param name="domain">Operator-set domain; empty for the default <c>ai.onnx</c>.</param>
    /// <param name="opsetVersion">The model's version of that domain.</param>
    /// <param name="nodeName">The node's name (may be empty).</param>
    /// <param name="what">What is missing.</param>
    public UnsupportedOperatorException(string opType, string domain, long opsetVersion, string nodeName, string what)
        : base($"{(string.IsNullOrEmpty(domain) ? "" : domain + "::")}{opType} (opset {opsetVersion}) in node '{nodeName}': {what}")
    {
        OpType = opType;
        Domain = domain;
        OpsetVersion = opsetVersion;
        NodeName = nodeName;
    }

    /// <summary>ONNX op type.</summary>
    public string OpType { get; }

    /// <summary>Operator-set domain; empty for the default domain.</summary>
    public string Domain { get; }

    /// <summary>The version of the op's domain the model imports.</summary>
    public long OpsetVersion { get; }

    /// <summary>The node's name.</summary>
    public string NodeName { get; }
}

/// <summary>
/// Inputs that do not fit the graph or an operator at run time: a shape mismatch, a wrong element type, a missing
/// required input, an index out of range. The message names the node (op type and name) and the tensors involved.
/// </summary>
public sealed class InvalidInputException : BackpropOnnxException
{
    /// <summary>Creates the exception with a one-line message naming the node and the fault.</summary>
    public InvalidInputException(string message) : base(message) { }
}
