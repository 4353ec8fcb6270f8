"""Prompt templates on disk: ``prompts/NAME/VERSION/`` holds ``prompt.yaml`` and either
``template.jinja2`` (one text) or ``messages.yaml`` (chat messages, each content a template).

``prompt.yaml``::

    description: Classify a movie review
    variables:
      review: {type: string, required: true}
      tone: {type: string, default: neutral}
    model: gpt-4o-mini            # sent in place of the provider's model (optional)
    params: {temperature: 0}      # default sampling params
    output: {format: label, labels: [positive, negative]}   # text | json | label

Templates run in Jinja2's immutable sandbox with strict undefined variables (``sandbox.py``): a
template cannot reach Python internals, a variable it uses but is not given is an error naming it
and the line, and rendering stops at a size and a time limit (``prompts.render_max_chars``,
default 1,000,000 characters; ``prompts.render_timeout_s``, default 2 s).
A version's *content id* is the hash of its files (names and bytes), what registration pins.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tether.errors import PromptError as PromptError  # re-exported: the tree is in errors.py
from tether.hashing import hash_bytes

if TYPE_CHECKING:
    import jinja2

    from tether.prompts.sandbox import PromptSandbox

from tether.prompts.content import MAX_EXPANDED as MAX_EXPANDED
from tether.prompts.content import inside as inside
from tether.prompts.content import read_yaml as read_yaml

PROMPTS_DIR = "prompts"
META_FILE = "prompt.yaml"
TEXT_FILE = "template.jinja2"
CHAT_FILE = "messages.yaml"
VERSION = re.compile(r"^v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
TYPES = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "list": (list,),
    "object": (dict,),
}
FORMATS = ("text", "json", "label")
# params that would send a request, or its key, elsewhere (LiteLLM-style proxies honour some)
ENDPOINT_PARAMS = frozenset(
    {"api_base", "base_url", "api_key", "api_version", "endpoint", "url", "host", "headers",
     "extra_headers", "default_headers", "organization"}
)  # fmt: skip
ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class Variable:
    name: str
    type: str = "string"
    required: bool = True
    default: Any = None
    description: str = ""


@dataclass
class Prompt:
    """One version of a prompt, as it is on disk now."""

    name: str
    version: str
    folder: Path
    meta: dict[str, Any]
    variables: dict[str, Variable]
    files: dict[str, bytes]  # file name -> bytes: everything the content id covers
    kind: str  # "text" or "chat"
    _templates: list[tuple[str, str, str]] = field(default_factory=list, repr=False)

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def content_id(self) -> str:
        return content_id(self.files)

    @property
    def model(self) -> str | None:
        value = self.meta.get("model")
        return None if value is None else str(value)

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.meta.get("params") or {})

    @property
    def output(self) -> dict[str, Any]:
        return dict(self.meta.get("output") or {"format": "text"})

    def render(self, **values: Any) -> str:
        """The text of a text prompt (for a chat prompt: its messages, one per paragraph)."""
        if self.kind == "text":
            return _render(self, self._templates[0], self.bind(values))
        return "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in self.messages(**values))

    def messages(self, **values: Any) -> list[dict[str, str]]:
        """Chat messages (a text prompt is one user message)."""
        bound = self.bind(values)
        return [
            {"role": role, "content": _render(self, (role, where, src), bound)}
            for role, where, src in self._templates
        ]

    def bind(self, values: dict[str, Any]) -> dict[str, Any]:
        """``values`` checked against the declared variables, with defaults filled in."""
        unknown = sorted(set(values) - set(self.variables))
        if unknown:
            raise PromptError(
                f"{self.ref} has no variable {', '.join(unknown)} "
                f"(it declares: {', '.join(sorted(self.variables)) or 'none'})"
            )
        out = {}
        for var in self.variables.values():
            if var.name in values:
                value = values[var.name]
                if not _is_type(value, var.type):
                    raise PromptError(
                        f"{self.ref}: variable {var.name} must be {_a(var.type)}, "
                        f"not {type(value).__name__} ({value!r:.60})"
                    )
                out[var.name] = value
            elif var.required:
                raise PromptError(f"{self.ref} needs the variable {var.name!r}")
            else:
                out[var.name] = var.default
        return out

    def typed(self, values: dict[str, Any], text: frozenset[str] = frozenset()) -> dict[str, Any]:
        """``values`` whose names are in ``text`` came as text (a CSV cell, ``--var``): each
        becomes its declared type (an empty cell of a non-string variable is not given)."""
        out = dict(values)
        for name in text & set(values):
            var = self.variables.get(name)
            raw = values[name]
            if var is None or var.type == "string" or not isinstance(raw, str):
                continue
            if raw == "":
                del out[name]
                continue
            try:
                out[name] = from_text(raw, var.type)
            except ValueError as exc:
                raise PromptError(f"{self.ref}: variable {name}: {exc}") from None
        return out

    def used_variables(self) -> set[str]:
        """Every variable the templates read (Jinja2's own analysis of the source)."""
        from jinja2 import meta

        env = _environment()
        names: set[str] = set()
        for _role, where, src in self._templates:
            names |= meta.find_undeclared_variables(_parse(env, self, where, src))
        return names


def content_id(files: dict[str, bytes]) -> str:
    """The id of a version's files: names and bytes, in name order."""
    parts = [f"{name}\0{len(data)}\0".encode() + data for name, data in sorted(files.items())]
    return hash_bytes(b"tether-prompt\0" + b"".join(parts))


def parse_ref(ref: str) -> tuple[str, str | None]:
    """``NAME``, ``NAME@vX.Y.Z`` or ``NAME@LABEL`` -> (name, the part after @ or None)."""
    name, _, at = ref.partition("@")
    if not NAME.match(name):
        raise PromptError(
            f"{name!r} is not a prompt name (lower-case letters, digits, - and _, up to 64)"
        )
    if re.fullmatch(r"\d+\.\d+\.\d+", at):
        raise PromptError(
            f"{at!r} is not a version or a label: versions start with v ({name}@v{at})"
        )
    return name, at or None


def version_key(version: str) -> tuple[int, int, int]:
    match = VERSION.match(version)
    if match is None:
        raise PromptError(f"{version!r} is not a version: use semver with a v, like v1.2.0")
    return int(match[1]), int(match[2]), int(match[3])


def names(root: Path) -> list[str]:
    top = root / PROMPTS_DIR
    if not top.is_dir():
        return []
    return sorted(p.name for p in top.iterdir() if p.is_dir() and NAME.match(p.name))


def versions(root: Path, name: str) -> list[str]:
    """The versions of ``name`` on disk, oldest first."""
    folder = root / PROMPTS_DIR / name
    if not folder.is_dir():
        return []
    found = [p.name for p in folder.iterdir() if p.is_dir() and VERSION.match(p.name)]
    return sorted(found, key=version_key)


def load(root: Path, name: str, version: str | None = None) -> Prompt:
    """A version of ``name`` (the newest when ``version`` is None)."""
    parse_ref(name)
    known = versions(root, name)
    if not known:
        raise PromptError(f"no prompt {name!r}: create it with `tether prompt new {name}`")
    version = version or known[-1]
    version_key(version)
    if version not in known:
        raise PromptError(f"{name} has no version {version} (it has {', '.join(known)})")
    return _read(root, root / PROMPTS_DIR / name / version, name, version)


def _read(root: Path, folder: Path, name: str, version: str) -> Prompt:
    """The version's regular files, none of them reached through a symlink that leaves the
    repository (or leads into ``.git`` or ``.tether``, where local secrets live)."""
    ref = f"{name}@{version}"
    inside(root, folder, f"{ref}: its folder {folder}")
    files = {}
    for p in sorted(folder.iterdir()):
        if p.is_symlink():
            inside(root, p, f"{ref}: {p.name}")
        if p.is_file():
            files[p.name] = p.read_bytes()
    return from_files(name, version, files, folder)


def from_files(name: str, version: str, files: dict[str, bytes], folder: Path) -> Prompt:
    """A version from its files (read from a folder, from git or from a bundle); ``folder`` is
    where it lives in a repository."""
    ref = f"{name}@{version}"
    if META_FILE not in files:
        raise PromptError(f"{ref} has no {META_FILE} in {folder}")
    meta = read_yaml(files[META_FILE], f"{ref}: {META_FILE}") or {}
    if not isinstance(meta, dict):
        raise PromptError(f"{ref}: {META_FILE} must be a mapping")
    variables = _variables(ref, meta.get("variables") or {})
    _check_meta(ref, meta)
    has_text, has_chat = TEXT_FILE in files, CHAT_FILE in files
    if has_text == has_chat:
        raise PromptError(f"{ref} needs exactly one of {TEXT_FILE} or {CHAT_FILE}")
    if has_text:
        templates = [("user", TEXT_FILE, _text(ref, TEXT_FILE, files[TEXT_FILE]))]
    else:
        templates = _chat(ref, files[CHAT_FILE])
    prompt = Prompt(name, version, folder, meta, variables, files, "text" if has_text else "chat")
    prompt._templates = templates
    env = _environment()
    for _role, where, src in templates:
        _parse(env, prompt, where, src)  # a syntax error is found on load, not mid-eval
    return prompt


def _text(ref: str, file: str, data: bytes) -> str:
    try:
        return data.decode()
    except UnicodeDecodeError as exc:
        raise PromptError(f"{ref}: {file} is not UTF-8 text ({exc})") from None


def _variables(ref: str, raw: Any) -> dict[str, Variable]:
    if not isinstance(raw, dict):
        raise PromptError(f"{ref}: `variables` must map each name to its type and options")
    out = {}
    for name, spec in raw.items():
        spec = {"type": spec} if isinstance(spec, str) else (spec or {})
        if not isinstance(spec, dict):
            raise PromptError(f"{ref}: variable {name} must be a mapping (type, required, default)")
        kind = str(spec.get("type", "string"))
        if kind not in TYPES:
            raise PromptError(
                f"{ref}: variable {name} has type {kind!r}; use one of {', '.join(TYPES)}"
            )
        has_default = "default" in spec
        required = bool(spec.get("required", not has_default))
        default = spec.get("default")
        if has_default and default is not None and not _is_type(default, kind):
            raise PromptError(f"{ref}: the default of {name} is not a {kind}")
        out[str(name)] = Variable(
            str(name), kind, required, default, str(spec.get("description", ""))
        )
    return out


def _check_meta(ref: str, meta: dict[str, Any]) -> None:
    known = {"description", "variables", "model", "params", "output"}
    extra = sorted(str(k) for k in meta if k not in known)
    if extra:
        raise PromptError(f"{ref}: unknown key {', '.join(extra)} in {META_FILE}")
    params = meta.get("params") or {}
    if not isinstance(params, dict) or not all(isinstance(k, str) for k in params):
        raise PromptError(f"{ref}: `params` must be a mapping of sampling params by name")
    endpoint = sorted(str(k) for k in params if str(k).lower() in ENDPOINT_PARAMS)
    if endpoint:
        raise PromptError(
            f"{ref}: `params` may not set {', '.join(endpoint)}: params are sampling parameters "
            "sent in the request; where it goes and with which key is the provider's config "
            "(tether.toml or .tether/config.toml [prompts.providers.NAME])"
        )
    output = meta.get("output") or {}
    if not isinstance(output, dict) or output.get("format", "text") not in FORMATS:
        raise PromptError(f"{ref}: `output.format` must be one of {', '.join(FORMATS)}")
    if output.get("format") == "label" and not output.get("labels"):
        raise PromptError(f"{ref}: a label output lists its `labels`")


def _chat(ref: str, data: bytes) -> list[tuple[str, str, str]]:
    doc = read_yaml(data, f"{ref}: {CHAT_FILE}")
    if not isinstance(doc, list) or not doc:
        raise PromptError(f"{ref}: {CHAT_FILE} must be a list of {{role, content}} messages")
    out = []
    for i, message in enumerate(doc):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise PromptError(
                f"{ref}: message {i + 1} in {CHAT_FILE} needs a role ({', '.join(ROLES)})"
            )
        if not isinstance(message.get("content"), str):
            raise PromptError(f"{ref}: message {i + 1} in {CHAT_FILE} needs a `content` text")
        out.append((str(message["role"]), f"{CHAT_FILE} message {i + 1}", message["content"]))
    return out


_INTEGER = re.compile(r"^[+-]?\d+$")
_NUMBER = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")
_BOOLEAN = {"true": True, "false": False}


def from_text(text: str, kind: str) -> Any:
    """A variable's value written as text, as its declared ``kind``: ``42``, ``1e3``, ``true``,
    JSON for a list or an object. ValueError says what was expected."""
    t = text.strip()
    if kind == "integer" and _INTEGER.match(t):
        return int(t)
    if kind == "number" and _NUMBER.match(t):
        return int(t) if _INTEGER.match(t) else float(t)
    if kind == "boolean" and t.lower() in _BOOLEAN:
        return _BOOLEAN[t.lower()]
    if kind in ("list", "object"):
        try:
            value = json.loads(t)
        except ValueError:
            value = None
        if _is_type(value, kind):
            return value
    if kind == "string":
        return text
    shapes = {"integer": "42", "number": "3.5 or 1e3", "boolean": "true or false"}
    example = shapes.get(kind, "JSON")
    raise ValueError(f"{text!r:.60} is not {_a(kind)} (write it as {example})")


def _a(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def _is_type(value: Any, kind: str) -> bool:
    if isinstance(value, bool) and kind in ("integer", "number"):
        return False
    return isinstance(value, TYPES[kind])


_ENV: list[PromptSandbox] = []


def _environment() -> PromptSandbox:
    """One sandboxed environment per process (``sandbox.PromptSandbox``): strict undefined, no
    autoescape (prompts are not HTML), trailing newlines kept, size and time limits."""
    if not _ENV:
        from tether.prompts.sandbox import PromptSandbox

        _ENV.append(PromptSandbox())
    return _ENV[0]


def _parse(env: PromptSandbox, prompt: Prompt, where: str, src: str) -> Any:
    from jinja2 import TemplateSyntaxError

    try:
        tree = env.parse(src)
    except TemplateSyntaxError as exc:
        raise PromptError(f"{prompt.ref}: {where} line {exc.lineno}: {exc.message}") from None
    except RecursionError:
        raise PromptError(f"{prompt.ref}: {where} nests too deeply to parse") from None
    found = env.file_reference(tree)
    if found is not None:
        raise PromptError(
            f"{prompt.ref}: {where} line {found.lineno}: a prompt template cannot include, "
            "import or extend other files: put the text in this template"
        )
    return tree


def _render(prompt: Prompt, template: tuple[str, str, str], values: dict[str, Any]) -> str:
    from jinja2 import TemplateError, UndefinedError
    from jinja2.exceptions import SecurityError

    from tether.prompts import sandbox

    _role, where, src = template
    try:
        return sandbox.render(_compiled(src), values)
    except SecurityError as exc:
        raise PromptError(f"{prompt.ref}: {where} was blocked by the sandbox: {exc}") from None
    except sandbox.RenderLimitError as exc:
        line = _template_line(exc)
        raise PromptError(f"{prompt.ref}: {where}{_at(line)}: {exc}") from None
    except UndefinedError as exc:
        at = _at(_template_line(exc))
        raise PromptError(f"{prompt.ref}: {where}{at}: {exc.message}") from None
    except TemplateError as exc:
        raise PromptError(f"{prompt.ref}: {where}: {exc}") from None
    except RecursionError:
        raise PromptError(
            f"{prompt.ref}: {where} recurses too deeply (a macro calling itself?)"
        ) from None
    except Exception as exc:  # the template's own arithmetic or data: 1/0, int("x"), ...
        at = _at(_template_line(exc))
        raise PromptError(f"{prompt.ref}: {where}{at}: {type(exc).__name__}: {exc}") from None


def _at(line: int | None) -> str:
    return f" line {line}" if line else ""


@functools.lru_cache(maxsize=256)
def _compiled(src: str) -> jinja2.Template:
    """A template compiled once per process: an eval renders the same one for every case. Its
    loops and concatenations go through the sandbox's guards."""
    env = _environment()
    return env.from_string(env.parse_guarded(src))


def _template_line(exc: BaseException) -> int | None:
    """The template line an error was raised at (Jinja2 compiles to code named <template>)."""
    tb = exc.__traceback__
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line
