"""Load the bundled support assistant, answer a customer, then stream a second answer."""

import tinylm

m = tinylm.load("support-assistant")  # bundled with tinylm; TINYLM_BACKEND=onnx|openvino|torch picks the backend
print(f"backend={m.backend} device={m.device} precision={m.precision}")

reply = m.chat([{"role": "user", "content": "I want to cancel my order"}], max_new_tokens=200)
print(reply.text)

question = [{"role": "user", "content": "How can I track my package?"}]
for chunk in m.stream_chat(question, max_new_tokens=200):
    print(chunk.text, end="", flush=True)
usage = reply.usage
print(f"\n{usage.tokens_per_second:.0f} tokens/s, first token after {usage.time_to_first_token * 1000:.0f} ms")
