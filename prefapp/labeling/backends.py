"""Where responses are generated: in this process (`LocalGenerator`) or on an OpenAI-compatible engine
(`OpenAIGenerator`: vLLM, SGLang, TGI, llama.cpp's server, `transformers serve`).

Pairs, chat replies and evaluation responses all go through one `Generator`, with the same `SamplingConfig`.
The remote one speaks the chat-completions API: it asks for `n` samples per request and, where the engine ignores
`n` (transformers serve does), sends the missing samples as separate requests; it keeps several requests in
flight so the engine can batch them, retries connection failures and 5xx/429 answers with exponential backoff, and
fails with a `GeneratorError` that names the server and the fix. The API key is read from an environment
variable when a request is sent; it is never stored, logged or shown.

A round's adapter reaches a remote engine through runtime LoRA loading (vLLM: `POST /v1/load_lora_adapter`;
SGLang: `POST /load_lora_adapter`); engines without it (transformers serve, TGI, llama.cpp) get
`PublishUnsupported`, whose message gives the merge-and-serve commands.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator, Protocol, Sequence

import httpx

from prefapp.config import ConfigError, SamplingConfig
from prefapp.labeling import generation
from prefapp.labeling.generation import Messages
from prefapp.models import Policy

log = logging.getLogger(__name__)

API_KEY_ENV = "PREFAPP_GENERATOR_API_KEY"  # the remote engine's key (vLLM --api-key); OPENAI_API_KEY as fallback
RETRIES = 3  # tries per request: rides out a server restart's first seconds without hiding a dead server long
BACKOFF_S = 0.5  # first pause; doubled per retry (0.5, 1, 2 s)
TIMEOUT_S = 120.0  # one completion: long answers on a loaded engine take tens of seconds
IN_FLIGHT = 16  # requests in flight at once: the pair queue keeps 8 prompts x 2 samples at the engine
SPARE_CONNECTIONS = 4  # beyond IN_FLIGHT: a chat reply streams while the pair queue fills the engine


class GeneratorError(ConfigError):
    """The generation backend failed; the message names the server and what to do."""


class PublishUnsupported(GeneratorError):
    """The engine cannot load a LoRA adapter at run time; the message gives the merge-and-serve commands."""


class Generator(Protocol):
    backend: str  # "local" or the engine's base URL: recorded with every pair
    model: str  # the model name that writes the pairs (the base; an adapter name is recorded separately)
    adapters: dict[str, str]  # rounds this generator can use: adapter name -> directory
    in_flight: int  # requests served at once; 1: one batched call at a time (the pair queue then refills in batches)

    def sample(self, prompts: Sequence[Messages], sampling: SamplingConfig, num_samples: int = 1,
               adapter: str | None = None, seed: int | None = None) -> list[list[str]]:
        """`num_samples` replies per prompt: result[i][j]."""

    def stream(self, messages: Messages, sampling: SamplingConfig, adapter: str | None = None) -> Iterator[str]:
        """One reply as it is generated: the text so far (stripped), growing."""

    def add_adapter(self, name: str, path: str | Path) -> None:
        """A finished round's adapter becomes known (local: loaded; remote: published on `publish`)."""

    def publish(self, name: str) -> str:
        """Make a known adapter usable for generation; a message saying where it now runs."""

    def can_use(self, adapter: str) -> bool:
        """True when generation may name this adapter now."""

    def describe(self) -> str:
        """One line for the header: which backend and model write the pairs."""


class LocalGenerator:
    """Today's generator: the in-process `Policy` behind its lock, one batched `generate` call per batch."""

    backend = "local"
    in_flight = 1  # one model behind one lock: a batch is one generate call

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.model = policy.choice.label

    @property
    def adapters(self) -> dict[str, str]:
        return self.policy.adapters

    def sample(self, prompts: Sequence[Messages], sampling: SamplingConfig, num_samples: int = 1,
               adapter: str | None = None, seed: int | None = None) -> list[list[str]]:
        return generation.sample(self.policy, prompts, sampling, num_samples=num_samples, adapter=adapter, seed=seed)

    def stream(self, messages: Messages, sampling: SamplingConfig, adapter: str | None = None) -> Iterator[str]:
        return generation.stream_reply(self.policy, generation.as_messages(messages), sampling, adapter)

    def add_adapter(self, name: str, path: str | Path) -> None:
        self.policy.load_adapter(name, path)

    def publish(self, name: str) -> str:
        if name not in self.policy.adapters:
            raise ConfigError(f"{name} is not a finished round: pick one of {sorted(self.policy.adapters) or 'none yet'}")
        return f"{name} is loaded in this process."

    def can_use(self, adapter: str) -> bool:
        return adapter in self.policy.adapters

    def describe(self) -> str:
        return f"local ({self.model}, in this process)"


class OpenAIGenerator:
    """An OpenAI-compatible chat-completions server; thread-safe (the queue and request handlers share it)."""

    def __init__(self, url: str, model: str = "", api_key_env: str = API_KEY_ENV, retries: int = RETRIES,
                 backoff_s: float = BACKOFF_S, timeout_s: float = TIMEOUT_S, in_flight: int = IN_FLIGHT) -> None:
        self.backend = check_url(url)
        self.api_key_env = api_key_env
        self.retries, self.backoff_s = max(1, retries), backoff_s
        self.in_flight = in_flight
        self.adapters: dict[str, str] = {}  # finished rounds, published or not
        self.published: set[str] = set()  # adapters the engine has loaded: generation may name them
        self._n_ok: bool | None = None  # does the engine honour n? None: not known yet
        self._lock = threading.Lock()
        self._http = httpx.Client(timeout=httpx.Timeout(timeout_s, connect=5.0),
                                  limits=httpx.Limits(max_connections=in_flight + SPARE_CONNECTIONS,
                                                      max_keepalive_connections=in_flight + SPARE_CONNECTIONS))
        self._pool = ThreadPoolExecutor(in_flight, thread_name_prefix="generator")
        self.model = model.strip() or self._only_model()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._http.close()

    # --- generation ------------------------------------------------------------------------------------------

    def sample(self, prompts: Sequence[Messages], sampling: SamplingConfig, num_samples: int = 1,
               adapter: str | None = None, seed: int | None = None) -> list[list[str]]:
        sampling.validate()
        model = self._model_for(adapter)
        messages = [generation.as_messages(p) for p in prompts]
        if self._n_ok is False and num_samples > 1:  # n is ignored: every sample its own request, all at once
            rows = [[self._pool.submit(self._complete, m, sampling, model, 1, _seed(seed, i, j))
                     for j in range(num_samples)] for i, m in enumerate(messages)]
            replies = [[text for f in row for text in f.result()] for row in rows]
            if all(len(r) == num_samples for r in replies):
                return replies
            raise GeneratorError(f"{self.backend} answered a chat completion without a choice: check its log")
        futures = [self._pool.submit(self._samples, m, sampling, num_samples, model, _seed(seed, i, 0))
                   for i, m in enumerate(messages)]
        return [f.result() for f in futures]  # the first failure (after its retries) is raised as it is

    def stream(self, messages: Messages, sampling: SamplingConfig, adapter: str | None = None) -> Iterator[str]:
        sampling.validate()
        body = self._body(generation.as_messages(messages), sampling, self._model_for(adapter), 1, None)
        body["stream"] = True
        so_far = ""  # once text was shown, a retry would repeat it: fail instead
        for attempt in range(self.retries):
            try:
                with self._http.stream("POST", self._url("/chat/completions"), json=body,
                                       headers=self._headers()) as response:
                    if response.status_code >= 400:
                        response.read()
                        self._raise_for(response, attempt)
                    for piece in _sse_pieces(response.iter_lines()):
                        so_far += piece
                        yield so_far.strip()
                return
            except _Retry as retry:
                self._pause(attempt, retry.reason)
            except httpx.TransportError as exc:
                if so_far or attempt + 1 == self.retries:
                    raise self._unreachable(exc) from exc
                self._pause(attempt, f"{type(exc).__name__}")
        raise GeneratorError(f"the generation server {self.backend} kept failing after {self.retries} tries: "
                             "check its log; pairs already queued can still be labelled")

    def _samples(self, messages: Messages, sampling: SamplingConfig, n: int, model: str,
                 seed: int | None) -> list[str]:
        """n replies to one conversation: one request with `n`, topped up by single requests if it is ignored."""
        ask_n = n if self._n_ok is not False else 1
        replies = self._complete(messages, sampling, model, ask_n, seed)
        if ask_n > 1:
            self._n_ok = len(replies) >= n
            if not self._n_ok:
                log.info("%s ignores n=%d: sending one request per sample", self.backend, n)
        while len(replies) < n:
            replies += self._complete(messages, sampling, model, 1, _seed(seed, 0, len(replies)))
        return replies[:n]

    def _complete(self, messages: Messages, sampling: SamplingConfig, model: str, n: int,
                  seed: int | None) -> list[str]:
        data = self._post("/chat/completions", self._body(messages, sampling, model, n, seed))
        try:
            choices = sorted(data["choices"], key=lambda c: c.get("index", 0))
            return [(c["message"].get("content") or "").strip() for c in choices]
        except (KeyError, TypeError, AttributeError) as exc:
            raise GeneratorError(f"{self.backend} answered without chat choices ({str(data)[:200]}): is it an "
                                 "OpenAI-compatible /v1 endpoint?") from exc

    @staticmethod
    def _body(messages: Messages, sampling: SamplingConfig, model: str, n: int, seed: int | None) -> dict:
        body = {"model": model, "messages": messages, "temperature": sampling.temperature, "top_p": sampling.top_p,
                "max_tokens": sampling.max_new_tokens}
        if n > 1:
            body["n"] = n
        if seed is not None:
            body["seed"] = seed
        return body

    # --- adapters --------------------------------------------------------------------------------------------

    def add_adapter(self, name: str, path: str | Path) -> None:
        self.adapters[name] = str(Path(path).resolve())

    def publish(self, name: str) -> str:
        """Load the round's adapter into the engine (vLLM runtime LoRA loading); generation then names it."""
        if name not in self.adapters:
            raise ConfigError(f"{name} is not a finished round: pick one of {sorted(self.adapters) or 'none yet'}")
        if name in self.published:
            return f"{name} is already loaded in {self.backend}."
        body = {"lora_name": name, "lora_path": self.adapters[name]}
        response = self._load_adapter(body)
        if _no_lora_route(response):
            raise PublishUnsupported(merge_and_serve(name, self.backend, response.status_code))
        if response.status_code == 400 and "load_inplace" in response.text:  # vLLM holds a `name` from an earlier
            response = self._load_adapter({**body, "load_inplace": True})  # prefapp run: replace it with this round
        if response.status_code >= 400 and "already" not in response.text.lower():
            raise GeneratorError(f"{self.backend} refused to load {name} from {self.adapters[name]} "
                                 f"(HTTP {response.status_code}: {response.text[:300]}): the adapter directory must be "
                                 "readable by the engine at that path, and vLLM needs --enable-lora and "
                                 "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True")
        self.published.add(name)
        log.info("published adapter %s to %s", name, self.backend)
        return f"{name} is loaded in {self.backend}; new pairs name it as the model."

    def _load_adapter(self, body: dict) -> httpx.Response:
        """POST the load request where the engine has it: vLLM under /v1, SGLang at the root; the same body."""
        try:
            for url in (self._url("/load_lora_adapter"), self.backend.removesuffix("/v1") + "/load_lora_adapter"):
                response = self._http.post(url, json=body, headers=self._headers())
                if not _no_lora_route(response):
                    break
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        return response

    def can_use(self, adapter: str) -> bool:
        return adapter in self.published

    def _model_for(self, adapter: str | None) -> str:
        if adapter is None:
            return self.model
        if adapter not in self.published:
            raise ConfigError(f"{adapter} is not loaded in {self.backend}: make it the generator (which publishes it) "
                              "or serve the merged model")
        return adapter

    def describe(self) -> str:
        return f"{self.model} served at {self.backend}"

    # --- HTTP ------------------------------------------------------------------------------------------------

    def _only_model(self) -> str:
        """The served model when the engine serves exactly one (what `--generator-model` may leave out)."""
        models = self._get("/models").get("data", [])
        names = [m.get("id") for m in models if not m.get("parent")]  # vLLM lists loaded adapters, parent: the base
        if len(names) != 1:
            raise ConfigError(f"{self.backend} serves {names or 'no models'}: name one with --generator-model")
        return names[0]

    def _url(self, path: str) -> str:
        return self.backend + path

    def _headers(self) -> dict:
        key = os.environ.get(self.api_key_env) or os.environ.get("OPENAI_API_KEY")
        return {"Authorization": f"Bearer {key}"} if key else {}

    def _get(self, path: str) -> dict:
        try:
            response = self._http.get(self._url(path), headers=self._headers(), timeout=10.0)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        if response.status_code >= 400:
            raise GeneratorError(f"{self.backend}{path} answered HTTP {response.status_code}: "
                                 f"{_detail(response)}{_auth_hint(response, self.api_key_env)}")
        return response.json()

    def _post(self, path: str, body: dict) -> dict:
        for attempt in range(self.retries):
            try:
                response = self._http.post(self._url(path), json=body, headers=self._headers())
                self._raise_for(response, attempt)
                return response.json()
            except _Retry as retry:
                self._pause(attempt, retry.reason)
            except httpx.TransportError as exc:
                if attempt + 1 == self.retries:
                    raise self._unreachable(exc) from exc
                self._pause(attempt, type(exc).__name__)
        raise AssertionError("unreachable")  # the last attempt returns or raises

    def _raise_for(self, response: httpx.Response, attempt: int) -> None:
        """Retry 429/5xx (busy or restarting) unless this was the last try; other 4xx are the caller's fault."""
        status = response.status_code
        if status < 400:
            return
        if (status == 429 or status >= 500) and attempt + 1 < self.retries:
            raise _Retry(f"HTTP {status}")
        raise GeneratorError(f"the generation server {self.backend} answered HTTP {status}: {_detail(response)}"
                             f"{_auth_hint(response, self.api_key_env)}")

    def _pause(self, attempt: int, reason: str) -> None:
        delay = self.backoff_s * 2 ** attempt
        log.warning("%s: %s; retrying in %.1f s", self.backend, reason, delay)
        time.sleep(delay)

    def _unreachable(self, exc: Exception) -> GeneratorError:
        return GeneratorError(
            f"the generation server {self.backend} is not answering ({type(exc).__name__}) after {self.retries} "
            "tries: start it (or fix --generator-url); pairs already queued can still be labelled and no vote is lost")


def _seed(seed: int | None, prompt: int, sample: int) -> int | None:
    """The seed of one request: distinct per prompt and per extra sample, so seeded samples still differ."""
    return None if seed is None else seed + prompt + 7919 * sample


class _Retry(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _sse_pieces(lines: Iterator[str]) -> Iterator[str]:
    """The text deltas of a chat-completions event stream."""
    for line in lines:
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            return
        try:
            choices = json.loads(data).get("choices") or []
        except json.JSONDecodeError:
            continue
        for choice in choices:
            piece = (choice.get("delta") or {}).get("content")
            if piece:
                yield piece


def _no_lora_route(response: httpx.Response) -> bool:
    """The engine has no runtime LoRA loading there; vLLM's own 404 ("Loading lora ... failed") is a refusal."""
    status = response.status_code
    return status == 501 or (status in (404, 405) and "lora" not in response.text.lower())


def _detail(response: httpx.Response) -> str:
    try:
        data = response.json()
        detail = data.get("detail") or data.get("error") or data.get("message") or data
        if isinstance(detail, dict):
            detail = detail.get("message", detail)
        return str(detail)[:300]
    except ValueError:
        return response.text[:300] or response.reason_phrase


def _auth_hint(response: httpx.Response, env: str) -> str:
    return f" (set the engine's API key in {env})" if response.status_code in (401, 403) else ""


def check_url(url: str) -> str:
    """The engine's base URL (`http://HOST:PORT/v1`), without a trailing slash, or a ConfigError naming the fix."""
    url = (url or "").strip().rstrip("/")
    parsed = httpx.URL(url) if url.startswith(("http://", "https://")) else None
    if parsed is None or not parsed.host:
        raise ConfigError(f"--generator-url {url!r} is not an http(s) URL: give the engine's base, "
                          "e.g. http://127.0.0.1:8000/v1")
    if "@" in url.split("//", 1)[1].split("/", 1)[0]:
        raise ConfigError("--generator-url must not carry credentials: put the API key in "
                          f"the environment variable {API_KEY_ENV}")
    return url


def merge_and_serve(name: str, backend: str, status: int | None = None) -> str:
    """What to run when the engine cannot load adapters at run time: merge the round, serve the merged model."""
    round_id = name.split("-")[-1]
    why = f" (POST {backend}/load_lora_adapter answered HTTP {status})" if status else ""
    return (f"{backend} cannot load LoRA adapters at run time{why}. Merge the round and serve the merged model: "
            f"`prefapp merge --round {round_id} --out data/merged/{name}`, then on the engine "
            f"`vllm serve data/merged/{name} --served-model-name {name}` and restart prefapp with --generator-model "
            f"{name} (transformers serve names a model by its path: `transformers serve data/merged/{name}` and "
            f"--generator-model data/merged/{name}). vLLM loads adapters at run time when started with "
            "--enable-lora and VLLM_ALLOW_RUNTIME_LORA_UPDATING=True.")


def open_generator(backend: str, url: str | None, model: str | None, policy: Policy) -> Generator:
    """The generator `--generator` / `--generator-url` / `--generator-model` ask for."""
    if url:
        return OpenAIGenerator(url, model or "")
    if backend not in ("local", ""):
        raise ConfigError(f"--generator {backend!r} is unknown: use 'local', or give --generator-url "
                          "http://HOST:PORT/v1 for an OpenAI-compatible engine")
    return LocalGenerator(policy)
