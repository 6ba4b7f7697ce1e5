"""Regenerate the PDF documents of the bundled sample corpus (evals/corpus/).

The Markdown and HTML documents in evals/corpus/ are static files; only the
PDFs are generated here, from the texts defined below.  Run:

    python evals/build_corpus.py

Output is deterministic: document metadata uses fixed dates and the PDF file
identifier is not regenerated, so repeated runs produce identical bytes.

Layout is done here with the Base-14 Helvetica fonts: lines wrap only at
spaces (no hyphenation, no word is ever split), paragraphs are never split
across pages, and text is drawn in reading order, so ``page.get_text()``
returns every sentence intact.  Keep the texts plain ASCII (asserted).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pymupdf

CORPUS_DIR = Path(__file__).resolve().parent / "corpus"

FIXED_DATE = "D:20240601120000Z"
AUTHOR = "Agent Reliability Field Guide"

DOCUMENTS: list[dict[str, Any]] = [
    {
        "filename": "durable-execution-fundamentals.pdf",
        "title": "Durable Execution Fundamentals for Agent Workflows",
        "subtitle": "Reliability Engineering Notes, chapter on persistent progress",
        "sections": [
            (
                "What durable execution means",
                [
                    "Durable execution is a programming model in which the progress of a long running function is persisted so that it can resume after any crash, restart, or deployment.",
                    "The developer writes ordinary sequential code, and the runtime records each completed step so that finished work is never repeated after a failure.",
                    "For agent systems, durable execution turns a fragile loop of model calls and tool calls into a run that can survive infrastructure failures lasting minutes or days.",
                    "It also provides a natural place to pause for human input without holding a process in memory for the whole wait.",
                ],
            ),
            (
                "Workflows and activities",
                [
                    "Durable runtimes split code into two kinds of functions, called workflows and activities.",
                    "A workflow is deterministic orchestration code that decides what to do next, while an activity is a unit of work that interacts with the outside world.",
                    "Model calls, web requests, database writes, and file operations all belong in activities, because their results cannot be reproduced by simply running the code again.",
                    "The runtime records each activity result in the event history, so a resumed workflow reads the stored result instead of calling the model a second time.",
                    "Because the stored result is reused, a resumed run also avoids paying twice for the same model tokens.",
                ],
            ),
            (
                "Delivery guarantees",
                [
                    "Workflow logic in a durable runtime effectively executes exactly once, because replay reconstructs state without repeating completed steps.",
                    "Activities are executed at least once, since a worker can crash after performing the work but before reporting the result to the runtime.",
                    "This asymmetry is why activities with side effects must be idempotent, usually by passing an idempotency key derived from the workflow identifier and the activity name.",
                    "The runtime retries failed activities automatically using the retry policy attached to each activity, so retry logic does not need to be rewritten inside every tool.",
                ],
            ),
            (
                "Checkpoint granularity",
                [
                    "Choosing how much work to place in one activity is a tradeoff between bookkeeping overhead and the amount of work lost when a step fails.",
                    "Very small activities add a history event and a round trip for every operation, while very large activities repeat a lot of work when they fail near the end.",
                    "A practical rule in the reference platform is that one activity should correspond to one external call, such as one model completion or one tool invocation.",
                    "Agent loops are modeled as a workflow that calls one planning activity and then one activity per chosen tool on each iteration of the loop.",
                ],
            ),
            (
                "Comparing approaches",
                [
                    "Teams often start with a plain queue and a database table of run states, which works until they need timers, cancellation, and human waits.",
                    "Checkpointing frameworks that save the full agent state after every step are simpler to adopt but make partial steps and side effects harder to reason about.",
                    "Event sourced workflow engines carry the steepest learning curve, yet they give the strongest guarantees for runs that outlive a single process.",
                    "The reference platform chose an event sourced engine after measuring that 3 percent of multihour agent runs were interrupted by routine deployments.",
                    "After the migration, interrupted runs resumed from their last completed activity, and the share of runs that had to be restarted by hand fell to nearly zero.",
                ],
            ),
        ],
    },
    {
        "filename": "evaluating-agent-systems.pdf",
        "title": "Evaluating Agent Systems Beyond Single Turn Accuracy",
        "subtitle": "Reliability Engineering Notes, chapter on measurement",
        "sections": [
            (
                "Outcome and trajectory evaluation",
                [
                    "Outcome evaluation checks whether the agent reached a correct final state, such as the right file contents, database rows, or answer text.",
                    "Trajectory evaluation examines the sequence of steps the agent took, including which tools it called, with which arguments, and in which order.",
                    "Outcome checks are more robust because many different trajectories can reach the same correct result.",
                    "Trajectory checks are still valuable for catching unsafe or wasteful behavior, such as calling a deletion tool that the task never required.",
                    "The reference harness records a full trace for every evaluation run, so that a failed task can be inspected step by step instead of being reduced to a single score.",
                ],
            ),
            (
                "Measuring reliability with pass^k",
                [
                    "Agents are stochastic, so a single run of each task tells little about how consistently the agent succeeds.",
                    "The metric pass@k reports the probability that at least one of k attempts succeeds, which rewards an agent that is only occasionally right.",
                    "The metric pass^k reports the probability that all k attempts succeed, which is the more relevant number when users depend on every run.",
                    "An agent with a 90 percent success rate on each run has a pass^8 of only about 43 percent, which shows how quickly inconsistency compounds.",
                    "The reference evaluation runs every task 8 times and reports both pass@1 and pass^8 for each release candidate.",
                ],
            ),
            (
                "Building the task set",
                [
                    "The reference golden set contains 240 tasks drawn from real user requests, each with a verifiable success condition written by a domain expert.",
                    "Tasks are split into easy, medium, and hard tiers, and the hard tier is deliberately sized so that the current agent fails about half of those tasks.",
                    "Every task runs in a freshly reset sandbox, because leftover state from a previous attempt can make a task trivially pass or impossibly fail.",
                    "A held out set of 60 tasks is never used during prompt development, which protects the headline number from overfitting.",
                    "New tasks are added whenever a production incident reveals a failure that the existing set did not cover.",
                ],
            ),
            (
                "LLM judges and calibration",
                [
                    "When success cannot be checked by code, an LLM judge grades the output against a written rubric.",
                    "A judge must be calibrated against human labels before its scores are trusted, and the reference threshold is a Cohen's kappa of at least 0.7 on a sample of 200 labeled outputs.",
                    "Judges show known biases, including a preference for longer answers and for the first of two options presented, so pairwise comparisons are run in both orders.",
                    "The judge model should differ from the model being evaluated whenever possible to reduce self preference bias.",
                ],
            ),
            (
                "Regression gates",
                [
                    "Evaluation results gate every release through a comparison with the previous production version on the same task set.",
                    "A release is blocked if pass@1 drops by more than 3 percentage points or if cost per successful task rises by more than 20 percent.",
                    "Because success rates on a few hundred tasks are noisy, the gate uses a paired bootstrap with 1,000 resamples to decide whether a difference is real.",
                    "Every blocked release produces a short report listing the tasks that flipped from pass to fail, which is usually the fastest route to the underlying cause.",
                ],
            ),
        ],
    },
    {
        "filename": "chaos-testing-agent-pipelines.pdf",
        "title": "Chaos Testing for Agent Pipelines",
        "subtitle": "Reliability Engineering Notes, chapter on fault injection",
        "sections": [
            (
                "Principles of chaos experiments",
                [
                    "Chaos testing deliberately injects failures into a system to verify that it behaves acceptably when its dependencies misbehave.",
                    "Each experiment begins with a steady state hypothesis, which is a measurable statement about normal behavior that should still hold while the fault is active.",
                    "A typical hypothesis for an agent pipeline states that task success rate stays above 95 percent while one tool returns errors.",
                    "The experiment then introduces a single fault, observes the metrics, and either confirms the hypothesis or reveals a weakness to fix.",
                    "Experiments are kept small and reversible, because the goal is learning about the system rather than causing an outage.",
                    "Chaos testing complements load testing and unit testing, because it examines how components behave together when one of them fails in a realistic way.",
                ],
            ),
            (
                "Faults worth injecting",
                [
                    "Agent pipelines have characteristic failure modes that ordinary web services rarely see.",
                    "The reference fault catalog includes added latency of 2 seconds on model calls, an error rate of 5 percent on tool calls, truncated streaming responses, malformed JSON in tool outputs, and expired credentials.",
                    "It also includes model specific faults, such as a completion that hits the max_tokens limit in the middle of a sentence or a response that ignores the requested output schema.",
                    "Injecting a rate limit response with a long Retry After value tests whether backoff, circuit breakers, and deadlines interact correctly.",
                    "Each fault is tagged with the component it targets and the hypothesis it tests, so that coverage gaps in the catalog are easy to see.",
                ],
            ),
            (
                "Controlling the blast radius",
                [
                    "The blast radius is the share of traffic or users that an experiment can affect while it runs.",
                    "Experiments begin in staging, and production experiments start at 1 percent of traffic before expanding in steps.",
                    "Every experiment defines abort conditions in advance, and the reference tooling halts automatically if the error budget burn rate exceeds 10 times the normal rate.",
                    "A named experiment owner must be present and able to stop the experiment manually for its full duration.",
                    "Experiments are never scheduled during peak traffic hours, product launches, or periods when an unrelated incident is already open.",
                ],
            ),
            (
                "Game days",
                [
                    "A game day is a scheduled exercise in which a team runs a realistic failure scenario and practices its response together.",
                    "The reference program holds game days once per quarter for each agent product, rotating through scenarios such as a full model provider outage or a corrupted vector index.",
                    "Findings are recorded as tracked action items with owners, and the next game day begins by verifying that earlier items were fixed.",
                    "Participants rotate between the roles of incident commander, operator, and observer, so that knowledge of the runbooks spreads across the whole team.",
                ],
            ),
            (
                "Automating experiments",
                [
                    "Mature teams run a small set of chaos experiments continuously in staging as part of the deployment pipeline.",
                    "A fault injection proxy placed between agents and their dependencies makes it possible to add faults without changing application code.",
                    "Results are compared with the steady state hypothesis automatically, and a failed experiment blocks promotion to production just like a failed unit test.",
                    "Over time the automated suite becomes a living record of every failure mode the team has learned to survive.",
                ],
            ),
        ],
    },
    {
        "filename": "cost-control-for-llm-workloads.pdf",
        "title": "Cost Control for LLM Agent Workloads",
        "subtitle": "Reliability Engineering Notes, chapter on spending",
        "sections": [
            (
                "Where the money goes",
                [
                    "Agent workloads cost far more per task than single chat completions, because every step resends a growing context to the model.",
                    "In the reference platform, input tokens account for about 70 percent of model spend, since each planning step includes the conversation, tool results, and system prompt.",
                    "Output tokens are priced higher per token but are produced in much smaller quantities, and they account for about 22 percent of spend.",
                    "Retrieval, embedding, and sandbox compute together account for the remaining 8 percent of spend in a typical month.",
                    "A typical research task in the reference platform takes 14 model calls, and the final calls in a run can each carry five times the context of the first call.",
                ],
            ),
            (
                "Per run budgets",
                [
                    "Every agent run receives a cost budget at creation time, and the reference default is 0.50 US dollars per run.",
                    "The orchestrator tracks spend after every model call, and the run receives a warning in its context when 80 percent of the budget is used.",
                    "When the budget is exhausted, the run stops issuing model calls and returns its best partial result with a budget_exceeded status.",
                    "Budgets are hard limits enforced in orchestration code, because a model cannot be trusted to monitor its own spending.",
                    "Tenants can raise the budget for specific workflows, such as long document analysis, but every raise is recorded with an owner and a review date.",
                ],
            ),
            (
                "Model routing and cascades",
                [
                    "Model routing sends each step to the cheapest model that can handle it, reserving the largest model for planning and difficult reasoning.",
                    "A cascade first asks a small model and escalates to a larger model only when a verifier or a confidence check rejects the answer.",
                    "In the reference platform, routing classification and extraction steps to a small model cut total cost by 38 percent with no measurable change in task success rate.",
                    "Routing decisions must be evaluated on the golden task set, because a router that silently degrades quality saves money in the wrong way.",
                ],
            ),
            (
                "Prompt caching and context management",
                [
                    "Prompt caching lets a provider reuse the processed form of a repeated prompt prefix, and cached input tokens are typically billed at a small fraction of the normal price.",
                    "To benefit, prompts must place stable content such as the system prompt and tool definitions first and put changing content last.",
                    "Context management complements caching by summarizing old tool results and dropping stale observations instead of carrying everything forward.",
                    "The reference agent compacts its context when it exceeds 60 percent of the context window of the model it is using.",
                    "In the reference agent, moving the tool definitions ahead of the conversation history raised the prompt cache hit rate from 35 percent to 82 percent.",
                ],
            ),
            (
                "Detecting runaway spend",
                [
                    "Runaway spend usually comes from loops, such as an agent that retries the same failing tool call or reads the same document again and again.",
                    "The reference platform flags any run that calls the same tool with identical arguments more than 3 times.",
                    "Daily spend per tenant is compared with a seven day moving average, and an alert fires when spend exceeds 3 times that average.",
                    "Finance and engineering review the 20 most expensive runs together each week to find new patterns worth automating away.",
                ],
            ),
        ],
    },
    {
        "filename": "sandboxed-code-execution-for-agents.pdf",
        "title": "Sandboxed Code Execution for Agent Tools",
        "subtitle": "Reliability Engineering Notes, chapter on isolation",
        "sections": [
            (
                "Why agents need sandboxes",
                [
                    "Coding agents and data analysis agents run code that a model wrote moments earlier, and that code must be assumed to be unreviewed and possibly hostile.",
                    "A sandbox is an isolated execution environment that limits what such code can read, write, and reach over the network.",
                    "Ordinary containers share the host kernel, so a single kernel vulnerability can let code escape into the host machine.",
                    "For untrusted model generated code, the reference platform requires a stronger boundary than a plain container.",
                    "Sandboxing also protects reliability, because runaway code that fills a disk or exhausts memory damages only its own disposable environment.",
                ],
            ),
            (
                "Isolation technologies",
                [
                    "MicroVMs such as Firecracker run each sandbox with its own guest kernel and boot in roughly 125 milliseconds, which makes a fresh virtual machine per task practical.",
                    "User space kernels such as gVisor intercept system calls and implement them in a separate process, reducing the kernel surface exposed to the sandboxed code.",
                    "WebAssembly runtimes provide very fast startup and strong isolation but support only code compiled for the WebAssembly target.",
                    "The reference platform uses microVMs for general code execution and WebAssembly for small deterministic calculations.",
                    "Choosing between these technologies is a tradeoff between startup time, compatibility with existing tools, and the size of the trusted computing base.",
                ],
            ),
            (
                "Resource limits",
                [
                    "Each sandbox receives 2 virtual CPUs, 4 gibibytes of memory, and 10 gibibytes of ephemeral disk by default.",
                    "Every execution has a wall clock limit of 300 seconds, after which the sandbox is destroyed and the tool returns a timeout result to the agent.",
                    "Process counts are capped at 256 to stop fork bombs, and output returned to the model is truncated to 20,000 characters with a note saying how much was omitted.",
                    "These limits are deliberately generous for analysis work and deliberately strict for anything that could run unattended.",
                ],
            ),
            (
                "Network and filesystem policy",
                [
                    "Sandboxes start with all outbound network access denied, and a task may enable access only to an allowlist of package mirrors and approved APIs.",
                    "The sandbox never receives long lived credentials, and any token it needs is scoped to a single task and expires within 15 minutes.",
                    "Input files are mounted read only, and results are copied out through a dedicated output directory that is scanned before the agent can read it.",
                    "When a task ends, the whole sandbox is destroyed, so no state leaks from one user's task into another user's task.",
                    "Outbound requests from a sandbox that has network access pass through the same egress proxy that protects the URL fetch tool.",
                ],
            ),
            (
                "Observing sandboxed work",
                [
                    "Every command executed in a sandbox is logged with its exit code, duration, and truncated output, and the log is attached to the agent trace.",
                    "Repeated sandbox timeouts within a run usually indicate that the agent is stuck, and the orchestrator stops the run after 3 consecutive timeouts.",
                    "Sandbox images are rebuilt weekly from pinned base images so that patched dependencies reach every sandbox without manual work.",
                    "Operators can replay a logged sandbox session in an identical image, which makes it possible to reproduce a failure that the agent reported.",
                ],
            ),
        ],
    },
]


PAGE = pymupdf.paper_rect("a4")
MARGIN = 72.0  # one inch
LINE_FACTOR = 1.45
H2_SPACE_BEFORE = 8.0

# (fontname, fontsize, space after block) for each block kind.  Base-14
# fonts are used on purpose: they are not shaped, so no ligature glyphs
# (fi, fl, ffi) end up in the extracted text, and they are not embedded,
# which keeps the files small and byte-stable.
STYLES = {
    "title": ("hebo", 19.0, 6.0),
    "subtitle": ("heit", 11.5, 14.0),
    "h2": ("hebo", 13.5, 3.0),
    "p": ("helv", 12.0, 8.0),
}


def _check_text(doc_name: str, text: str) -> None:
    if not text.isascii():
        raise ValueError(f"{doc_name}: non-ASCII text: {text!r}")
    if "  " in text or text != text.strip():
        raise ValueError(f"{doc_name}: stray whitespace in: {text!r}")


def _wrap(text: str, fontname: str, fontsize: float, width: float) -> list[str]:
    """Greedy word wrap that breaks only at spaces (never inside a word)."""
    lines: list[str] = []
    current = ""
    for word in text.split(" "):
        candidate = word if not current else current + " " + word
        if pymupdf.get_text_length(candidate, fontname=fontname, fontsize=fontsize) <= width:
            current = candidate
        else:
            if not current:
                raise ValueError(f"word too long for a line: {word!r}")
            lines.append(current)
            current = word
    if current:
        lines.append(current)
    return lines


def document_blocks(spec: dict) -> list[tuple[str, str]]:
    name = spec["filename"]
    blocks = [("title", spec["title"]), ("subtitle", spec["subtitle"])]
    for heading, sentences in spec["sections"]:
        blocks.append(("h2", heading))
        # Two sentences per paragraph keeps the layout natural.
        for i in range(0, len(sentences), 2):
            blocks.append(("p", " ".join(sentences[i : i + 2])))
    for _, text in blocks:
        _check_text(name, text)
    return blocks


def render_pdf(spec: dict) -> bytes:
    width = PAGE.width - 2 * MARGIN
    bottom = PAGE.height - MARGIN
    blocks = document_blocks(spec)
    wrapped = []
    for kind, text in blocks:
        fontname, fontsize, after = STYLES[kind]
        lines = _wrap(text, fontname, fontsize, width)
        height = len(lines) * fontsize * LINE_FACTOR + after
        wrapped.append((kind, lines, height))

    doc = pymupdf.open()
    page = doc.new_page(width=PAGE.width, height=PAGE.height)
    y = MARGIN
    for index, (kind, lines, height) in enumerate(wrapped):
        needed = height + (H2_SPACE_BEFORE if kind == "h2" else 0.0)
        if kind == "h2" and index + 1 < len(wrapped):
            needed += wrapped[index + 1][2]  # keep a heading with its first paragraph
        # Paragraphs are never split across pages, so every sentence is
        # intact within the text of a single page.
        if y + needed > bottom and y > MARGIN:
            page = doc.new_page(width=PAGE.width, height=PAGE.height)
            y = MARGIN
        if kind == "h2" and y > MARGIN:
            y += H2_SPACE_BEFORE
        fontname, fontsize, after = STYLES[kind]
        for line in lines:
            y += fontsize * LINE_FACTOR
            page.insert_text((MARGIN, y - fontsize * (LINE_FACTOR - 1.0) / 2), line,
                             fontname=fontname, fontsize=fontsize)
        y += after

    doc.set_metadata(
        {
            "title": spec["title"],
            "author": AUTHOR,
            "subject": spec["subtitle"],
            "keywords": "agent reliability",
            "creator": "evals/build_corpus.py",
            "producer": "PyMuPDF",
            "creationDate": FIXED_DATE,
            "modDate": FIXED_DATE,
        }
    )
    data = doc.tobytes(garbage=4, deflate=True, no_new_id=True)
    doc.close()
    return data


def build(out_dir: Path = CORPUS_DIR) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for spec in DOCUMENTS:
        path = out_dir / spec["filename"]
        data = render_pdf(spec)
        path.write_bytes(data)
        with pymupdf.open(path) as doc:
            pages = doc.page_count
        if pages < 2:
            raise RuntimeError(f"{path.name}: expected at least 2 pages, got {pages}")
        written.append(path)
        print(f"wrote {path.relative_to(out_dir.parent.parent)} ({pages} pages, {len(data)} bytes)")
    return written


if __name__ == "__main__":
    try:
        build()
    except Exception as exc:  # noqa: BLE001 - report and fail loudly
        print(f"build_corpus: error: {exc}", file=sys.stderr)
        sys.exit(1)
