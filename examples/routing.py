"""Route a customer's message to its intent with the embedder, and tell the assistant what it is about.

    router = IntentRouter.load()                     # examples/data/intent_router.safetensors + support-embedder
    route = router.route("The kettle I got is cracked, I want my money back")
    route.intent, route.confidence                   # ("get_refund", 0.91)
    model.chat([{"role": "user", "content": routed(text, route.intent)}])

The bundled assistant is a 7M-parameter model trained from scratch: it writes good support replies once it knows
what the customer wants, but it often misreads long, casual or unusual messages. The bundled embedder (the full
all-MiniLM-L6-v2, int8) reads them much better. The router is a linear layer over its sentence embeddings, trained
on the bitext questions and composed natural messages (recipes/support-assistant/router.py); the assistant was
fine-tuned to follow the note `routed` adds at the end of the customer's message, right before its reply (a
note in the system message, far from where the reply starts, was followed too rarely by a model this small:
recipes/support-assistant/train.sh, stage 4, and the card's figures). A route below `threshold` confidence is not
used: the assistant then reads the message alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import tinylm

ROUTER = Path(__file__).resolve().parent / "data" / "intent_router.safetensors"
SYSTEM = "You are a helpful customer-support assistant."

#: What each intent is about, in the words the routed system message uses.
TOPICS = {
    "cancel_order": "cancelling an order",
    "change_order": "changing the items in an order",
    "change_shipping_address": "changing the delivery address of an order",
    "check_cancellation_fee": "the fee for cancelling an order",
    "check_invoice": "looking at an invoice",
    "check_payment_methods": "the payment methods the shop accepts",
    "check_refund_policy": "the refund policy",
    "complaint": "a complaint",
    "contact_customer_service": "contacting customer service",
    "contact_human_agent": "talking to a human agent",
    "create_account": "creating an account",
    "delete_account": "deleting an account",
    "delivery_options": "the delivery options",
    "delivery_period": "how long delivery takes",
    "edit_account": "editing account details",
    "get_invoice": "getting an invoice",
    "get_refund": "getting a refund",
    "newsletter_subscription": "the newsletter subscription",
    "payment_issue": "a problem with a payment",
    "place_order": "placing an order",
    "recover_password": "recovering a password",
    "registration_problems": "a problem signing up",
    "review": "leaving a review or feedback",
    "set_up_shipping_address": "setting up a shipping address",
    "switch_account": "switching accounts",
    "track_order": "tracking an order",
    "track_refund": "the status of a refund",
    "out_of_domain": "something a shop's customer support cannot help with",
}


def routed(message: str, intent: str) -> str:
    """The customer's message with a note of what it is about at its end, where the assistant reads it last."""
    if intent not in TOPICS:
        raise ValueError(f"unknown intent {intent!r}. Fix: use one of {', '.join(sorted(TOPICS))}.")
    return f"{message}\n\n[Topic: {TOPICS[intent]}]"


@dataclass(frozen=True)
class Route:
    """The intent the router chose, its probability, and whether it is confident enough to use."""

    intent: str
    confidence: float
    used: bool


class IntentRouter:
    """A linear layer over the embedder's sentence embeddings: (D,) -> one logit per intent."""

    def __init__(self, embedder: tinylm.Model, weight: np.ndarray, bias: np.ndarray, intents: list[str]) -> None:
        self.embedder = embedder
        self.weight = weight  # (K, D)
        self.bias = bias  # (K,)
        self.intents = intents

    @classmethod
    def load(cls, path: Path = ROUTER, *, embedder: tinylm.Model | None = None) -> IntentRouter:
        """The router saved at `path` (safetensors) over `embedder` (default: the one it was trained with)."""
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata()
            weight, bias = f.get_tensor("weight"), f.get_tensor("bias")
        intents = json.loads(meta["intents"])
        return cls(embedder or tinylm.load(meta["embedder"]), weight, bias, intents)

    def probabilities(self, texts: list[str]) -> np.ndarray:
        """(N, K) intent probabilities for `texts`."""
        logits = self.embedder.embed(texts) @ self.weight.T + self.bias  # (N, K)
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)

    def route(self, text: str, *, threshold: float = 0.3) -> Route:
        """The intent of one message; `used` is False below `threshold` (then leave the message unrouted)."""
        p = self.probabilities([text])[0]
        k = int(np.argmax(p))
        return Route(self.intents[k], float(p[k]), bool(p[k] >= threshold))

    def messages(self, history: list[dict[str, str]], *, threshold: float = 0.3) -> list[dict[str, str]]:
        """`history` (user/assistant turns, no system message) with its last user turn routed (`routed`);
        unchanged when the route is not confident."""
        last = history[-1]["content"]
        route = self.route(last, threshold=threshold)
        if not route.used:
            return list(history)
        return [*history[:-1], {"role": "user", "content": routed(last, route.intent)}]
