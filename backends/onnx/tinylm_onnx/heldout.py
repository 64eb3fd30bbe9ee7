"""The held-out text each int8/int4 artifact's perplexity change is measured on (fixed, so runs compare).

Plain English prose written for this purpose; it is in no training set tinylm builds. For random test
models perplexity is noise, but it is computed the same way.
"""

TEXT = (
    "The harbour town woke slowly. Fishing boats came back before dawn, and by the time the bakery opened "
    "the nets were already drying on the stone wall by the pier. Children walked to school along the "
    "seafront, counting the gulls on the railings, while their parents argued about the price of bread and "
    "the weather for the weekend. In the afternoon the wind turned, clouds gathered over the hills, and the "
    "ferry to the island left twenty minutes late. Nobody minded much. The captain said the sea was calm "
    "enough, the passengers drank tea in the small cabin, and an old man told anyone who would listen how "
    "the lighthouse had been built by his grandfather, one stone at a time, over three long summers. When "
    "the ferry returned in the evening, the streets were wet and shining, the lamps were lit, and the smell "
    "of frying fish drifted from the open door of the tavern on the corner."
)
