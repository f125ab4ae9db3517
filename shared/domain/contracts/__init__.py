"""The contract engine: a pure domain core (no Kafka, database or clock imports).

- `model`: contracts as frozen, validated data (rate cards, triggers, prices, caps).
- `loader`: YAML files into models, with errors that name the field and line.
- `solidarity`: the exact pro-rata distribution over a subject's chain.
- `timeline`: a subject's history as a fold of its events (retractions, amendments).
- `evaluation`: which outcomes are verified, rejected, capped or pending, and for how much.
- `payments`: deterministic payment instructions and clawbacks.
"""
