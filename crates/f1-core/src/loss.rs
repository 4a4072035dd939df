//! Causal-LM loss on labelled positions only: the hidden state at position t predicts token
//! t+1, positions whose label is -100 (prompt, padding) are skipped before the LM head, so the
//! (tokens x vocab) logits matrix is only built where it counts. Returns sums, not means, so a
//! caller accumulating gradients over micro-batches can divide by the token count of the whole
//! optimizer step (what transformers does with `num_items_in_batch`).

use tch::{Kind, Tensor};

use crate::llama::Llama;

/// Label value that excludes a position from the loss (PyTorch's `ignore_index`).
pub const IGNORE: i64 = -100;

/// Loss pieces of one batch.
#[derive(Debug)]
pub struct LossParts {
    /// Sum of token cross-entropies (a scalar tensor; differentiable).
    pub sum: Tensor,
    /// Labelled tokens.
    pub tokens: i64,
    /// Labelled tokens the model ranks first (for mean token accuracy).
    pub correct: i64,
}

/// How the rows of a batch are laid out.
#[derive(Debug, Clone, Copy)]
pub enum Layout<'a> {
    /// One example per row, right-padded; the (B, T) mask marks real tokens.
    Padded(&'a Tensor),
    /// Several examples per row: (B, T) segment ids and per-example position ids
    /// (see [`Llama::forward_hidden_packed`]).
    Packed(&'a Tensor, &'a Tensor),
}

/// Loss of `model` on `input_ids` (B, T) laid out as `layout`, with `labels` (B, T), where
/// `labels[b, t]` is the token expected at position t (usually `input_ids[b, t]`) or
/// [`IGNORE`]. The prediction for position t comes from position t-1.
pub fn masked_lm_loss(model: &Llama, input_ids: &Tensor, layout: Layout, labels: &Tensor) -> LossParts {
    let hidden = match layout {
        Layout::Padded(mask) => model.forward_hidden(input_ids, Some(mask), None),
        Layout::Packed(segments, positions) => model.forward_hidden_packed(input_ids, segments, positions),
    }; // (B, T, C)
    let (b, t, c) = hidden.size3().expect("hidden is (B, T, C)");
    // Shift: hidden[:, :-1] predicts labels[:, 1:].
    let h = hidden.narrow(1, 0, t - 1).reshape([b * (t - 1), c]);
    let y = labels.narrow(1, 1, t - 1).reshape([b * (t - 1)]).to_device(h.device());
    let keep = y.ne(IGNORE).nonzero().squeeze_dim(1);
    let tokens = keep.size()[0];
    if tokens == 0 {
        return LossParts { sum: (h.sum(Kind::Float) * 0.0), tokens: 0, correct: 0 };
    }
    let logits = model.logits(&h.index_select(0, &keep)).to_kind(Kind::Float); // (N, V)
    let target = y.index_select(0, &keep);
    let sum = logits.cross_entropy_loss::<Tensor>(&target, None, tch::Reduction::Sum, IGNORE, 0.0);
    let correct = tch::no_grad(|| logits.argmax(-1, false).eq_tensor(&target).sum(Kind::Int64).int64_value(&[]));
    LossParts { sum, tokens, correct }
}
