"""PPO's losses and advantage estimation as small pure tensor functions (shapes: B sequences, T response tokens).

Masks are 1.0 on response tokens the policy chose and 0.0 on padding; every mean is over masked positions.
"""

from __future__ import annotations


def masked_mean(x, mask):
    """Mean of `x` over positions where `mask` is 1."""
    return (x * mask).sum() / mask.sum().clamp(min=1)


def masked_whiten(x, mask):
    """(x - mean) / std over the masked positions; masked-out positions become 0."""
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    return (x - mean) * (var + 1e-8).rsqrt() * mask


def kl_shaped_rewards(scores, logp, ref_logp, mask, kl_coef: float):
    """Per-token rewards: -kl_coef * (log pi - log pi_ref) at every token, plus the score at the last token.

    scores (B,), logp/ref_logp/mask (B, T) -> rewards (B, T), kl (B, T); the mask is contiguous from 0.
    """
    kl = (logp - ref_logp) * mask  # (B, T) sample estimate of KL(pi || pi_ref) per token
    rewards = -kl_coef * kl
    last = (mask.sum(1).long() - 1).clamp(min=0)  # (B,)
    rewards[range(len(last)), last] += scores
    return rewards, kl


def leave_one_out_baseline(scores, groups: list):
    """Each score minus the mean of the other scores of its group (RLOO; Ahmadian et al. 2024): (B,) -> (B,).

    `groups` names each score's group (e.g. its prompt); a score alone in its group keeps its value.
    """
    import torch

    ids = {g: i for i, g in enumerate(dict.fromkeys(groups))}
    index = torch.tensor([ids[g] for g in groups], device=scores.device)
    sums = torch.zeros(len(ids), device=scores.device).index_add(0, index, scores)
    counts = torch.zeros(len(ids), device=scores.device).index_add(0, index, torch.ones_like(scores))
    others = (counts[index] - 1).clamp(min=1)
    baseline = (sums[index] - scores) / others
    return torch.where(counts[index] > 1, scores - baseline, scores)


def gae(rewards, values, mask, gamma: float, lam: float):
    """Generalised advantage estimation (Schulman et al. 2016, eq. 16): returns (advantages, returns), (B, T)."""
    import torch

    values = values * mask
    adv, last = torch.zeros_like(rewards), torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.shape[1])):
        nxt_mask = mask[:, t + 1] if t + 1 < rewards.shape[1] else torch.zeros_like(last)
        nxt_value = values[:, t + 1] if t + 1 < rewards.shape[1] else torch.zeros_like(last)
        delta = rewards[:, t] + gamma * nxt_value * nxt_mask - values[:, t]
        last = delta + gamma * lam * last * nxt_mask
        adv[:, t] = last
    adv = adv * mask
    return adv, adv + values


def policy_loss(logp, old_logp, adv, mask, clip: float):
    """Clipped surrogate: mean of max(-A r, -A clip(r, 1-eps, 1+eps)), r = pi/pi_old (PPO paper, eq. 7)."""
    import torch

    ratio = torch.exp(logp - old_logp)  # (B, T)
    loss = masked_mean(torch.max(-adv * ratio, -adv * ratio.clamp(1 - clip, 1 + clip)), mask)
    clipfrac = masked_mean(((ratio - 1).abs() > clip).float(), mask)
    approx_kl = masked_mean(0.5 * (logp - old_logp) ** 2, mask)
    return loss, {"clip_frac": clipfrac.item(), "approx_kl": approx_kl.item()}


def value_loss(values, old_values, returns, mask, clip: float):
    """Clipped value loss: 0.5 * mean of max((V - R)^2, (V_old + clip(V - V_old) - R)^2)."""
    import torch

    clipped = old_values + (values - old_values).clamp(-clip, clip)
    loss = 0.5 * masked_mean(torch.max((values - returns) ** 2, (clipped - returns) ** 2), mask)
    return loss, {"value_clip_frac": masked_mean(((values - old_values).abs() > clip).float(), mask).item()}


def token_logprobs(logits, tokens):
    """log p(token) under `logits`: (B, T, V), (B, T) -> (B, T)."""
    import torch

    return torch.log_softmax(logits.float(), -1).gather(-1, tokens[..., None])[..., 0]


def entropy(logits):
    """Entropy of the next-token distribution at each position: (B, T, V) -> (B, T)."""
    import torch

    logp = torch.log_softmax(logits.float(), -1)
    return -(logp.exp() * logp).sum(-1)
