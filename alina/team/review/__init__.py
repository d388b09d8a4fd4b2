"""The optimizer's critic loop: review an agent, propose candidate prompts (and models), promote
only what the gate finds significantly better on the held-out cases.

One review of one agent (:func:`review_agent`):

1. **Plan and budget.** The cases (``optimizer.tune_cases`` / ``heldout_cases`` caps), the
   candidates (a critic rewrite, ``optimizer.fewshot_candidates`` few-shot edits, a ladder rung)
   and the model calls, tokens and wall time they take are projected first; over a cap of
   ``optimizer.budget`` the review is shrunk (fewer few-shot edits, no ladder step, fewer tuning
   cases, no critic) and refused when even that does not fit.
2. **Failures.** The agent (its prompt in use, its model) runs the tuning cases; the ones below a
   perfect score, with the checks that failed (:func:`~alina.meta_prompts.evals.score_parts`),
   are what the critic sees. It never sees a held-out case.
3. **Candidates.** The critic model (``optimizer.critic``; default the largest local rung) gets the
   meta-prompt ``critic.yaml`` with the failures and the rejected edits (hash + summary) and
   answers with JSON (fenced text is accepted; a cut-off or garbled reply is rejected with the
   reason). Few-shot edits add or swap examples drawn from the tuning cases' reference outputs
   (DSPy-bootstrap style). Every candidate goes through
   :meth:`~alina.memory_store.prompts.PromptVersions.add_candidate`, which stores it and refuses
   an identical, truncated, protected-changing or instruction-override text before evaluation.
4. **Gate.** Each sound candidate runs the held-out cases (``optimizer.trials`` times each) on
   the agent's model; :func:`~alina.meta_prompts.gate.decide` compares its per-case scores with
   the prompt in use (``optimizer.alpha``, ``optimizer.min_gain``). The best candidate that passes
   is promoted, every other one rejected; each keeps its scores, p-value and reason.
5. **Ladder.** After ``optimizer.max_rewrites`` rejected candidates since the agent's last change
   the next model of ``agents.NAME.ladder`` runs the held-out cases with the prompt in use and is
   switched to if the gate passes; an agent above its ladder's first rung moves back down when the
   cheaper model passes (mean ≥ ``optimizer.threshold`` and the dearer one not significantly
   better). The choice is stored (``agent_models``) and runs use it.

:func:`review_all` is the periodic entry point (``alina optimize review``; ``alina serve`` hourly):
it writes ``optimizer.threshold`` for the queue trigger, rolls back promoted versions that do
worse live (:func:`check_rollbacks`), and reviews the agents with a queued review or a rolling
score below the threshold (or the one named).
"""

from __future__ import annotations

from alina.team.review._candidates import EXAMPLES_HEADER, Candidate, candidate_from_reply, fewshot_candidates
from alina.team.review._cases import Clients, run_case
from alina.team.review._ladder import default_critic, ladder_of
from alina.team.review._loop import check_rollbacks, review_agent, review_all
from alina.team.review._parse import (
    CRITIC_FILE,
    CriticOutputError,
    CriticReply,
    critic_messages,
    parse_critic,
)
from alina.team.review._report import (
    AgentReview,
    Budget,
    CandidateOutcome,
    Origin,
    Progress,
    ReviewError,
    ReviewReport,
    Rollback,
)

__all__ = [
    "CRITIC_FILE",
    "EXAMPLES_HEADER",
    "AgentReview",
    "Budget",
    "Candidate",
    "CandidateOutcome",
    "Clients",
    "CriticOutputError",
    "CriticReply",
    "Origin",
    "Progress",
    "ReviewError",
    "ReviewReport",
    "Rollback",
    "candidate_from_reply",
    "check_rollbacks",
    "critic_messages",
    "default_critic",
    "fewshot_candidates",
    "ladder_of",
    "parse_critic",
    "review_agent",
    "review_all",
    "run_case",
]
