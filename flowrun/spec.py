"""The flow language as pydantic models: strict, closed, one docstring per field.

These models are the single source of the JSON Schema (``schemas/flow.schema.json``).
They check shapes and values only; cross-references (templates, ``needs``,
``continue``) are checked by :mod:`flowrun.plan`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from .spec_options import RequestOptions

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: Any) -> Any:
    """Accept seconds as a number, or a string such as ``500ms``, ``30s``, ``5m``, ``1h``."""
    if isinstance(value, bool):
        return value  # let the float check reject it
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return float(m.group(1)) * _UNITS[m.group(2)]
        raise ValueError(f"{value!r} is not a duration; write seconds (30) or 500ms, 30s, 5m, 1h")
    return value


# json_schema_input_type: the schema shows what YAML may say (30, "5m"), not the parsed float
_DurationText = Annotated[str, Field(pattern=_DURATION.pattern)]
_DurationInput = Union[Annotated[float, Field(gt=0)], _DurationText]
Duration = Annotated[
    float, Field(gt=0), BeforeValidator(parse_duration, json_schema_input_type=_DurationInput)
]


class StrictModel(BaseModel):
    """Base for every flow model: unknown keys are errors, no type coercion."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        use_attribute_docstrings=True,
        frozen=True,
    )

    def given(self) -> set[str]:
        """Names of the fields the flow file set explicitly."""
        return set(self.model_fields_set)


# --------------------------------------------------------------------------- inputs

InputType = Literal["string", "integer", "number", "boolean", "list", "object", "file"]
_PY_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "list": (list,),
    "object": (dict,),
    "file": (str,),
}


def check_input_value(kind: str, value: Any) -> bool:
    """True when ``value`` is acceptable for an input of type ``kind``."""
    if kind in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, _PY_TYPES[kind])


class InputSpec(StrictModel):
    """A flow input, given with ``-i NAME=VALUE`` or ``--inputs FILE``."""

    type: InputType = "string"
    """The value's type. ``file`` takes a path, resolved from the directory flowrun runs in."""
    description: str | None = None
    """What the input is for; shown by ``flowrun graph`` and in errors."""
    default: Any = None
    """The value used when none is given. Without a default the input is required."""
    required: bool | None = None
    """Whether a value must be given. Defaults to true unless there is a default."""
    enum: list[Any] | None = None
    """The only values allowed."""

    @field_validator("default")
    @classmethod
    def _default_matches_type(cls, v: Any, info: Any) -> Any:
        kind = info.data.get("type")
        if v is not None and kind is not None and not check_input_value(kind, v):
            raise ValueError(f"default {v!r} is not of type {kind}")
        return v

    @model_validator(mode="after")
    def _default_in_enum(self) -> InputSpec:
        if self.enum is not None and self.default is not None and self.default not in self.enum:
            raise ValueError(f"default {self.default!r} is not one of enum {self.enum!r}")
        return self

    @property
    def is_required(self) -> bool:
        return self.required if self.required is not None else self.default is None


def _input_shorthand(value: Any) -> Any:
    """``company: string`` is short for ``company: {type: string}``."""
    return {"type": value} if isinstance(value, str) else value


InputDecl = Annotated[
    InputSpec, BeforeValidator(_input_shorthand, json_schema_input_type=Union[InputType, InputSpec])
]


# --------------------------------------------------------------------------- shared parts


class Reasoning(StrictModel):
    """Reasoning options for reasoning models (o-series, gpt-5)."""

    effort: Literal["minimal", "low", "medium", "high"] | None = None
    """How hard the model thinks before answering."""
    summary: Literal["auto", "concise", "detailed"] | None = None
    """Ask for a summary of the reasoning; it is saved with the step's result."""


class RetryPolicy(StrictModel):
    """Retries for rate limits (429, honouring Retry-After), 5xx, connection errors and
    dropped streams. Without ``retries:`` a step gets these defaults."""

    max: int = Field(8, ge=0, le=100)
    """How many times to retry after the first attempt."""
    initial_delay: Duration = 0.5
    """Delay before the first retry; doubles each time, with jitter."""
    max_delay: Duration = 60.0
    """Upper bound for one wait. A service's Retry-After is obeyed up to this; one asking
    for longer fails the step at once."""


def _retry_shorthand(value: Any) -> Any:
    """``retries: 3`` is short for ``retries: {max: 3}``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return {"max": value}
    if not isinstance(value, dict):
        raise ValueError("expected a number of retries, or {max, initial_delay, max_delay}")
    return value


Retries = Annotated[
    RetryPolicy,
    BeforeValidator(
        _retry_shorthand,
        json_schema_input_type=Union[Annotated[int, Field(ge=0, le=100)], RetryPolicy],
    ),
]


# --------------------------------------------------------------------------- the step cache

_TTL = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)?\s*$")
_TTL_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, None: 1.0}


def parse_ttl(value: Any) -> Any:
    """Seconds as a number, or a string such as ``90s``, ``30m``, ``12h``, ``7d``, ``2w``."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        m = _TTL.match(value)
        if m:
            return float(m.group(1)) * _TTL_UNITS[m.group(2)]
        raise ValueError(f"{value!r} is not a time to live; write seconds (3600) or 90s, 30m, "
                         "12h, 7d, 2w")
    return value


_TtlInput = Union[Annotated[float, Field(gt=0)], Annotated[str, Field(pattern=_TTL.pattern)]]
Ttl = Annotated[float, Field(gt=0), BeforeValidator(parse_ttl, json_schema_input_type=_TtlInput)]


class CacheOptions(StrictModel):
    """The step cache: reuse the stored answer of an identical request (zero requests)."""

    ttl: Ttl | None = None
    """How long a stored answer may be reused: seconds, or ``30m``, ``12h``, ``7d``, ``2w``.
    Unset: until ``flowrun cache clear``."""


def _cache_shorthand(value: Any) -> Any:
    """``cache: true`` is short for ``cache: {}``; ``cache: false`` turns the cache off."""
    if value is True:
        return {}
    if value is not False and not isinstance(value, (dict, BaseModel)):
        raise ValueError("expected true, false or {ttl: DURATION} (for example {ttl: 7d})")
    return value


CacheSetting = Annotated[
    Union[Literal[False], CacheOptions],
    BeforeValidator(_cache_shorthand, json_schema_input_type=Union[bool, CacheOptions]),
]


# --------------------------------------------------------------------------- input parts


class TextPart(StrictModel):
    """A piece of text in a step's input."""

    text: str
    """The text; a template."""


class ImagePart(StrictModel):
    """An image in a step's input: a local path, an http(s) or data URL, or a file id."""

    image: str
    """Path (sent as a base64 data URL), URL, or uploaded file id (``file-...``); a template."""
    detail: Literal["auto", "low", "high"] = "auto"
    """How closely the model looks at the image."""
    upload: bool = False
    """Upload a local image (files API, purpose ``vision``) and send its file id instead of
    inline base64 data."""


class FilePart(StrictModel):
    """A file (PDF) in a step's input."""

    file: str
    """Path of a local PDF, or an uploaded file id (``file-...``); a template."""
    filename: str | None = None
    """The name the model sees; defaults to the file's own name."""
    upload: bool = False
    """Upload the file (files API) and send its id instead of inline base64 data."""


def _part_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        for key in ("text", "image", "file"):
            if key in value:
                return key
        return None
    if isinstance(value, BaseModel):
        return {TextPart: "text", ImagePart: "image", FilePart: "file"}.get(type(value))
    return None


InputPart = Annotated[
    Union[
        Annotated[TextPart, Tag("text")],
        Annotated[ImagePart, Tag("image")],
        Annotated[FilePart, Tag("file")],
    ],
    Discriminator(
        _part_kind,
        custom_error_type="input_part",
        custom_error_message="an input part needs one of the keys text, image or file",
    ),
]


class PromptSpec(StrictModel):
    """A reusable prompt stored at the service (``prompt``)."""

    id: str = Field(min_length=1)
    """The prompt's id (``pmpt_...``); a template."""
    version: str | None = None
    """Which version (default: the current one); a template."""
    variables: dict[str, Union[str, InputPart]] = Field(default_factory=dict)
    """Values for the prompt's ``{{variables}}``: a template string, or a text, image or
    file part as in ``input``."""


# --------------------------------------------------------------------------- tools


class FunctionToolBase(StrictModel):
    description: str | None = None
    """What the tool does, for the model. Defaults to the function's docstring."""
    parameters: dict[str, Any] | None = None
    """JSON Schema of the arguments. Defaults to one derived from the type hints."""
    strict: bool = True
    """Ask the model for arguments that match the schema exactly."""
    timeout: Duration | None = None
    """Seconds one call may take; a slower call becomes an error output for the model."""
    bind: dict[str, str] = Field(default_factory=dict)
    """Parameters filled in by flowrun (often ``{{ secrets.X }}``), hidden from the model."""


class PythonTool(FunctionToolBase):
    """A Python function the model may call; flowrun runs it."""

    python: str = Field(json_schema_extra={"pattern": r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$"})
    """``module:function``, resolved from the flow file's directory, then installed packages."""

    @field_validator("python")
    @classmethod
    def _reference(cls, v: str) -> str:
        if not re.match(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$", v):
            raise ValueError(f"{v!r} is not module:function (for example tools.finance:lookup)")
        return v


class CommandTool(FunctionToolBase):
    """An external program the model may call: JSON arguments on stdin, result on stdout."""

    command: list[str] = Field(min_length=1)
    """The argv list (never a shell string), relative paths from the flow file's directory."""


class FlowTool(StrictModel):
    """Another flow used as a tool: its inputs become the tool's parameters."""

    flow: str
    """Path of the flow file, relative to this one."""
    description: str | None = None
    """What the tool does, for the model. Defaults to the sub-flow's description."""
    timeout: Duration | None = None
    """Seconds one call may take."""


class RequireApprovalByName(StrictModel):
    """Per-tool approval requirement for a remote MCP server."""

    always: list[str] = Field(default_factory=list)
    """Tools that always need approval."""
    never: list[str] = Field(default_factory=list)
    """Tools that never need approval."""


class McpTool(StrictModel):
    """A remote MCP server that the service calls on the model's behalf."""

    mcp: str
    """The server URL (``server_url``)."""
    server_label: str | None = None
    """Label the model sees; defaults to the tool's name."""
    headers: dict[str, str] = Field(default_factory=dict)
    """HTTP headers sent to the server; take values from ``{{ secrets.X }}``. Never logged."""
    allowed_tools: list[str] | None = None
    """Only these of the server's tools are offered to the model."""
    require_approval: Literal["never", "always"] | RequireApprovalByName = "always"
    """Which calls need approval: never, always, or per tool name."""
    approve: Literal["all", "none"] | list[str] | None = None
    """Approval policy: approve these tools (or all / none), deny the rest. Unset: ask when
    interactive, otherwise deny."""


class CodeInterpreterOptions(StrictModel):
    """Options for the hosted code interpreter."""

    container: str = "auto"
    """``auto`` for a new container, or a container id such as ``{{ steps.a.container }}``."""
    memory_limit: Literal["1g", "4g", "16g", "64g"] | None = None
    """Memory of an ``auto`` container."""


class CodeInterpreterTool(StrictModel):
    """The hosted code interpreter; the step's ``files`` are uploaded into its container."""

    code_interpreter: CodeInterpreterOptions | None = None
    """Options; empty for defaults."""


class ImageGenerationOptions(StrictModel):
    """Options for the hosted image generation tool."""

    size: Literal["auto", "1024x1024", "1024x1536", "1536x1024"] | None = None
    """Image size."""
    quality: Literal["auto", "low", "medium", "high"] | None = None
    """Rendering quality."""
    background: Literal["auto", "transparent", "opaque"] | None = None
    """Background type."""
    output_format: Literal["png", "jpeg", "webp"] | None = None
    """File format of the saved images."""
    output_compression: int | None = Field(None, ge=0, le=100)
    """Compression for jpeg and webp."""
    partial_images: int | None = Field(None, ge=0, le=3)
    """Partial images to stream (needs ``stream: true``); each is saved too."""
    model: str | None = None
    """The image model (on Azure, the header deployment is set in the provider)."""
    input_fidelity: Literal["low", "high"] | None = None
    """How closely edits keep the input images."""


class ImageGenerationTool(StrictModel):
    """The hosted image generation tool; images are saved as the step's ``images``."""

    image_generation: ImageGenerationOptions | None = None
    """Options; empty for defaults."""


# ------------------------------------------------------------- hosted search tools


class UserLocation(StrictModel):
    """Where the user is, roughly, so web results can favour it."""

    country: str | None = Field(None, pattern=r"^[A-Z]{2}$")
    """Two-letter ISO country code, such as ``GB``."""
    region: str | None = None
    """Region or state, such as ``Scotland``."""
    city: str | None = None
    """City, such as ``Glasgow``."""
    timezone: str | None = None
    """IANA time zone, such as ``Europe/London``."""


class WebSearchFilters(StrictModel):
    """Which sites web search may use."""

    allowed_domains: list[str] = Field(default_factory=list, max_length=100)
    """Only pages on these domains (and their subdomains)."""


class WebSearchOptions(StrictModel):
    """Options for the hosted web search tool."""

    search_context_size: Literal["low", "medium", "high"] | None = None
    """How much of the search results the model reads (default medium)."""
    user_location: UserLocation | None = None
    """The user's approximate location."""
    filters: WebSearchFilters | None = None
    """Limits on the sites searched."""


class WebSearchTool(StrictModel):
    """The hosted web search tool; the answer's URL citations are ``steps.X.citations``.
    Add ``web_search_call.action.sources`` to the step's ``include`` for every source."""

    web_search: WebSearchOptions | None = None
    """Options; empty for defaults."""


class SearchFile(StrictModel):
    """A file for file search, with attributes that ``filters`` can test."""

    file: str
    """Path (or glob) of local files, or an uploaded file id; a template."""
    attributes: dict[str, str | int | float | bool] = Field(default_factory=dict, max_length=16)
    """Attributes of the file(s) in the vector store."""


_COMPARISONS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "nin")


def check_search_filter(rule: Any, where: str = "filters") -> None:
    """Raise ValueError unless ``rule`` is a comparison or compound attribute filter."""
    shape = ("expected {type: eq|ne|gt|gte|lt|lte|in|nin, key, value} or "
             "{type: and|or, filters: [...]}")
    if not isinstance(rule, dict):
        raise ValueError(f"{where}: {shape}")
    kind = rule.get("type", "eq")
    if kind in ("and", "or"):
        if set(rule) - {"type", "filters"} or not isinstance(rule.get("filters"), list):
            raise ValueError(f"{where}: a {kind} filter has only type and a list of filters")
        for n, sub in enumerate(rule["filters"]):
            check_search_filter(sub, f"{where}.filters[{n}]")
    elif kind in _COMPARISONS:
        if set(rule) - {"type", "key", "value"} or "key" not in rule or "value" not in rule:
            raise ValueError(f"{where}: a {kind} filter has type, key and value")
    else:
        raise ValueError(f"{where}: unknown filter type {kind!r}; {shape}")


class FileSearchRanking(StrictModel):
    """How file search ranks its results."""

    ranker: Literal["auto", "default-2024-11-15"] | None = None
    """The ranker (default auto)."""
    score_threshold: float | None = Field(None, ge=0, le=1)
    """Drop results scoring below this (0 to 1)."""


class FileSearchOptions(StrictModel):
    """Options for the hosted file search tool."""

    files: list[str | SearchFile] = Field(default_factory=list)
    """Files to search: paths, globs (``data/handbook/*.md``), file ids, templates (a template
    may give a list), or ``{file, attributes}``. Uploaded and put in a vector store."""
    vector_store: str | None = None
    """Reuse a store: its id (``vs_...``), or a name (found, or created with that name).
    Default: a new store for this run."""
    keep: bool = False
    """Keep the store flowrun created after the run (default: deleted at the end)."""
    expires_after: int = Field(7, ge=1, le=365)
    """Days without use after which the service deletes a store flowrun created, so
    nothing is left behind by a crashed run."""
    max_num_results: int | None = Field(None, ge=1, le=50)
    """How many results the model may read."""
    filters: dict[str, Any] | None = None
    """An attribute filter: ``{type: eq, key, value}`` (eq ne gt gte lt lte in nin) or
    ``{type: and|or, filters: [...]}``."""
    ranking_options: FileSearchRanking | None = None
    """How results are ranked, and which are dropped."""

    @field_validator("filters")
    @classmethod
    def _filter_shape(cls, v: Any) -> Any:
        if v is not None:
            check_search_filter(v)
        return v

    @model_validator(mode="after")
    def _has_source(self) -> FileSearchOptions:
        if not self.files and self.vector_store is None:
            raise ValueError("file_search needs files to search, or a vector_store to use")
        return self


class FileSearchTool(StrictModel):
    """The hosted file search tool over a vector store; the answer's file citations are
    ``steps.X.citations``. Add ``file_search_call.results`` to ``include`` for the results."""

    file_search: FileSearchOptions
    """The files or vector store, and search options."""



# the workspace tool kinds live in their own module (it imports StrictModel from here)
from .spec_workspace import ApplyPatchTool, CustomTool, ShellTool, WorkspaceDecl  # noqa: E402

TOOL_KINDS = ("python", "command", "flow", "mcp", "code_interpreter", "image_generation",
              "shell", "apply_patch", "custom", "web_search", "file_search")


def _tool_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        found = [k for k in TOOL_KINDS if k in value]
        return found[0] if len(found) == 1 else None
    for kind, cls in _TOOL_CLASSES.items():
        if isinstance(value, cls):
            return kind
    return None


ToolDef = Annotated[
    Union[
        Annotated[PythonTool, Tag("python")],
        Annotated[CommandTool, Tag("command")],
        Annotated[FlowTool, Tag("flow")],
        Annotated[McpTool, Tag("mcp")],
        Annotated[CodeInterpreterTool, Tag("code_interpreter")],
        Annotated[ImageGenerationTool, Tag("image_generation")],
        Annotated[ShellTool, Tag("shell")],
        Annotated[ApplyPatchTool, Tag("apply_patch")],
        Annotated[CustomTool, Tag("custom")],
        Annotated[WebSearchTool, Tag("web_search")],
        Annotated[FileSearchTool, Tag("file_search")],
    ],
    Discriminator(
        _tool_kind,
        custom_error_type="tool_kind",
        custom_error_message=(
            "a tool needs exactly one of the keys python, command, flow, mcp, "
            "code_interpreter, image_generation, shell, apply_patch, custom, web_search or file_search"
        ),
    ),
]
_TOOL_CLASSES: dict[str, type] = {
    "python": PythonTool,
    "command": CommandTool,
    "flow": FlowTool,
    "mcp": McpTool,
    "code_interpreter": CodeInterpreterTool,
    "image_generation": ImageGenerationTool,
    "shell": ShellTool,
    "apply_patch": ApplyPatchTool,
    "custom": CustomTool,
    "web_search": WebSearchTool,
    "file_search": FileSearchTool,
}
BUILTIN_TOOLS = ("code_interpreter", "image_generation", "apply_patch", "web_search")
"""Tool names usable in a step's ``tools`` without a definition."""


def tool_kind(tool: Any) -> str | None:
    """The kind of a tool definition: python, command, flow, mcp, code_interpreter, ..."""
    return _tool_kind(tool)


ToolRef = Annotated[
    Union[Annotated[str, Tag("name")], Annotated[ToolDef, Tag("inline")]],
    Discriminator(lambda v: "name" if isinstance(v, str) else "inline"),
]


# --------------------------------------------------------------------------- step kinds


class ContinueSpec(StrictModel):
    """Continue the conversation of an earlier step."""

    step: str
    """The step whose conversation this one continues."""
    mode: Literal["previous_response_id", "manual"] = "previous_response_id"
    """``previous_response_id`` lets the service keep the history; ``manual`` resends the
    earlier input and output items (needed with ``store: false``)."""


def _continue_shorthand(value: Any) -> Any:
    """``continue: risks`` is short for ``continue: {step: risks}``."""
    return {"step": value} if isinstance(value, str) else value


class Display(StrictModel):
    """The browser viewport the computer-use model sees."""

    width: int = Field(1024, ge=200, le=4096)
    """Width in pixels."""
    height: int = Field(768, ge=200, le=4096)
    """Height in pixels."""


class SafetyAcknowledge(StrictModel):
    """Acknowledge pending safety checks with these codes; refuse any other."""

    acknowledge: list[str] = Field(min_length=1)
    """Codes to acknowledge, such as ``malicious_instructions``."""


class ComputerUse(StrictModel):
    """A computer-use sub-agent driving a real browser with Playwright."""

    task: str
    """What the agent should do; a template."""
    start_url: str | None = None
    """The page the browser opens first; a template."""
    model: str = "computer-use-preview"
    """The computer-use model (deployment on Azure)."""
    display: Display = Field(default_factory=Display)
    """Viewport size; action coordinates are clamped to it."""
    environment: Literal["browser"] = "browser"
    """The environment the model is told it controls."""
    headless: bool = True
    """Run the browser without a window."""
    max_turns: int = Field(20, ge=1, le=500)
    """Stop with an error after this many computer actions."""
    allowed_domains: list[str] = Field(default_factory=list)
    """Hosts the browser may visit (subdomains included). Defaults to start_url's host."""
    safety_checks: Literal["ask", "refuse"] | SafetyAcknowledge = "ask"
    """Pending safety checks: ask when interactive (refuse otherwise), refuse, or acknowledge
    the listed codes."""
    truncation: Literal["auto"] = "auto"
    """Truncation mode, which computer use requires."""
    reasoning_summary: Literal["auto", "concise", "detailed"] | None = "concise"
    """Ask for a summary of the model's reasoning at each turn."""


# --------------------------------------------------------------------------- steps


class ModelParams(StrictModel, RequestOptions):
    """Request parameters shared by ``defaults`` and steps."""

    model: str | None = None
    """The model, or on Azure the deployment name."""
    instructions: str | None = None
    """System / developer instructions; a template."""
    temperature: float | None = Field(None, ge=0, le=2)
    """Sampling temperature."""
    top_p: float | None = Field(None, ge=0, le=1)
    """Nucleus sampling."""
    max_output_tokens: int | None = Field(None, ge=1)
    """Upper bound on generated tokens, reasoning included."""
    reasoning: Reasoning | None = None
    """Reasoning effort and summary."""
    truncation: Literal["auto", "disabled"] | None = None
    """What to do when the conversation exceeds the context window."""
    store: bool | None = None
    """Let the service store responses (needed for ``previous_response_id``)."""
    stream: bool | None = None
    """Stream the response; text deltas are shown live when the run is interactive."""
    retries: Retries | None = None
    """Retries on 429 / 5xx / connection errors: a count or a policy."""
    timeout: Duration | None = None
    """Seconds the step may take, retries and tool calls included."""
    max_tool_turns: int | None = Field(None, ge=1, le=1000)
    """Tool-loop rounds before the step fails (default 10)."""
    batch_model: str | dict[str, str] | None = None
    """Batch mode (``run --batch``): the model each batch line names (on Azure the Global
    Batch deployment): a name, or a mapping from the step's model to one. Unset: the
    step's model; ``--batch-deployment`` overrides it."""
    cache: CacheSetting | None = None
    """Reuse the answer of an identical request from the step cache: ``true``,
    ``{ttl: 7d}``, or ``false``. Steps with function, command, flow or MCP tools are cached
    only when the step itself says so (not from ``defaults``)."""


class Defaults(ModelParams):
    """Parameters every step inherits unless it sets its own."""


class Step(ModelParams):
    """One node of the flow: a Responses call (``input``), a computer-use agent
    (``computer_use``), a sub-flow (``flow``) or a Python function call (``python``)."""

    description: str | None = None
    """What the step is for."""

    # what to run — exactly one
    input: str | list[InputPart] | None = None
    """The prompt: a template string, or a list of text / image / file parts."""
    prompt: PromptSpec | None = None
    """A reusable prompt (``{id, version, variables}``), with or without ``input``."""
    computer_use: ComputerUse | None = None
    """Run a computer-use agent in a browser instead of a single conversation."""
    flow: str | None = None
    """Run another flow file (relative path, or ``recipe:NAME``) as this step."""
    python: str | None = Field(None, json_schema_extra={"pattern": r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$"})
    """Call a Python function (``module:function``, found like a ``python:`` tool) with
    ``with:`` as its keyword arguments; its return value is ``output``. No model call."""
    with_: dict[str, Any] | None = Field(None, alias="with")
    """Inputs for the sub-flow, or arguments for the function; string values are templates."""

    # responses options
    output_schema: dict[str, Any] | None = None
    """JSON Schema of a structured output; the parsed result is ``steps.X.output``."""
    tools: list[ToolRef] = Field(default_factory=list)
    """Tools for this step: names from ``tools:``, built-ins, or inline definitions."""
    tool_choice: str | None = None
    """``auto``, ``none``, ``required``, or the name of one function tool."""
    parallel_tool_calls: bool | None = None
    """Allow several tool calls in one response."""
    files: list[str] = Field(default_factory=list)
    """Local files uploaded into the code interpreter's container; templates."""
    continue_: ContinueSpec | None = Field(None, alias="continue")
    """Continue an earlier step's conversation: a step id or ``{step, mode}``."""
    include: list[str] = Field(default_factory=list)
    """Extra output data, such as ``reasoning.encrypted_content``."""
    metadata: dict[str, str] = Field(default_factory=dict)
    """Key-value metadata sent with the request."""
    background: bool = False
    """Run as a background response: flowrun polls until it finishes."""
    poll_interval: Duration = 1.0
    """Seconds between polls of a background response."""
    workspace: WorkspaceDecl | None = None
    """The directory the step's shell and apply_patch tools work in: a path or
    ``{dir, copy, ignore}``; the result has ``steps.X.workspace`` and ``steps.X.diff``."""

    # scheduling
    needs: list[str] = Field(default_factory=list)
    """Steps that must finish first (template references add to these)."""
    if_: str | bool | None = Field(None, alias="if")
    """Run only when this template is true; otherwise the step and its dependents skip."""
    on_skipped_needs: Literal["skip", "run"] = "skip"
    """What to do when a step this one needs was skipped."""
    for_each: str | list[Any] | None = None
    """Run once per item of this list (a template or a literal list); ``item`` and
    ``index`` name the current one. The result is the list of runs."""
    max_parallel: int | None = Field(None, ge=1)
    """How many ``for_each`` runs may be in flight at once."""
    continue_on_error: bool = False
    """Let the flow go on when this step fails; dependents then skip."""

    @field_validator(
        "continue_", mode="before", json_schema_input_type=Union[str, ContinueSpec, None]
    )
    @classmethod
    def _continue(cls, v: Any) -> Any:
        return _continue_shorthand(v)

    @model_validator(mode="after")
    def _one_kind(self) -> Step:
        kinds = [k for k in ("input", "computer_use", "flow", "python") if getattr(self, k) is not None]
        if not kinds and self.prompt is not None:
            kinds = ["prompt"]  # a model call on a stored prompt alone
        if len(kinds) != 1:
            raise ValueError(
                "a step needs exactly one of input (a model call), computer_use or flow"
                " (a sub-flow), or python (a function call)"
                + (f"; it has {' and '.join(kinds)}" if kinds else "")
            )
        if self.with_ is not None and self.flow is None and self.python is None:
            raise ValueError("'with' gives inputs to a sub-flow; it needs 'flow' "
                             "(or 'python': then it gives the function's arguments)")
        if self.max_parallel is not None and self.for_each is None:
            raise ValueError("max_parallel limits for_each runs; it needs for_each")
        return self

    @property
    def kind(self) -> str:
        if self.computer_use is not None:
            return "computer_use"
        if self.flow is not None:
            return "flow"
        if self.python is not None:
            return "python"
        return "responses"


class Provider(StrictModel):
    """Where requests go. Usually set by environment variables or ``--provider``."""

    kind: Literal["azure", "openai", "compatible", "emulator"]
    """Which kind of endpoint."""
    base_url: str | None = None
    """Endpoint URL; for Azure ``https://RESOURCE.openai.azure.com/openai/v1/``."""
    api_key_env: str | None = None
    """Name of the environment variable holding the API key (never the key itself)."""
    auth: Literal["api_key", "entra_id"] = "api_key"
    """Azure: authenticate with an API key or Microsoft Entra ID (azure-identity)."""
    image_generation_deployment: str | None = None
    """Azure: the image model deployment, sent as ``x-ms-oai-image-generation-deployment``."""
    batch_model: str | dict[str, str] | None = None
    """Batch mode: the model (Azure: Global Batch deployment) batch lines name when the
    step and ``defaults`` set no ``batch_model``: a name, or a mapping from model names."""


class ModelRateLimit(StrictModel):
    """Requests and tokens per minute."""

    rpm: float | None = Field(None, gt=0)
    """Requests per minute."""
    tpm: float | None = Field(None, gt=0)
    """Tokens per minute (input and output)."""


class RateLimits(ModelRateLimit):
    """The run's rate budget, shared by every step (and every dataset row);
    ``--rpm`` / ``--tpm`` override it."""

    models: dict[str, ModelRateLimit] = Field(default_factory=dict)
    """A budget of its own per model (or Azure deployment) name."""


def _check_name(key: str) -> str:
    if not IDENTIFIER.match(key):
        raise ValueError(
            f"{key!r} is not a valid name: use letters, digits and _, not starting "
            "with a digit (templates refer to it as steps.NAME / inputs.NAME)"
        )
    return key


def _check_tool_name(key: str) -> str:
    if not TOOL_NAME.match(key):
        raise ValueError(f"{key!r} is not a valid tool name: use 1-64 of A-Z a-z 0-9 _ -")
    return key


Name = Annotated[str, AfterValidator(_check_name)]
ToolName = Annotated[str, AfterValidator(_check_tool_name)]


class Requires(StrictModel):
    """What a flow needs to run (a recipe says which flowrun it was written for)."""

    flowrun: str
    """A version specifier (PEP 440) the running flowrun must match, e.g. ``>=0.3,<2``."""


class Flow(StrictModel):
    """A flowrun flow file."""

    name: str = Field(min_length=1)
    """Short name of the flow."""
    description: str | None = None
    """What the flow does."""
    requires: Requires | None = None
    """Versions this flow needs, e.g. ``{flowrun: ">=0.3"}``; checked before anything else."""
    inputs: dict[Name, InputDecl] = Field(default_factory=dict)
    """Named inputs: a type name, or ``{type, default, description, required, enum}``."""
    secrets: list[str] = Field(default_factory=list)
    """Environment variables that hold secrets; checked before the run starts. Any
    ``{{ secrets.X }}`` reads variable X, and its value is masked everywhere."""
    defaults: Defaults = Field(default_factory=Defaults)
    """Parameters every step inherits."""
    provider: Provider | None = None
    """Endpoint settings; ``--provider`` / ``--base-url`` take precedence, environment
    variables and the config file fill in what it leaves unset."""
    max_concurrency: int = Field(100, ge=1)
    """How many steps (and ``for_each`` items) may run at once (``--max-concurrency``
    overrides); the default matches the SDK's pool of 100 kept-alive connections."""
    rate_limits: RateLimits | None = None
    """Requests / tokens per minute for the run: ``{rpm, tpm, models: {NAME: {rpm, tpm}}}``."""
    tools: dict[ToolName, ToolDef] = Field(default_factory=dict)
    """Reusable tool definitions, referenced by name from steps."""
    steps: dict[Name, Step] = Field(min_length=1)
    """The steps, by id. Order does not matter: dependencies decide."""
    outputs: dict[str, Any] = Field(default_factory=dict)
    """Named results of the flow; string values are templates."""



def model_fields_at(root: type[BaseModel], loc: tuple[Any, ...]) -> list[str] | None:
    """The keys allowed at ``loc`` (a pydantic error location) below ``root``.

    Used to suggest the right key for an unknown one. Returns None when the
    location does not lead to a model.
    """
    import typing

    current: Any = root
    for part in loc:
        current = _descend(current, part, typing)
        if current is None:
            return None
    models = _models_in(current, typing)
    if not models:
        return None
    names: list[str] = []
    for m in models:
        for name, f in m.model_fields.items():
            names.append(f.alias or name)
    return names


def _strip(tp: Any, typing: Any) -> Any:
    while typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def _models_in(tp: Any, typing: Any) -> list[type[BaseModel]]:
    tp = _strip(tp, typing)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [tp]
    if typing.get_origin(tp) in (Union, getattr(__import__("types"), "UnionType", Union)):
        out = []
        for arg in typing.get_args(tp):
            out.extend(_models_in(arg, typing))
        return out
    return []


def _descend(tp: Any, part: Any, typing: Any) -> Any:
    tp = _strip(tp, typing)
    origin = typing.get_origin(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        for name, f in tp.model_fields.items():
            if part in (name, f.alias):
                return f.annotation
        return tp if isinstance(part, str) and part in _TAGS else None
    if origin is dict:
        return typing.get_args(tp)[1]
    if origin is list:
        if isinstance(part, str) and part.startswith("list["):
            return tp  # pydantic's label for the list branch of a union
        return typing.get_args(tp)[0] if isinstance(part, int) else None
    if origin is Union or origin is getattr(__import__("types"), "UnionType", None):
        for arg in typing.get_args(tp):
            tagged = _tag_of(arg, typing)
            if tagged == part or getattr(_strip(arg, typing), "__name__", None) == part:
                return arg
        for arg in typing.get_args(tp):
            found = _descend(arg, part, typing)
            if found is not None:
                return found
    return None


def _tag_of(tp: Any, typing: Any) -> str | None:
    if typing.get_origin(tp) is Annotated:
        for meta in typing.get_args(tp)[1:]:
            if isinstance(meta, Tag):
                return meta.tag
    return None


_TAGS = {"text", "image", "file", "name", "inline", *TOOL_KINDS, "str", "list[...]"}
UNION_TAGS = frozenset({"text", "image", "file", "name", "inline", *TOOL_KINDS})
"""Tags of the tagged unions; pydantic puts them in error locations."""
