"""Every example runs (short inputs) on every backend that can run here, against the bundled models."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tinylm.plugins import get_manager

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def runnable_backends() -> list[str]:
    return sorted(name for name, b in get_manager().backends().items() if b.availability().ok)


BACKENDS = runnable_backends()


@pytest.fixture(scope="module")
def home(tinylm_home: Path) -> Path:
    """The session's artifact cache: each backend converts the bundled models once, here or elsewhere."""
    return tinylm_home


def run(args: list[str], *, home: Path, backend: str | None, stdin: str = "", cwd: Path | None = None) -> str:
    env = {**os.environ, "TINYLM_HOME": str(home), "TINYLM_NUM_THREADS": "1"}
    env.pop("TINYLM_BACKEND", None)
    if backend is not None:
        env["TINYLM_BACKEND"] = backend
    done = subprocess.run(args, input=stdin, capture_output=True, text=True, env=env, cwd=cwd, timeout=600)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.parametrize("backend", BACKENDS)
def test_quickstart(backend, home):
    out = run([sys.executable, str(EXAMPLES / "quickstart.py")], home=home, backend=backend)
    assert f"backend={backend}" in out and "tokens/s" in out
    assert len(out.splitlines()) >= 3


@pytest.mark.parametrize("backend", BACKENDS)
def test_support_bot_keeps_the_conversation(backend, home):
    out = run(
        [sys.executable, str(EXAMPLES / "support_bot.py"), "--max-new-tokens", "24"],
        home=home,
        backend=backend,
        stdin="I want to cancel my order\nand get a refund\n\n",
    )
    assert out.count("bot> ") == 2


def test_support_bot_drops_the_oldest_turns_when_the_context_is_full():
    sys.path.insert(0, str(EXAMPLES))
    try:
        from support_bot import fit
    finally:
        sys.path.remove(str(EXAMPLES))
    import tinylm

    with tinylm.load("support-assistant", backend="torch") as model:
        history = [{"role": "system", "content": "Be brief."}]
        for n in range(40):
            history += [{"role": "user", "content": f"question {n} " * 10}]
            history += [{"role": "assistant", "content": "ok " * 20}]
        history.append({"role": "user", "content": "last question"})
        kept = fit(model, history, reserve=64)
        assert kept[0] == history[0] and kept[-1] == history[-1] and len(kept) < len(history)
        assert len(model.tokenizer.encode(model.chat_prompt(kept))) + 64 <= model.context_length


def test_triage_offers_only_the_emails_own_order_numbers():
    sys.path.insert(0, str(EXAMPLES))
    try:
        from triage_email import SCHEMA, order_candidates, order_options, schema_for
    finally:
        sys.path.remove(str(EXAMPLES))
    email = "Order #88213 (placed 03/02/2025 at 14:30, $129.99) and ref A-77812, 2024/118845; call 555-0193."
    assert order_candidates(email) == ["88213", "A-77812", "2024/118845", "555-0193"]
    assert order_candidates("no numbers here, just 12 items") == []
    assert len(order_candidates(" ".join(f"A{n:05d}" for n in range(1000)))) == 16  # bounded
    # named as an order: only those; named as something else (a phone): never; a lone code: it; else the model
    assert order_options(email) == (["88213", "A-77812"], False)
    assert schema_for(email)["properties"]["order_number"] == {"enum": ["88213", "A-77812"]}
    assert order_options("Please call me back on +44 20 7946 0958 about order 771209.") == (["771209"], False)
    assert order_options("The book (ISBN 978-0-14-118776-1) is ruined. Order number: 41872.") == (["41872"], False)
    assert order_options("my reference is ORD-77-3310, still waiting") == (["ORD-77-3310"], False)
    assert order_options("I was charged twice for KX40918. Please fix.") == (["KX40918"], False)
    assert order_options("I live in 94102, do you ship here?") == ([], True)
    assert order_options("the 140cm desk, do you have 200 of them?") == (["140cm", "200"], True)
    mixed = schema_for("Is 7309-KD or 55012 mine? Phone 512-555-0148")["properties"]["order_number"]
    assert mixed == {"anyOf": [{"enum": ["7309-KD", "55012"]}, {"type": "null"}]}
    assert schema_for("hello")["properties"]["order_number"] == {"type": "null"}
    assert schema_for(email)["properties"]["intent"] == SCHEMA["properties"]["intent"]


def test_the_router_names_the_intent_and_declines_what_a_shop_cannot_help_with():
    sys.path.insert(0, str(EXAMPLES))
    try:
        from routing import TOPICS, IntentRouter, routed
    finally:
        sys.path.remove(str(EXAMPLES))
    import tinylm

    with tinylm.load("support-embedder", backend="torch") as embedder:
        router = IntentRouter.load(embedder=embedder)
        assert sorted(router.intents) == sorted(TOPICS)
        texts = {
            "Hi, please cancel order 55120, I found it cheaper elsewhere. Thanks, Mark": "cancel_order",
            "where is my parcel?? its been 9 days": "track_order",
            "I forgot my password and the reset email never comes": "recover_password",
            "What is 17 times 23?": "out_of_domain",
        }
        routes = {text: router.route(text) for text in texts}
        assert {text: r.intent for text, r in routes.items()} == texts
        assert all(r.used and 0.3 <= r.confidence <= 1.0 for r in routes.values())
        history = [{"role": "user", "content": "where is my parcel?? its been 9 days"}]
        routed_turn = {"role": "user", "content": "where is my parcel?? its been 9 days\n\n[Topic: tracking an order]"}
        assert router.messages(history) == [routed_turn]
        assert router.messages(history, threshold=1.01) == history  # not confident: the message alone
        earlier = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello!"}]
        assert router.messages([*earlier, *history]) == [*earlier, routed_turn]
    with pytest.raises(ValueError, match="Fix:"):
        routed("hello", "refund_my_feelings")


def test_placeholders_are_filled_from_the_profile_also_mid_stream(tmp_path):
    sys.path.insert(0, str(EXAMPLES))
    try:
        from placeholders import fill, fill_stream, load_profile
    finally:
        sys.path.remove(str(EXAMPLES))
    profile = load_profile(EXAMPLES / "data" / "company.toml")
    text = "Call {{Customer Support Phone Number}} or open {{ order history }} on {{Website Name}}; {x} {{"
    want = "Call +1 555 0100 or open order history on shop.example.com; {x} "
    assert fill(text, profile) == want
    assert fill("log in on {{Website Name", profile) == "log in on shop.example.com"  # cut by the length limit
    assert fill("open {{Order Hist", profile) == "open Order Hist"
    for size in range(1, 12):  # every way the stream may cut the text gives the same result
        assert "".join(fill_stream([text[i : i + size] for i in range(0, len(text), size)], profile)) == want
    bad = tmp_path / "bad.toml"
    bad.write_text("[placeholders]\nname = 3\n")
    with pytest.raises(ValueError, match="Fix:"):
        load_profile(bad)


def test_the_order_number_placeholder_is_the_customers_own():
    sys.path.insert(0, str(EXAMPLES))
    try:
        from placeholders import fill, load_profile, with_customer_details
    finally:
        sys.path.remove(str(EXAMPLES))
    profile = load_profile(EXAMPLES / "data" / "company.toml")
    reply = "I have cancelled order {{Order Number}}. Call {{Customer Support Phone Number}} with questions."
    details = with_customer_details(profile, ["hi", "Please cancel order #A-77812, call me on 0171 5550193"])
    assert fill(reply, details) == "I have cancelled order A-77812. Call +1 555 0100 with questions."
    later = with_customer_details(profile, ["order 55120 please", "sorry, I meant order 55121"])
    assert fill("{{Order Number}}", later) == "55121"  # the latest message that gives one
    assert fill("{{Order Number}}", with_customer_details(profile, ["where is my parcel?"])) == "your order"
    assert "order number" not in profile  # the profile itself is left as it was


@pytest.mark.parametrize("backend", BACKENDS)
def test_email_replies_writes_one_draft_per_email(backend, home, tmp_path):
    inbox = tmp_path / "inbox"
    shutil.copytree(EXAMPLES / "data" / "inbox", inbox)
    out = tmp_path / "drafts"
    args = [sys.executable, str(EXAMPLES / "email_replies.py"), str(inbox), str(out), "--max-new-tokens", "24"]
    printed = run(args, home=home, backend=backend)
    drafts = sorted(p.name for p in out.iterdir())
    assert drafts == sorted(f"{p.stem}.reply.txt" for p in inbox.glob("*.txt"))
    assert all((out / d).read_text().strip() for d in drafts)
    assert not any("{{" in (out / d).read_text() for d in drafts)  # placeholders filled from the company profile
    assert f"{len(drafts)} drafts" in printed


@pytest.mark.parametrize("backend", BACKENDS)
def test_semantic_faq_finds_the_entry_by_meaning(backend, home):
    question = "I sent the shoes back, when is my money coming back?"
    out = run([sys.executable, str(EXAMPLES / "semantic_faq.py"), question], home=home, backend=backend)
    assert "matched 'When will I get my refund?'" in out


@pytest.mark.parametrize("backend", BACKENDS)
def test_triage_email_returns_valid_json(backend, home):
    jsonschema = pytest.importorskip("jsonschema")
    sys.path.insert(0, str(EXAMPLES))
    try:
        from triage_email import SCHEMA
    finally:
        sys.path.remove(str(EXAMPLES))
    emails = sorted((EXAMPLES / "data" / "inbox").glob("*.txt"))
    out = run([sys.executable, str(EXAMPLES / "triage_email.py"), *map(str, emails)], home=home, backend=backend)
    records = [json.loads(line) for line in out.splitlines()]
    assert [r.pop("email") for r in records] == [e.name for e in emails]
    for record in records:
        jsonschema.validate(record, SCHEMA)


@pytest.mark.skipif(shutil.which("bash") is None, reason="switch_backends.sh is a bash script")
def test_switch_backends_runs_every_backend(home):
    out = run(["bash", str(EXAMPLES / "switch_backends.sh")], home=home, backend=None, cwd=ROOT)
    for backend in BACKENDS:
        assert f"== TINYLM_BACKEND={backend}" in out and f"backend={backend}" in out


def test_the_example_backend_package_passes_the_conformance_suite(tmp_path):
    """examples/write_a_backend, registered by its entry point (a dist-info on the path, as pip would write)."""
    package = EXAMPLES / "write_a_backend"
    site = tmp_path / "site"
    info = site / "tinylm_numpy_example-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tinylm-numpy-example\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[tinylm]\nnumpy = tinylm_numpy.plugin\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(package), os.environ.get("PYTHONPATH", "")])}
    env["TINYLM_HOME"] = str(tmp_path / "home")
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(package / "tests")]
    done = subprocess.run(args, capture_output=True, text=True, env=env, cwd=package, timeout=1200)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and " failed" not in done.stdout


def test_quickstart_answers_are_whole():
    """The quickstart's token limit leaves room for whole answers: the model ends each reply itself."""
    import re

    import tinylm

    source = (EXAMPLES / "quickstart.py").read_text(encoding="utf-8")
    questions = re.findall(r'"content": "([^"]+)"', source)
    limits = {int(n) for n in re.findall(r"max_new_tokens=(\d+)", source)}
    assert len(questions) == 2 and len(limits) == 1
    with tinylm.load("support-assistant", backend="torch") as model:
        for question in questions:
            reply = model.chat([{"role": "user", "content": question}], max_new_tokens=max(limits))
            assert reply.finish_reason == "stop", (question, reply.text)


AGENT_MESSAGES = {
    "Where is my order 88213? It should have arrived by now.": "88213",
    "Hi, I ordered shoes on 03/02/2025 for $129.99, order A-77812, and they never came.": "A-77812",
    "My parcel never arrived.": None,
    "Order 55102 is late. Call me at 555-0193 when you know more.": "55102",  # the phone is never a candidate
}


@pytest.mark.parametrize("backend", BACKENDS)
def test_tools_agent_calls_track_order_with_the_messages_order_number(backend, home):
    pytest.importorskip("llguidance", reason="the agent's tool call is constrained (pip install tinylm[structured])")
    args = [sys.executable, str(EXAMPLES / "tools_agent.py"), *AGENT_MESSAGES]
    records = [json.loads(line) for line in run(args, home=home, backend=backend).splitlines()]
    assert [r["message"] for r in records] == list(AGENT_MESSAGES)
    for record, number in zip(records, AGENT_MESSAGES.values()):
        if number is None:  # no order number in the message: a question, no call
            assert record["call"] is None and "order number" in record["reply"]
            continue
        assert record["call"] == {"name": "track_order", "arguments": {"order_number": number}}
        assert record["result"]["order_number"] == number and "error" not in record["result"]
        assert number in record["summary"] and record["reply"] and "{{" not in record["reply"]
