"""Core ML backend for tinylm (registered through the `tinylm` entry-point group).

Converting (`prepare`) runs wherever coremltools installs: the ML Program is built with coremltools' MIL
builder from the canonical numpy weights, never from torch. Running (`open`) needs macOS. Importing this
package imports no runtime.
"""
