"""The ``Agent`` base class, the registry of agents, and the values its steps exchange with the runner.

An agent defines four hooks and never calls the LLM, Observer or its own ``act`` itself. The steps
of the ``agent_run`` flow in ``singularity.agents.runner`` call them:

- ``question(run)``: optionally a ``Question`` to ask a person before thinking;
- ``prompt(run)``: the messages of the think step's LLM request, or None when there is nothing to do;
- ``propose(run, text)``: validate the model's text and return a ``Proposal`` or ``None``;
- ``act(run, approved)``: apply ``run.proposal``; reachable only with an ``Approved`` token.
"""
from dataclasses import dataclass, field

from singularity.llm.contracts import Complexity, TaskType

# The first line of every agent's system message. The offline local provider in nexus recognises it
# and returns a labelled, well-formed response for the named task.
TASK_MARKER = "singularity-agent-task:"


class AgentError(Exception):
    """Base class of the agent framework's errors."""


class UnknownAgent(AgentError, LookupError):
    """No agent is registered under this name."""


class InvalidAgentInput(AgentError, ValueError):
    """A run was started with input the agent rejects; no run is created."""


class AgentOutputError(AgentError):
    """The model's response is unusable (not JSON, wrong schema, an empty diff); the run fails."""


class ActConflict(AgentError):
    """The target changed since the proposal was made, so the approved change was not applied."""


class ActFailed(AgentError):
    """The approved change could not be applied; the run fails with this message."""


@dataclass(frozen=True)
class Proposal:
    """What the agent asks a person to approve: the payload shown and the data ``act`` will use."""

    summary: str
    payload: dict
    state: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Question:
    """A question for a person, asked before the think step; the answer lands in ``run.state['answer']``."""

    text: str
    context: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ActResult:
    """The record of an act step: a one-line outcome and the changes stored on the run."""

    outcome: str
    changes: dict


class Agent:
    """Base class of agents; subclasses set ``name``, ``description`` and the hooks."""

    name: str = ""
    description: str = ""
    task_type: str = TaskType.GENERAL
    complexity: str = Complexity.MEDIUM
    max_tokens: int | None = 2000

    @property
    def agent_id(self) -> str:
        """The agent_id sent with LLM and HITL requests."""
        return f"agent:{self.name}"

    def validate_input(self, data: dict) -> dict:
        """Return the run input, normalised; raise ``InvalidAgentInput`` with the field and the fix."""
        return data

    def question(self, run) -> Question | None:
        return None

    def prompt(self, run) -> list[dict] | None:
        """Return the think step's messages, or None to end the run with nothing to propose."""
        raise NotImplementedError

    def propose(self, run, text: str) -> Proposal | None:
        """Validate the model's ``text``; return the proposal, or None when nothing needs changing."""
        raise NotImplementedError

    def act(self, run, approved) -> ActResult:
        """Apply ``run.proposal``. ``approved`` is the runner's proof of the approval; see ``Approved``."""
        raise NotImplementedError

    def system_message(self, instructions: str) -> dict:
        return {"role": "system", "content": f"{TASK_MARKER} {self.name}\n{instructions}"}


_agents: dict[str, Agent] = {}


def register(agent_class: type[Agent]) -> type[Agent]:
    """Register an agent class under its ``name`` (a class decorator)."""
    if not agent_class.name:
        raise AgentError(f"Agent class {agent_class.__qualname__} has no name; set the class attribute name.")
    existing = _agents.get(agent_class.name)
    if existing is not None and type(existing) is not agent_class:
        raise AgentError(f"Agent name {agent_class.name!r} is already registered by {type(existing).__qualname__}.")
    _agents[agent_class.name] = agent_class()
    return agent_class


def registered_agents() -> dict[str, Agent]:
    return dict(sorted(_agents.items()))


def get_agent(name: str) -> Agent:
    try:
        return _agents[name]
    except KeyError:
        known = ", ".join(sorted(_agents)) or "none"
        raise UnknownAgent(f"No agent is named {name!r}; registered agents: {known}.") from None
