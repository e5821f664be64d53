//! Helpers for the custom autodiff operations on flex tensors ([`crate::kernels::cpu_conv_grad`],
//! [`crate::kernels::cpu_norm_grad`]): operands as contiguous values plus graph nodes, and the
//! registration of an operation's backward step.

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, NodeGuard, Ops, OpsKind};
use burn::backend::{Autodiff, Flex};
use burn::tensor::{DType, Tensor, TensorData};
use burn_flex::FlexTensor;

/// The autodiff flex backend (without gradient checkpointing).
pub(crate) type Ad = Autodiff<Flex>;

/// A flex `f32` operand's contiguous values and, for an autodiff tensor, its graph node.
pub(crate) fn operand<const D: usize>(t: &Tensor<D>) -> Option<(FlexTensor, Option<NodeGuard>)> {
    if t.dtype() != DType::F32 {
        return None;
    }
    if t.is_autodiff() {
        let tracked = t.clone().try_into_primitive::<Ad>().ok()?;
        Some((contiguous(tracked.primitive())?, Some(tracked.node())))
    } else {
        Some((contiguous(&t.clone().try_into_primitive::<Flex>().ok()?)?, None))
    }
}

/// Registers the operation over its `N` tracked operands (when any needs a gradient) and wraps
/// its output.
pub(crate) fn record<O, const N: usize>(op: O, nodes: Vec<NodeGuard>, state: O::State, out: FlexTensor) -> Tensor<4>
where
    O: Backward<Flex, N>,
{
    let nodes: [NodeGuard; N] = nodes.try_into().unwrap_or_else(|_| unreachable!("{N} tracked operands"));
    let prepared = O::prepare::<NoCheckpointing>(op, nodes);
    let result = match prepared.compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish(state, out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    };
    Tensor::from_primitive::<Ad>(result)
}

/// What an operation's backward step starts from: the gradient of its output (taken from
/// `grads`) as contiguous `f32` values, its saved state, and each parent's graph id (`None` for
/// an operand that needs no gradient). `op` names the operation in the panic message.
pub(crate) fn unpack<S, const N: usize>(ops: Ops<S, N>, grads: &mut Gradients, op: &str) -> (FlexTensor, S, [Option<NodeId>; N]) {
    let grad = grads.consume::<Flex>(&ops.node);
    let grad = contiguous(&grad).unwrap_or_else(|| panic!("{op} backward: f32 gradient"));
    (grad, ops.state, ops.parents.map(|parent| parent.map(|node| node.id)))
}

/// The contiguous form of a flex `f32` primitive.
pub(crate) fn contiguous(t: &FlexTensor) -> Option<FlexTensor> {
    if t.dtype() != DType::F32 {
        return None;
    }
    Some(if t.is_contiguous() && t.layout().start_offset() == 0 { t.clone() } else { t.to_contiguous() })
}

/// The tracked operands among `guards`, in order, and for each operand its parent index.
pub(crate) fn parents<const K: usize>(guards: [Option<NodeGuard>; K]) -> (Vec<NodeGuard>, [Option<usize>; K]) {
    let mut nodes = Vec::with_capacity(K);
    let slots = guards.map(|node| {
        node.map(|node| {
            nodes.push(node);
            nodes.len() - 1
        })
    });
    (nodes, slots)
}

/// A flex tensor holding `values`.
pub(crate) fn flex<const D: usize>(values: Vec<f32>, dims: [usize; D]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, dims))
}
