"""ALINA's speaker selection: rules, then lexical and semantic similarity, then the model only
when unsure.

The router reads a conversation (:class:`Turn` list: the user's messages and the agents'
turns) and names who acts next. In order, the first that applies decides:

1. **tool** — the last item is a tool call or tool result: it returns to the agent that made
   the call. (AutoGen runs a tool round inside the agent's turn, so inside the team this never
   fires; it keeps snapshots from other sources honest.)
2. **safe** — in safe mode an order-placing task never reaches an agent with side effects
   (the trader); its other steps still run and ALINA reports that placing orders is disabled.
3. **mention** — ``@agent`` in the latest user message (case-insensitive, plural tolerant)
   wins; several mentions speak in the order written.
4. **rules** — a plan from the latest user message: it is cut into clauses ("and", "then",
   commas, sentences; "after"/"before" reorder); a clause that matches an agent's ``claims``
   (cues in its prompt file: asking to change an agent's prompt, model or settings is the
   optimizer's; asking for the system's own figures — tokens, latency, error rates, caches,
   time spent — is the monitor's) goes to that agent alone, even when it names another agent;
   any other clause names its specialists by the keywords of their prompt files; the optimizer
   goes after whoever must first produce what it scores; ``if healthy``/``if it's a downtrend``
   makes the following steps depend on the monitor's or trader's report, and the agent whose
   report decides the condition is added first when the task does not ask for it.

   The roles are data in the prompt files, not names in this code: ``reports: [health]``
   (whose report decides a domain's conditions), ``scores_others: true`` (speaks after the
   reporting agents), ``side_effects: true`` (kept from order tasks in safe mode).
5. **lexical** / **semantic** — a clause without keywords is scored against each agent's
   description and ``examples``: BM25 over word stems first, then, when that is not confident,
   the cosine similarity of sentence embeddings (MiniLM, :mod:`alina.team._similarity`); a
   confident best match joins the plan. Without the embedding model (not installed, failed to
   load: logged once) only the lexical score is used.
6. **follow_up** — a short or anaphoric follow-up ("and over the last week?", "again") reuses
   the specialists of the previous request.
7. **done** — every step of the plan has answered (or none is needed: greetings, thanks,
   concept questions, questions about ALINA's own answer): ALINA speaks, which ends the run.
8. **semantic** — a request nothing above decided goes to the specialist closest in meaning
   (embeddings of the latest user message against the specialists' descriptions and examples)
   when that match is confident.
9. **model** — nothing above is confident: ALINA's model picks among the likeliest agents
   (best semantic, else lexical, match first), grammar-constrained to an enum of their names
   (``json_output``), the reply matched case-insensitively; **fallback** — the model failed:
   the best guess of the similarity stage.

Every decision records method, confidence, candidates and a reason, and is counted in the
``alina_routing_*`` metrics. The logic works on plain :class:`Turn` values, so ``alina route``
and the team use the same code; only :func:`turns_from_messages` knows AutoGen's types.

The modules: ``_types`` (turns, profiles, decisions), ``_lexical`` (stems, BM25, name matching),
``_plans`` (clauses, conditions, cue words), ``_reports`` (report states), ``_router`` (the
router), ``_ask`` (the model step) and ``_snapshots`` (conversations as turns, profiles from
prompt files).
"""

from alina.team._routing._lexical import (
    LexicalScorer,
    match_name,
    stem,
    terms,
    words,
)
from alina.team._routing._plans import (
    Condition,
    Plan,
    Step,
)
from alina.team._routing._reports import report_states
from alina.team._routing._router import Router
from alina.team._routing._snapshots import (
    SELECTOR_PROMPT,
    parse_snapshot,
    profiles_from_prompts,
    turns_from_messages,
)
from alina.team._routing._types import (
    AGENT_PLACEHOLDER,
    LEXICAL_THRESHOLD,
    MODES,
    ORCHESTRATOR,
    REPORT_DOMAINS,
    SEMANTIC_DECIDE_THRESHOLD,
    SEMANTIC_THRESHOLD,
    TURN_KINDS,
    AgentProfile,
    Method,
    Mode,
    RouteDecision,
    Skip,
    SnapshotError,
    Turn,
    TurnKind,
    reporters_of,
)

__all__ = [
    "AGENT_PLACEHOLDER",
    "AgentProfile",
    "Condition",
    "LEXICAL_THRESHOLD",
    "LexicalScorer",
    "MODES",
    "Method",
    "Mode",
    "ORCHESTRATOR",
    "Plan",
    "REPORT_DOMAINS",
    "RouteDecision",
    "Router",
    "SELECTOR_PROMPT",
    "SEMANTIC_DECIDE_THRESHOLD",
    "SEMANTIC_THRESHOLD",
    "Skip",
    "SnapshotError",
    "Step",
    "TURN_KINDS",
    "Turn",
    "TurnKind",
    "match_name",
    "parse_snapshot",
    "profiles_from_prompts",
    "reporters_of",
    "report_states",
    "stem",
    "terms",
    "turns_from_messages",
    "words",
]
