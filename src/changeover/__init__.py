"""changeover: replace the LLM under a running product, and know it is safe.

The package is layered (see DESIGN.md): ``cli`` -> features (``evaluate``,
``assess``, ``shadow``, ``rollout``, ``embeddings``, ``labeling``, ``report``)
-> services (``judges``, ``stats``, ``store``, ``providers``) -> nouns
(``records``, ``config``).
"""

__version__ = "0.1.0"
