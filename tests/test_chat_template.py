"""Chat templates render exactly as transformers' apply_chat_template, for real template styles."""

from __future__ import annotations

import json

import pytest

from tinylm.errors import ChatTemplateError
from tinylm.tokenizer import Tokenizer

from .helpers import byte_tokenizer

transformers = pytest.importorskip("transformers", reason="transformers is the test oracle (pip install tinylm[test])")

CHATML = (  # Qwen2 / SmolLM2-Instruct style
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
LLAMA3 = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
ZEPHYR = (  # Zephyr / SmolLM (v1) style, with whitespace control and raise_exception
    "{% for message in messages %}\n"
    "{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n"
    "{% else %}\n{{ raise_exception('Unknown role: ' + message['role']) }}\n{% endif %}\n"
    "{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}"
)
TOOLS_JSON = (  # tojson keeps non-ASCII, as transformers' override does
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] | tojson }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)
LFM2 = (  # LiquidAI/LFM2's style: bos, the system prompt held in a namespace, messages[1:], a tool list and tool
    # responses wrapped in LFM2's markers, non-string content as JSON, whitespace control throughout
    '{{- bos_token -}}{%- set ns = namespace(system_prompt="") -%}'
    '{%- if messages[0]["role"] == "system" -%}{%- set ns.system_prompt = messages[0]["content"] -%}'
    "{%- set messages = messages[1:] -%}{%- endif -%}"
    '{%- if tools -%}{%- set ns.system_prompt = ns.system_prompt + ("\n" if ns.system_prompt else "")'
    ' + "List of tools: <|tool_list_start|>[" -%}{%- for tool in tools -%}'
    "{%- if tool is not string -%}{%- set tool = tool | tojson -%}{%- endif -%}"
    "{%- set ns.system_prompt = ns.system_prompt + tool -%}{%- if not loop.last -%}"
    '{%- set ns.system_prompt = ns.system_prompt + ", " -%}{%- endif -%}{%- endfor -%}'
    '{%- set ns.system_prompt = ns.system_prompt + "]<|tool_list_end|>" -%}{%- endif -%}'
    '{%- if ns.system_prompt -%}{{- "<|im_start|>system\n" + ns.system_prompt + "<|im_end|>\n" -}}{%- endif -%}'
    '{%- for message in messages -%}{{- "<|im_start|>" + message["role"] + "\n" -}}'
    '{%- set content = message["content"] -%}{%- if content is not string -%}{%- set content = content | tojson -%}'
    '{%- endif -%}{%- if message["role"] == "tool" -%}'
    '{%- set content = "<|tool_response_start|>" + content + "<|tool_response_end|>" -%}{%- endif -%}'
    '{{- content + "<|im_end|>\n" -}}{%- endfor -%}'
    '{%- if add_generation_prompt -%}{{- "<|im_start|>assistant\n" -}}{%- endif -%}'
)

CONVERSATIONS = [
    [{"role": "user", "content": "My parcel never arrived."}],
    [
        {"role": "system", "content": "You are a support agent."},
        {"role": "user", "content": "Hi!  "},
        {"role": "assistant", "content": "Hello — how can I help?"},
        {"role": "user", "content": "Où est ma commande 12345? 😀"},
    ],
]


def save(folder, template: str, special: dict[str, str]) -> None:
    tok = byte_tokenizer()
    tok.add_special_tokens(list(special.values()))
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, chat_template=template, **special)
    fast.save_pretrained(folder)


@pytest.mark.parametrize(
    "template,special",
    [
        (CHATML, {"eos_token": "<|im_end|>"}),
        (LLAMA3, {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}),
        (ZEPHYR, {"eos_token": "</s>", "bos_token": "<s>"}),
        (TOOLS_JSON, {"eos_token": "</s>"}),
        (LFM2, {"bos_token": "<|startoftext|>", "eos_token": "<|im_end|>"}),
    ],
    ids=["chatml", "llama3", "zephyr", "tojson", "lfm2"],
)
@pytest.mark.parametrize("conversation", range(len(CONVERSATIONS)))
@pytest.mark.parametrize("add_generation_prompt", [True, False])
def test_matches_transformers(tmp_path, template, special, conversation, add_generation_prompt):
    save(tmp_path, template, special)
    messages = CONVERSATIONS[conversation]
    reference = transformers.AutoTokenizer.from_pretrained(tmp_path).apply_chat_template(
        messages, tokenize=False, add_generation_prompt=add_generation_prompt
    )
    ours = Tokenizer(tmp_path).apply_chat_template(messages, add_generation_prompt=add_generation_prompt)
    assert ours == reference


def test_template_file_beside_the_tokenizer_wins(tmp_path):
    save(tmp_path, CHATML, {"eos_token": "<|im_end|>"})
    (tmp_path / "chat_template.jinja").write_text("{{ messages[0]['content'] }}!")
    assert Tokenizer(tmp_path).apply_chat_template(CONVERSATIONS[0]) == "My parcel never arrived.!"


def test_template_errors_are_typed(tmp_path):
    save(tmp_path, ZEPHYR, {"eos_token": "</s>"})
    tok = Tokenizer(tmp_path)
    with pytest.raises(ChatTemplateError, match="Unknown role: robot"):
        tok.apply_chat_template([{"role": "robot", "content": "beep"}])
    with pytest.raises(ChatTemplateError, match="role"):
        tok.apply_chat_template(["just a string"])


def test_missing_template_says_how_to_fix(tmp_path):
    save(tmp_path, CHATML, {"eos_token": "</s>"})
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    (tmp_path / "chat_template.jinja").unlink(missing_ok=True)
    with pytest.raises(ChatTemplateError, match="generate"):
        Tokenizer(tmp_path).apply_chat_template(CONVERSATIONS[0])


def test_templates_run_sandboxed(tmp_path):
    save(tmp_path, "{{ ''.__class__.__mro__[1].__subclasses__() }}", {"eos_token": "</s>"})
    with pytest.raises(ChatTemplateError):
        Tokenizer(tmp_path).apply_chat_template(CONVERSATIONS[0])
